from django.apps import AppConfig


class StripeIntegrationConfig(AppConfig):
    name = "integrations.stripe"
    label = "stripe_integration"
    verbose_name = "Stripe integration"

    def ready(self) -> None:
        from sync.integrations import register_integration

        from .contract import STRIPE

        register_integration(STRIPE)
