"""The staff's customer forms (console and admin).

The rules a customer's values must follow are the API's: every form here runs what it parsed
through `catalog.serializers.CustomerSerializer` and shows the serializer's errors beside the
fields they are about. The forms only parse (lines of key=value, comma-separated lists); they
check nothing the serializer checks. Writes go through `catalog.services`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django_countries import countries

from catalog import services
from catalog.models import ADDRESS_PARTS, Customer
from catalog.serializers import CustomerSerializer

# The form fields (model field names) that make up the serializer's nested `address`.
ADDRESS_FIELDS = {part: f"address_{part}" for part in ADDRESS_PARTS}
CUSTOMER_FIELDS = [
    "name",
    "email",
    "phone",
    "description",
    *ADDRESS_FIELDS.values(),
    "metadata",
    "preferred_locales",
]


def _messages(errors: Any) -> list[str]:
    """The serializer's error messages under one field, as flat strings: a dict or list field
    reports per key or per item ({"plan": [...]}, {1: [...]}), said here as "plan: ..."."""
    if isinstance(errors, dict):
        return [f"{key}: {message}" for key, value in errors.items() for message in _messages(value)]
    if isinstance(errors, (list, tuple)):
        return [message for error in errors for message in _messages(error)]
    return [str(errors)]


def serializer_field_errors(errors: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str | None, list[str]]:
    """CustomerSerializer errors keyed by model field names (address.country -> address_country;
    None for errors about no one field). With the serializer's `data`, an error about one item
    of a list names the item rather than its position."""
    flat: dict[str | None, list[str]] = {}
    for key, value in errors.items():
        items = (data or {}).get(key)
        if isinstance(value, dict) and isinstance(items, list):
            value = {items[i] if isinstance(i, int) and i < len(items) else i: found for i, found in value.items()}
        if key == "address" and isinstance(value, dict):
            for part, part_errors in value.items():
                flat.setdefault(ADDRESS_FIELDS.get(part), []).extend(_messages(part_errors))
        elif key in CUSTOMER_FIELDS or key == "id":
            flat.setdefault(key, []).extend(_messages(value))
        else:
            flat.setdefault(None, []).extend(_messages(value))
    return flat


def serializer_payload(values: dict[str, Any]) -> dict[str, Any]:
    """The serializer's input for model field values: the address parts go in `address`."""
    payload = {key: value for key, value in values.items() if key not in ADDRESS_FIELDS.values()}
    address = {part: values[field] for part, field in ADDRESS_FIELDS.items() if field in values}
    if address:
        payload["address"] = address
    return payload


def parse_metadata_lines(text: str) -> dict[str, str]:
    """`key=value` lines (blank lines skipped) as a dict; a line that is not one raises."""
    metadata: dict[str, str] = {}
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator or not key:
            errors.append(f"Line {number}: “{line.strip()[:60]}” is not key=value.")
        elif key in metadata:
            errors.append(f"Line {number}: the key “{key[:60]}” is given twice.")
        else:
            metadata[key] = value.strip()
    if errors:
        raise ValidationError(errors)
    return metadata


def parse_locales(text: str) -> list[str]:
    return [locale.strip() for locale in text.split(",") if locale.strip()]


class MetadataField(forms.CharField):
    """A dict of strings edited as `key=value` lines."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return "\n".join(f"{key}={item}" for key, item in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, str]:
        if isinstance(value, dict):
            return value
        return parse_metadata_lines(super().to_python(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or {})
        except ValidationError:
            return True


class LocalesField(forms.CharField):
    """A list of strings edited as comma-separated text."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, (list, tuple)):
            return list(value)
        return parse_locales(super().to_python(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(data) != list(initial or [])


def country_choices() -> list[tuple[str, str]]:
    return [("", "—"), *((country.code, country.name) for country in countries)]


def serializer_max_lengths() -> dict[str, int]:
    """The serializer's length limits per model field, for the browser's maxlength."""
    fields = CustomerSerializer().fields
    address = fields["address"].fields
    candidates = {name: fields[name] for name in CUSTOMER_FIELDS if name in fields}
    candidates.update({field: address[part] for part, field in ADDRESS_FIELDS.items() if part in address})
    return {name: field.max_length for name, field in candidates.items() if getattr(field, "max_length", None)}


class SerializerValidationMixin:
    """Checks a form's cleaned values with CustomerSerializer; `validated_data` then holds what
    to pass to the services."""

    validated_data: dict[str, Any] | None = None

    def validate_with_serializer(self, instance: Customer | None) -> None:
        values = {name: self.cleaned_data[name] for name in CUSTOMER_FIELDS if name in self.cleaned_data}
        payload = serializer_payload(values)
        serializer = CustomerSerializer(instance, data=payload)
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
            return
        self.validated_data = None
        for field, messages in serializer_field_errors(serializer.errors, payload).items():
            self.add_error(field if field in self.fields else None, messages)


class CustomerForm(SerializerValidationMixin, forms.Form):
    # A plain Form, not a ModelForm: model validation would report the case-insensitive email
    # constraint in its own words; the serializer's duplicate check is the one rule we show.
    # The fields set no limits of their own: the serializer's are the rules (maxlength below
    # only keeps the browser from taking more).
    name = forms.CharField(label="Name", required=False)
    email = forms.CharField(label="Email", required=False)
    phone = forms.CharField(label="Phone", required=False)
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    address_line1 = forms.CharField(label="Address line 1", required=False)
    address_line2 = forms.CharField(label="Address line 2", required=False)
    address_city = forms.CharField(label="City", required=False)
    address_state = forms.CharField(label="State or region", required=False)
    address_postal_code = forms.CharField(label="Postal code", required=False)
    address_country = forms.CharField(label="Country", required=False, widget=forms.Select)
    metadata = MetadataField(
        label="Metadata",
        required=False,
        help_text="One key=value per line, e.g. plan=gold. Removing a line removes the key.",
    )
    preferred_locales = LocalesField(
        label="Preferred locales", required=False, help_text="Comma-separated language tags, e.g. fr-FR, en."
    )

    def __init__(self, *args, instance: Customer | None = None, **kwargs) -> None:
        self.instance = instance
        if instance is not None:
            kwargs.setdefault("initial", customer_initial(instance))
        super().__init__(*args, **kwargs)
        self.fields["address_country"].widget.choices = country_choices()
        for name, max_length in serializer_max_lengths().items():
            if name in self.fields:
                self.fields[name].widget.attrs["maxlength"] = str(max_length)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self.validate_with_serializer(self.instance)
        return cleaned

    def save(self) -> Customer | None:
        """Create or update through the catalog services. Returns None, with the service's
        reasons added to the form's fields, when a business rule refuses the change."""
        assert self.validated_data is not None, "save() of an invalid form"
        try:
            if self.instance is None:
                return services.customer_create(**self.validated_data)
            return services.customer_update(customer=self.instance, **self.validated_data)
        except ValidationError as exc:
            self.add_error(None, exc)
            return None


def customer_initial(customer: Customer) -> dict[str, Any]:
    """The form values of a customer (model field names)."""
    initial: dict[str, Any] = {
        "name": customer.name,
        "email": customer.email or "",
        "phone": customer.phone,
        "description": customer.description,
        "metadata": dict(customer.metadata or {}),
        "preferred_locales": list(customer.preferred_locales or []),
    }
    for part, field in ADDRESS_FIELDS.items():
        initial[field] = customer.address[part]
    return initial
