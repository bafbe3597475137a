from django.urls import path, register_converter

from catalog.converters import ItemIdConverter

from . import problem_views
from .views import SyncEventListView

register_converter(ItemIdConverter, "row_id")

urlpatterns = [
    path("sync-events", SyncEventListView.as_view(), name="sync-event-list"),
    path("dead-letters", problem_views.DeadLetterListView.as_view(), name="dead-letter-list"),
    path("dead-letters/replay", problem_views.DeadLetterBulkReplayView.as_view(), name="dead-letter-bulk-replay"),
    path("dead-letters/<row_id:pk>", problem_views.DeadLetterDetailView.as_view(), name="dead-letter-detail"),
    path("dead-letters/<row_id:pk>/replay", problem_views.DeadLetterReplayView.as_view(), name="dead-letter-replay"),
    path("conflicts", problem_views.SyncConflictListView.as_view(), name="conflict-list"),
    path("conflicts/<row_id:pk>/resolve", problem_views.SyncConflictResolveView.as_view(), name="conflict-resolve"),
]
