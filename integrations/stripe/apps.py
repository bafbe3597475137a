from django.apps import AppConfig


class StripeIntegrationConfig(AppConfig):
    name = "integrations.stripe"
    label = "stripe_integration"
    verbose_name = "Stripe integration"

    def ready(self) -> None:
        from catalog.models import Customer
        from sync.health import register_health_check
        from sync.outward import register_outward_sync
        from sync.reconcile import register_reconciler

        from . import INTEGRATION_TYPE
        from .health import stripe_reachable
        from .reconcile import StripeReconciler
        from .tasks import push_customer_to_stripe

        register_outward_sync(model=Customer, integration_type=INTEGRATION_TYPE, task=push_customer_to_stripe)
        register_health_check(INTEGRATION_TYPE, stripe_reachable)
        register_reconciler(INTEGRATION_TYPE, StripeReconciler)
