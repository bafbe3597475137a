from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints: the signing secret is generated here and shown once (on save and on rotation)."""

    list_display = ["id", "__str__", "url", "enabled", "failing_since", "disabled_reason"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    fields = ["url", "description", "event_types", "enabled", "failing_since", "disabled_reason", "created_at"]
    readonly_fields = ["failing_since", "disabled_reason", "created_at"]
    actions = ["rotate_secret", "replay_dead", "resend_all"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form, change: bool) -> None:
        try:
            services.endpoint_url_check(obj.url)
        except ValidationError as exc:
            # The form validated the URL's syntax only; say why the address is refused.
            messages.error(request, f"Not saved: {' '.join(exc.messages)}")
            raise
        if not change:
            obj.secret = services.webhook_secret_new()
            super().save_model(request, obj, form, change)
            messages.warning(request, f"Signing secret of “{obj}” (shown only now): {obj.secret}")
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Rotate the signing secret (the old one stays valid for a grace period)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            services.endpoint_rotate_secret(endpoint=endpoint)
            messages.warning(request, f"New signing secret of “{endpoint}” (shown only now): {endpoint.secret}")

    @admin.action(description="Enable and replay dead-lettered deliveries", permissions=["replay"])
    def replay_dead(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = 0
        for endpoint in queryset:
            if not endpoint.enabled:
                services.endpoint_enable(endpoint=endpoint)
            count += services.deliveries_replay(deliveries=endpoint.deliveries.all())
        messages.success(request, f"{count} deliveries sent again.")

    @admin.action(description="Resend every customer and invoice", permissions=["replay"])
    def resend_all(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            services.endpoint_resend_all(endpoint=endpoint)
        messages.success(request, f"Everything will be resent to {queryset.count()} endpoint(s).")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks_integration.replay_webhookdelivery")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    fields = ["attempted_at", "status_code", "latency_ms", "response_excerpt", "error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "endpoint", "event_type", "catalog_type", "item_id", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "endpoint", "event_type"]
    search_fields = ["message_id", "=item_id"]
    list_select_related = ["endpoint"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Send the selected dead letters again", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        messages.success(request, f"{services.deliveries_replay(deliveries=queryset)} deliveries sent again.")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks_integration.replay_webhookdelivery")
