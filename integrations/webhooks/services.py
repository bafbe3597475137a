"""Endpoints: created with a secret shown once, rotated with a grace period, disabled and
enabled again; their dead letters replayed; and everything resent to a new subscriber."""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
import time
from datetime import timedelta
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .models import WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification: between 24 and 64 bytes


def webhook_secret_new() -> str:
    """A signing secret as the specification writes it: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def endpoint_url_check(url: str) -> None:
    """Refuse a URL the hub must not call: not http(s), or (unless WEBHOOKS_ALLOW_PRIVATE_URLS)
    a host that resolves to a loopback, private, link-local or otherwise internal address, so an
    endpoint cannot be used to reach the hub's own network. Checked when an endpoint is saved and
    again before each delivery (a name may resolve elsewhere later)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter an http:// or https:// URL with a host.")
    if settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (socket.gaierror, UnicodeError):
        raise ValidationError(f"The host {parts.hostname} does not resolve.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global:
            raise ValidationError(f"The host {parts.hostname} is an internal address ({ip}); endpoints must be public.")


def endpoint_create(*, url: str, description: str = "", event_types: list[str] | None = None, enabled: bool = True) -> WebhookEndpoint:
    endpoint_url_check(url)
    return WebhookEndpoint.objects.create(
        url=url, description=description, event_types=list(event_types or []), enabled=enabled, secret=webhook_secret_new()
    )


def endpoint_update(*, endpoint: WebhookEndpoint, **fields: object) -> WebhookEndpoint:
    if "url" in fields:
        endpoint_url_check(str(fields["url"]))
    if fields.get("enabled") and not endpoint.enabled:
        return endpoint_enable(endpoint=endpoint, **{k: v for k, v in fields.items() if k != "enabled"})
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret; the old one still signs (beside the new) and verifies for
    WEBHOOKS_SECRET_GRACE_SECONDS, so the other system can switch without losing a message."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(seconds=settings.WEBHOOKS_SECRET_GRACE_SECONDS)
    endpoint.secret = webhook_secret_new()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint


def endpoint_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The secrets that sign and verify now: the current one, and the previous in its grace."""
    valid = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > timezone.now():
        valid.append(endpoint.previous_secret)
    return valid


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> int:
    """Stop delivering to it; its pending deliveries become dead letters (replayable). Returns
    how many were dead-lettered."""
    with transaction.atomic():
        endpoint.enabled = False
        endpoint.disabled_reason = reason[:500]
        endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
        return endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.DEAD, last_error=f"endpoint disabled: {reason}"[:2000]
        )


def endpoint_enable(*, endpoint: WebhookEndpoint, **fields: object) -> WebhookEndpoint:
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, "", None
    endpoint.save()
    return endpoint


def deliveries_replay(*, deliveries) -> int:
    """Send dead-lettered deliveries again, from their first attempt, in their order."""
    return deliveries.filter(status=WebhookDelivery.Status.DEAD).update(
        status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )


def endpoint_wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """Whether the endpoint subscribed to `event_type` (its list may use wildcards: `invoice.*`)."""
    return not endpoint.event_types or any(fnmatchcase(event_type, pattern) for pattern in endpoint.event_types)


def endpoint_resend_all(*, endpoint: WebhookEndpoint) -> None:
    """Ask for every catalog item to be sent to the endpoint as it is now (the delivery sender
    queues them, a page at a time, behind what is already queued)."""
    endpoint.resend_requested_at, endpoint.resend_cursor = timezone.now(), 0
    endpoint.save(update_fields=["resend_requested_at", "resend_cursor", "updated_at"])


_active: tuple[float, bool] = (float("-inf"), False)


def endpoints_active() -> bool:
    """Whether any endpoint is enabled: while none is, catalog changes are not enqueued for this
    integration at all (a hub on Stripe alone pays nothing for it). Asked at every change, so the
    answer is kept WEBHOOKS_ACTIVE_CACHE_SECONDS in each process: an endpoint created or enabled
    hears of changes from then on (earlier ones: "resend everything")."""
    global _active
    checked, value = _active
    now = time.monotonic()
    if now - checked >= settings.WEBHOOKS_ACTIVE_CACHE_SECONDS:
        value = WebhookEndpoint.objects.filter(enabled=True).exists()
        _active = (now, value)
    return value


def endpoints_active_forget() -> None:
    """Ask the database next time (this process changed an endpoint)."""
    global _active
    _active = (float("-inf"), False)
