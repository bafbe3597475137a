from django.urls import path

from .views import SyncEventListView

urlpatterns = [
    path("sync-events", SyncEventListView.as_view(), name="sync-event-list"),
]
