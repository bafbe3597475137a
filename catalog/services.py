"""Business rules of the catalog: every write to customers and their mappings goes through here."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import CatalogIntegration, CatalogItem, Customer, SyncStatus

DUPLICATE_EMAIL_MESSAGE = "A customer with this email already exists."


def normalize_email(email: str | None) -> str | None:
    email = (email or "").strip()
    return email or None


def customer_email_taken(*, email: str | None, exclude_id: int | None = None) -> bool:
    if not email:
        return False
    others = Customer.objects.non_polymorphic().filter(email__iexact=email)
    if exclude_id is not None:
        others = others.exclude(pk=exclude_id)
    return others.exists()


def _save_customer(customer: Customer) -> Customer:
    customer.email = normalize_email(customer.email)
    if customer_email_taken(email=customer.email, exclude_id=customer.pk):
        raise ValidationError({"email": [DUPLICATE_EMAIL_MESSAGE]})
    try:
        # A savepoint, so a concurrent duplicate caught by the database leaves the caller's
        # transaction usable and the error readable.
        with transaction.atomic():
            customer.save()
    except IntegrityError as exc:
        if customer_email_taken(email=customer.email, exclude_id=customer.pk):
            raise ValidationError({"email": [DUPLICATE_EMAIL_MESSAGE]}) from exc
        raise
    return customer


def customer_create(*, name: str = "", email: str | None = None) -> Customer:
    return _save_customer(Customer(name=name, email=email))


def customer_update(*, customer: Customer, **fields: object) -> Customer:
    """Apply `fields` (name, email) and save; a save with no actual change writes nothing."""
    changed = False
    for field, value in fields.items():
        if field == "email":
            value = normalize_email(value)  # type: ignore[arg-type]
        if getattr(customer, field) != value:
            setattr(customer, field, value)
            changed = True
    if changed:
        _save_customer(customer)
    return customer


def customer_delete(*, customer: Customer) -> None:
    customer.delete()


# --- Mappings between catalog items and external systems -------------------------------------


def integration_get(*, integration_type: str, integration_id: str) -> CatalogIntegration | None:
    return (
        CatalogIntegration.objects.select_related("catalog_item")
        .filter(integration_type=integration_type, integration_id=integration_id)
        .first()
    )


def integration_for_item(*, item_id: int, integration_type: str) -> CatalogIntegration | None:
    return CatalogIntegration.objects.filter(catalog_item_id=item_id, integration_type=integration_type).first()


def integration_mark_pending(*, item: CatalogItem, integration_type: str) -> CatalogIntegration:
    mapping, created = CatalogIntegration.objects.get_or_create(
        catalog_item=item, integration_type=integration_type, defaults={"status": SyncStatus.PENDING}
    )
    if not created and mapping.status != SyncStatus.PENDING:
        mapping.status = SyncStatus.PENDING
        mapping.save(update_fields=["status", "updated_at"])
    return mapping


def integration_record_synced(*, item_id: int, integration_type: str, integration_id: str) -> CatalogIntegration:
    mapping, _ = CatalogIntegration.objects.update_or_create(
        catalog_item_id=item_id,
        integration_type=integration_type,
        defaults={
            "integration_id": integration_id,
            "status": SyncStatus.SYNCED,
            "last_synced_at": timezone.now(),
            "last_error": "",
            "pending_create_key": "",
        },
    )
    return mapping


def integration_begin_create(*, item_id: int, integration_type: str, key: str) -> tuple[str, bool]:
    """Record, before the remote call, that a create with idempotency key `key` is under way.

    Returns the key to use and whether an earlier create was interrupted (its key is reused,
    and it may have reached the other side).
    """
    mapping, _ = CatalogIntegration.objects.get_or_create(catalog_item_id=item_id, integration_type=integration_type)
    if mapping.pending_create_key:
        return mapping.pending_create_key, True
    mapping.pending_create_key = key
    mapping.save(update_fields=["pending_create_key", "updated_at"])
    return key, False


def integration_link(*, item_id: int, integration_type: str, integration_id: str) -> None:
    """Record the external id of an item without touching its sync status."""
    CatalogIntegration.objects.filter(catalog_item_id=item_id, integration_type=integration_type).update(
        integration_id=integration_id
    )


def integration_record_error(*, item_id: int, integration_type: str, error: str, final: bool) -> None:
    """Record why a sync attempt failed: `final` marks the mapping failed, otherwise it stays
    pending while retries go on. No-op when the item is gone."""
    if not CatalogItem.objects.non_polymorphic().filter(pk=item_id).exists():
        return
    CatalogIntegration.objects.update_or_create(
        catalog_item_id=item_id,
        integration_type=integration_type,
        defaults={"status": SyncStatus.FAILED if final else SyncStatus.PENDING, "last_error": error[:2000]},
    )


def integration_remove(*, integration_type: str, integration_id: str) -> bool:
    deleted, _ = CatalogIntegration.objects.filter(
        integration_type=integration_type, integration_id=integration_id
    ).delete()
    return bool(deleted)
