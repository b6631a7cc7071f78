from django.urls import path

from . import views

app_name = "demoapp"

urlpatterns = [
    path("tasks/", views.dashboard, name="tasks"),
    path("tasks/start/", views.start_task, name="start_task"),
    path("tasks/<str:task_id>/status/", views.task_status, name="task_status"),
    path("widgets/", views.create_widget, name="create_widget"),
]
