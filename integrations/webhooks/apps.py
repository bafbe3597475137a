from django.apps import AppConfig


class WebhooksIntegrationConfig(AppConfig):
    name = "integrations.webhooks"
    label = "webhooks_integration"
    verbose_name = "Standard Webhooks integration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sync.integrations import register_integration

        from .contract import WEBHOOKS

        register_integration(WEBHOOKS)

        from django.db.models.signals import post_delete, post_save

        from .models import WebhookEndpoint
        from .services import endpoints_active_forget

        post_save.connect(lambda **_: endpoints_active_forget(), sender=WebhookEndpoint, weak=False)
        post_delete.connect(lambda **_: endpoints_active_forget(), sender=WebhookEndpoint, weak=False)
