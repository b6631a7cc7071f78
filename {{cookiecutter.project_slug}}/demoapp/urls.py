from django.urls import path

app_name = "demoapp"

urlpatterns: list = []
