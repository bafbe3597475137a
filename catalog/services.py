"""Business rules of the catalog: every write to customers and their mappings goes through here."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import CatalogIntegration, CatalogItem, Customer, SyncStatus
from .selectors import customers_with_email

DUPLICATE_EMAIL_MESSAGE = "A customer with this email already exists."


def normalize_email(email: str | None) -> str | None:
    email = (email or "").strip()
    return email or None


def customer_email_taken(*, email: str | None, exclude_id: int | None = None) -> bool:
    if not email:
        return False
    others = customers_with_email(email)
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


def integration_record_synced(
    *, item_id: int, integration_type: str, integration_id: str, agreed_fields: dict | None = None
) -> CatalogIntegration:
    """The external system confirmed the item: store its id, mark it synced, and merge
    `agreed_fields` (values both sides now hold) into the mapping's merge base."""
    with transaction.atomic():
        mapping = (
            CatalogIntegration.objects.select_for_update()
            .filter(catalog_item_id=item_id, integration_type=integration_type)
            .first()
        ) or CatalogIntegration(catalog_item_id=item_id, integration_type=integration_type)
        mapping.integration_id = integration_id
        mapping.status = SyncStatus.SYNCED
        mapping.last_synced_at = timezone.now()
        mapping.last_error = ""
        mapping.pending_create_key = ""
        mapping.synced_fields = {**mapping.synced_fields, **(agreed_fields or {})}
        mapping.save()
    return mapping


def integration_record_agreed(*, mapping: CatalogIntegration, agreed_fields: dict) -> None:
    """Merge values both sides hold into the mapping's merge base, leaving its status alone."""
    if agreed_fields:
        CatalogIntegration.objects.filter(pk=mapping.pk).update(
            synced_fields={**mapping.synced_fields, **agreed_fields}
        )


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


def integration_record_error(
    *, item_id: int, integration_type: str, error: str, final: bool, create_rejected: bool = False
) -> None:
    """Record why a sync attempt failed: `final` marks the mapping failed, otherwise it stays
    pending while retries go on; `create_rejected` says no create can have happened, so the next
    one may use a new idempotency key. No-op when the item is gone."""
    if not CatalogItem.objects.non_polymorphic().filter(pk=item_id).exists():
        return
    defaults = {"status": SyncStatus.FAILED if final else SyncStatus.PENDING, "last_error": error[:2000]}
    if create_rejected:
        defaults["pending_create_key"] = ""
    CatalogIntegration.objects.update_or_create(
        catalog_item_id=item_id, integration_type=integration_type, defaults=defaults
    )


def integration_remove(*, integration_type: str, integration_id: str) -> bool:
    deleted, _ = CatalogIntegration.objects.filter(
        integration_type=integration_type, integration_id=integration_id
    ).delete()
    return bool(deleted)
