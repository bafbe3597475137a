from __future__ import annotations

from django.apps import apps
from django.db import models, transaction
from django_countries.fields import CountryField
from polymorphic.models import PolymorphicModel

# The parts of a postal address, as Stripe and most systems name them.
ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")


# The largest id a catalog item can have (DEFAULT_AUTO_FIELD is BigAutoField, a signed 64-bit
# integer): a larger one matches no row, and must not reach the database, which overflows on it.
ITEM_ID_MAX = 2**63 - 1


def item_id_in_range(value: object) -> bool:
    """Whether `value` (an int, or the digits of a URL) can be the id of a catalog item."""
    text = str(value)
    return text.isascii() and text.isdigit() and len(text) <= len(str(ITEM_ID_MAX)) and 1 <= int(text) <= ITEM_ID_MAX


class CatalogItem(PolymorphicModel):
    """Base of everything the hub keeps in sync; each subclass is one catalog type."""

    catalog_type = models.CharField(max_length=50, editable=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        # Lists by last update (the customers table, the dashboard's recent items): an index
        # scan of the newest rows instead of sorting every item (bench 9: 120 ms -> 0.4 ms).
        indexes = [models.Index(fields=["-updated_at", "-id"], name="catalog_item_recent")]

    def save(self, *args, **kwargs) -> None:
        self.catalog_type = self.__class__.catalog_type_name()
        # Django sends post_save after the save's own atomic block has closed; keeping the
        # whole save in one transaction lets signal receivers (the sync outbox) commit with it.
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)

    @classmethod
    def catalog_type_name(cls) -> str:
        return cls._meta.model_name

    def as_child(self) -> CatalogItem:
        """The item as its own catalog type (a Customer, an Invoice...). The child row comes
        with a parent read through `select_related(*catalog_child_relations())`, without a
        query; a row read without it costs one."""
        if type(self) is not CatalogItem or not self.catalog_type:
            return self
        return getattr(self, self.catalog_type, self)


def catalog_types() -> list[type[CatalogItem]]:
    """Every catalog type (the concrete subclasses of CatalogItem), in the order they are defined."""
    return [model for model in apps.get_models() if issubclass(model, CatalogItem) and model is not CatalogItem]


def catalog_child_relations() -> list[str]:
    """The relations from a CatalogItem to its child rows, one per catalog type (their
    `catalog_type`, which is the child's model name), for `select_related`."""
    return [model.catalog_type_name() for model in catalog_types()]


def customer_email_key(email: str | None) -> str | None:
    """The form of an email that decides whether two customers have the same one: case-folded
    in Python (x@BÜCHER.example and x@bücher.example are one), so that it is the same on every
    database; SQLite's LOWER() folds ASCII letters only, PostgreSQL's all of Unicode."""
    return email.casefold() if email else None


class Customer(CatalogItem):
    """A customer, with every field a Stripe customer has that staff edit (README "Customers").

    Columns are as wide as the values Stripe can hold, so an inward change is never refused or
    cut; the API validates what staff enter as Stripe validates it (catalog/serializers.py).
    """

    name = models.CharField(max_length=256, blank=True)
    # Optional: Stripe customers need not have an email. Unique regardless of case, through
    # email_key. Shown and synced as entered.
    email = models.EmailField(max_length=512, null=True, blank=True)
    # customer_email_key(email), set by every save: what "the same email" means (README, "Customers").
    # Case folding can make a text up to three times longer (ﬃ -> ffi).
    email_key = models.CharField(max_length=3 * 512, null=True, blank=True, editable=False)
    phone = models.CharField(max_length=255, blank=True, default="")
    description = models.TextField(blank=True, default="")
    address_line1 = models.CharField("address line 1", max_length=5000, blank=True, default="")
    address_line2 = models.CharField("address line 2", max_length=5000, blank=True, default="")
    address_city = models.CharField("city", max_length=5000, blank=True, default="")
    address_state = models.CharField("state, county, province or region", max_length=5000, blank=True, default="")
    address_postal_code = models.CharField("postal code", max_length=5000, blank=True, default="")
    address_country = CountryField("country", max_length=64, blank=True, default="")
    # String keys and values (Stripe's limits: 50 keys, keys up to 40 characters, values up to 500).
    metadata = models.JSONField(default=dict, blank=True)
    preferred_locales = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            # Partial, so that it is a named index on SQLite too (and customers without an
            # email take no room in it); `email_key = %s` implies the condition on both databases.
            models.UniqueConstraint(
                fields=["email_key"], condition=models.Q(email_key__isnull=False), name="customer_email_key_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.email or f"Customer {self.pk}"

    def save(self, *args, **kwargs) -> None:
        self.email_key = customer_email_key(self.email)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields and "email_key" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "email_key"]
        super().save(*args, **kwargs)

    @property
    def address(self) -> dict[str, str]:
        """The address as one value: its parts, blank ones as empty strings."""
        address = {part: str(getattr(self, f"address_{part}") or "") for part in ADDRESS_PARTS if part != "country"}
        # A code stored as an upper-case alpha-2 (as the services store it) is its own normal
        # form: read from the instance's __dict__, where django-countries' descriptor keeps it.
        # Reading the attribute builds a Country object, a look-up in its tables, for every
        # customer read (a page of the API is 100); anything else still goes that way.
        stored = self.__dict__.get("address_country")
        canonical = isinstance(stored, str) and (stored == "" or (len(stored) == 2 and stored.isupper()))
        address["country"] = stored if canonical else str(self.address_country or "")
        return address


class InvoiceStatus(models.TextChoices):
    """Stripe's invoice statuses: a draft is edited, then finalized (open); an open invoice is
    paid, voided or marked uncollectible, and an uncollectible one can still be paid or voided."""

    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


def invoice_total(lines: list[dict]) -> int:
    """The sum of quantity × unit amount over `lines`, in minor units (cents)."""
    return sum(int(line.get("quantity", 0)) * int(line.get("unit_amount", 0)) for line in lines)


class Invoice(CatalogItem):
    """An invoice to a customer, with its lines; the second catalog type (Stripe's invoices).

    `number` is given by the external system when the invoice is finalized; `total` is derived
    from the lines at every save, never set on its own.
    """

    # PROTECT: an invoice is a record of what a customer owes or paid; deleting the customer
    # must not take it along (catalog.services.customer_delete refuses with a clear message).
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    # A lower-case ISO 4217 code, as Stripe writes it ("eur").
    currency = models.CharField(max_length=3)
    description = models.TextField(blank=True, default="")
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT, db_index=True
    )
    number = models.CharField(max_length=255, blank=True, default="")
    # [{"description": str, "quantity": int >= 1, "unit_amount": int >= 0 (minor units)}, ...]
    lines = models.JSONField(default=list, blank=True)
    total = models.BigIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return self.number or f"Invoice {self.pk}"

    @classmethod
    def _check_field_name_clashes(cls) -> list:
        # Django refuses a field named like an accessor of the parent model: CatalogItem.customer
        # is the Customer row of an item that is a customer (multi-table inheritance). An invoice
        # never is one, and on Invoice the foreign key wins (attribute and lookups alike;
        # tests/test_invoices.py holds it), so `customer` keeps Stripe's name for the field.
        return [
            error
            for error in super()._check_field_name_clashes()
            if not (error.id == "models.E006" and error.obj is cls._meta.get_field("customer"))
        ]

    def save(self, *args, **kwargs) -> None:
        self.total = invoice_total(self.lines)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "lines" in update_fields and "total" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "total"]
        super().save(*args, **kwargs)

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT


class SyncStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"


class CatalogIntegration(models.Model):
    """Maps one catalog item to its counterpart in one external system, with sync state."""

    catalog_item = models.ForeignKey(CatalogItem, on_delete=models.CASCADE, related_name="integrations")
    integration_type = models.CharField(max_length=50)
    # Empty until the external system has confirmed the item.
    integration_id = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=20, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Set before asking the external system to create the item, cleared once it confirmed: a
    # create interrupted by a crash is retried with the same idempotency key (and looked up).
    pending_create_key = models.CharField(max_length=255, blank=True, default="")
    # The field values both sides last agreed on: the base of the three-way merge that tells a
    # local change from a remote one (see README, "Conflicts").
    synced_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration_type", "integration_id"], name="integration_external_id_unique"),
            models.UniqueConstraint(fields=["catalog_item", "integration_type"], name="integration_per_item_unique"),
        ]
        indexes = [
            models.Index(fields=["status"]),
            # The integrations table, newest first, without sorting every mapping.
            models.Index(fields=["-updated_at", "-id"], name="integration_recent"),
            # Finding an item by its id in any system (the console's search).
            models.Index(fields=["integration_id"], name="integration_external_id"),
        ]
        permissions = [("resync_catalogintegration", "Can request a resync of catalog items")]

    def __str__(self) -> str:
        return f"{self.integration_type}:{self.integration_id or '(pending)'} -> item {self.catalog_item_id}"
