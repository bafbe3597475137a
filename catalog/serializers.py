from datetime import datetime, tzinfo
from functools import cache
from typing import Any

from django.utils import timezone
from django_countries import countries
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import ITEM_ID_MAX, CatalogIntegration, Customer
from .services import DUPLICATE_EMAIL_MESSAGE, customer_email_taken, normalize_email
from .validators import validate_metadata, validate_preferred_locales

# What Stripe accepts for a customer (its API reference); the model's columns are wider so
# that whatever Stripe holds can come in.
NAME_MAX_LENGTH = 256
PHONE_MAX_LENGTH = 20
TEXT_MAX_LENGTH = 5000
NON_ASCII_EMAIL_MESSAGE = (
    "Enter an email address in ASCII characters only; write an internationalised domain in its "
    "xn-- form (x@bücher.example is x@xn--bcher-kva.example)."
)


@cache
def _country_choices() -> tuple[tuple[str, str], ...]:
    # Built once: DRF builds a serializer's fields anew for every request, and walking
    # django-countries' sorted, translated list each time cost a share of every API call.
    return tuple((code, str(name)) for code, name in countries)


class CountryCodeField(serializers.ChoiceField):
    """An ISO 3166-1 alpha-2 code, in any case (django-countries' list); not a country's name."""

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=_country_choices(), **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data.upper() if isinstance(data, str) else data)

    def to_representation(self, value) -> str:
        return str(getattr(value, "code", value) or "")  # the model gives a Country object


class CustomerEmailField(serializers.EmailField):
    """An email as the API takes it: ASCII only, as the schema's `format: email` (RFC 5321) says;
    Stripe's own checks of internationalised addresses vary. Inward, the model takes whatever
    Stripe holds, so an answer may carry such an address (catalog/openapi.py documents both)."""

    default_error_messages = {"non_ascii": NON_ASCII_EMAIL_MESSAGE}

    def to_internal_value(self, data) -> str:
        value = super().to_internal_value(data)
        if not value.isascii():
            self.fail("non_ascii")
        return value


class AddressSerializer(serializers.Serializer):
    """The customer's postal address; parts left out of a write keep their value."""

    line1 = serializers.CharField(source="address_line1", max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True)
    line2 = serializers.CharField(source="address_line2", max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True)
    city = serializers.CharField(source="address_city", max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True)
    state = serializers.CharField(source="address_state", max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True)
    postal_code = serializers.CharField(
        source="address_postal_code", max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True
    )
    country = CountryCodeField(
        source="address_country", required=False, allow_blank=True, help_text="ISO 3166-1 alpha-2 code, e.g. DE."
    )


def _iso_8601(value: datetime, zone: tzinfo) -> str:
    """As DRF's DateTimeField writes a time (ISO 8601 in the current time zone, UTC as `Z`),
    without its per-value time-zone look-ups."""
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class CustomerSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True, default="")
    email = CustomerEmailField(max_length=512, required=False, allow_null=True, allow_blank=True)
    phone = serializers.CharField(max_length=PHONE_MAX_LENGTH, required=False, allow_blank=True)
    description = serializers.CharField(max_length=TEXT_MAX_LENGTH, required=False, allow_blank=True)
    address = AddressSerializer(source="*", required=False)
    metadata = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=500),
        required=False,
        validators=[validate_metadata],
        help_text="String keys and values: at most 50 keys, keys up to 40 characters, values up to 500. "
        "The key `local_id` is the hub's own and cannot be set.",
    )
    preferred_locales = serializers.ListField(
        child=serializers.CharField(max_length=20),
        required=False,
        validators=[validate_preferred_locales],
        help_text="Languages in order of preference, as IETF tags (e.g. fr-FR, en).",
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "description",
            "address",
            "metadata",
            "preferred_locales",
            "catalog_type",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "catalog_type", "created_at", "updated_at"]

    def get_fields(self) -> dict:
        fields = super().get_fields()
        if self.instance is not None or self.partial:
            fields["name"].default = serializers.empty  # an update leaves an unnamed field alone
        return fields

    def to_representation(self, instance: Customer) -> dict[str, Any]:
        """The customer as DRF's field-by-field walk would give it (a test holds them equal, so
        the schema describes this), built directly from the columns: the walk, nested address
        and all, cost 4 ms of CPU per page of 100 customers, more than the rest of the request."""
        zone = timezone.get_current_timezone()
        return {
            "id": instance.pk,
            "name": instance.name,
            "email": instance.email,
            "phone": instance.phone,
            "description": instance.description,
            "address": instance.address,
            "metadata": {str(key): str(value) for key, value in instance.metadata.items()},
            "preferred_locales": [str(locale) for locale in instance.preferred_locales],
            "catalog_type": instance.catalog_type,
            "created_at": _iso_8601(instance.created_at, zone),
            "updated_at": _iso_8601(instance.updated_at, zone),
        }

    def validate_email(self, value: str | None) -> str | None:
        value = normalize_email(value)
        exclude_id = self.instance.pk if self.instance is not None else None
        if customer_email_taken(email=value, exclude_id=exclude_id):
            raise serializers.ValidationError(DUPLICATE_EMAIL_MESSAGE)
        return value


class IntegrationStatusSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="integration_type")
    external_id = serializers.CharField(source="integration_id", allow_null=True)

    class Meta:
        model = CatalogIntegration
        fields = ["type", "external_id", "status", "last_synced_at", "last_error"]


class CustomerIntegrationStatusSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    synced = serializers.BooleanField(help_text="True when every integration has confirmed the customer.")
    integrations = IntegrationStatusSerializer(many=True)


class IntegrationSerializer(serializers.ModelSerializer):
    """A mapping, with the item it maps as any catalog type (`item_*`) and, for customers, the
    customer fields the API has always had. Read the queryset with
    `select_related(catalog_item__<type>...)` (catalog_child_relations) to avoid a query per row."""

    item_id = serializers.IntegerField(source="catalog_item_id", read_only=True)
    item_type = serializers.CharField(source="catalog_item.catalog_type", read_only=True)
    item_label = serializers.SerializerMethodField()
    # Null when the item is no customer.
    customer_id = serializers.SerializerMethodField()
    # Null when the item is no customer, or (the email) when the customer has none.
    customer_name = serializers.CharField(
        source="catalog_item.customer.name", read_only=True, default=None, allow_null=True
    )
    customer_email = serializers.CharField(
        source="catalog_item.customer.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = CatalogIntegration
        fields = [
            "id",
            "item_id",
            "item_type",
            "item_label",
            "customer_id",
            "customer_name",
            "customer_email",
            "integration_type",
            "integration_id",
            "status",
            "last_synced_at",
            "last_error",
            "created_at",
        ]


    def get_item_label(self, mapping: CatalogIntegration) -> str:
        return str(mapping.catalog_item.as_child())

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_customer_id(self, mapping: CatalogIntegration) -> int | None:
        return mapping.catalog_item_id if mapping.catalog_item.catalog_type == Customer.catalog_type_name() else None


class CustomerBulkRowSerializer(CustomerSerializer):
    """A row of a bulk call: a customer, with `id` to update that one (only the fields named)."""

    id = serializers.IntegerField(
        required=False, min_value=1, max_value=ITEM_ID_MAX, help_text="Update this customer; omit to create one."
    )

    class Meta(CustomerSerializer.Meta):
        fields = ["id", "name", "email", "phone", "description", "address", "metadata", "preferred_locales"]
        read_only_fields = []


class CustomerBulkSerializer(serializers.Serializer):
    customers = CustomerBulkRowSerializer(many=True)


class CustomerBulkResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "error"])
    id = serializers.IntegerField(
        allow_null=True, help_text="The customer created or updated; null when the row's id was missing or invalid."
    )
    errors = serializers.DictField(help_text="Field errors of the row, as in a 400: {field: [messages]}.")


class CustomerBulkResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = CustomerBulkResultSerializer(many=True)
