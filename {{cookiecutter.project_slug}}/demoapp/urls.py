app_name = "demoapp"

urlpatterns = []
