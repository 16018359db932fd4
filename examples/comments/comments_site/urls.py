from django.urls import path

from comments import views

urlpatterns = [path("comments", views.comments), path("status", views.status)]
