from django.urls import path

from .inbound import InboundWebhookView

urlpatterns = [
    # Any text: an id out of range is a 404 answered before the database is asked.
    path("inbound/<str:endpoint_id>", InboundWebhookView.as_view(), name="webhooks-inbound"),
]
