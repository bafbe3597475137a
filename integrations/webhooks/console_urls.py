from django.urls import path

from . import console_views

urlpatterns = [
    path("", console_views.endpoint_list, name="endpoint-list"),
    path("<str:pk>/", console_views.endpoint_detail, name="endpoint-detail"),
    path("<str:pk>/replay/", console_views.endpoint_replay, name="endpoint-replay"),
    path("<str:pk>/resend-all/", console_views.endpoint_resend_all, name="endpoint-resend-all"),
]
