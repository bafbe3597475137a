"""How a local customer's fields map to a Stripe customer's, in both shapes.

Values are compared in one normal form on both sides: blank text is "", an address is a dict of
its six parts ("" when blank), metadata a dict of strings without the hub's own keys,
preferred locales a list. `STRIPE_FIELD_MAP` says which fields sync, and which way.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings

from catalog.models import ADDRESS_PARTS, Customer
from catalog.services import normalize_email
from catalog.validators import RESERVED_METADATA_KEYS
from sync.fields import FieldMap, FieldMapping, field_map_parse

# Every customer field the hub can sync, by the kind of value it holds (a field may be mapped
# to another of its kind only).
FIELD_KINDS = {
    "name": "text",
    "email": "email",
    "phone": "text",
    "description": "text",
    "address": "address",
    "metadata": "metadata",
    "preferred_locales": "locales",
}
# Merged key by key: a key changed in Stripe and another changed here both survive.
PER_KEY_FIELDS = frozenset({"address", "metadata"})
# Sent whole whenever a part changed: Stripe replaces an address given in an update.
SENT_WHOLE_FIELDS = frozenset({"address"})
LOCAL_ID_KEY = "local_id"


@cache
def _parsed(spec: str) -> FieldMap:
    return field_map_parse(spec, kinds=FIELD_KINDS, setting="STRIPE_FIELD_MAP")


def stripe_field_map() -> FieldMap:
    return _parsed(settings.STRIPE_FIELD_MAP)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _address(value: Any) -> dict[str, str]:
    value = value if isinstance(value, dict) else {}
    return {part: _text(value.get(part)) for part in ADDRESS_PARTS}


def _metadata(value: Any) -> dict[str, str]:
    # An empty value is no value: Stripe removes a key set to "" (some emulators keep it as "").
    value = value if isinstance(value, dict) else {}
    return {
        str(key): _text(item)
        for key, item in value.items()
        if key not in RESERVED_METADATA_KEYS and item not in (None, "")
    }


def _locales(value: Any) -> list[str]:
    return [str(locale) for locale in value] if isinstance(value, list) else []


_NORMAL_FORM = {
    "text": _text,
    "email": normalize_email,
    "address": _address,
    "metadata": _metadata,
    "locales": _locales,
}


def _normal(field: str, value: Any) -> Any:
    return _NORMAL_FORM[FIELD_KINDS[field]](value)


def customer_values(customer: Customer) -> dict[str, Any]:
    """Every syncable field of the local customer, by local field name, in normal form."""
    return {
        "name": _text(customer.name),
        "email": normalize_email(customer.email),
        "phone": _text(customer.phone),
        "description": _text(customer.description),
        "address": customer.address,
        "metadata": _metadata(customer.metadata),
        "preferred_locales": _locales(customer.preferred_locales),
    }


def outward_values(customer: Customer) -> dict[str, Any]:
    """The local fields that go to Stripe, by local name."""
    values = customer_values(customer)
    return {mapping.local: values[mapping.local] for mapping in stripe_field_map().outward()}


def inward_values(remote: dict[str, Any]) -> dict[str, Any]:
    """The Stripe customer's fields that come here, by local name, in normal form. A field the
    object lacks (an event rendered at an older API version) is left out: not known is not blank."""
    return {
        mapping.local: _normal(mapping.remote, remote[mapping.remote])
        for mapping in stripe_field_map().inward()
        if mapping.remote in remote
    }


def inward_only_fields() -> frozenset[str]:
    """Fields Stripe owns (mapped inward only): its value always wins."""
    return frozenset(m.local for m in stripe_field_map().inward() if not m.direction.outward)


def compared_values(*, customer: Customer, remote: dict[str, Any]) -> list[tuple[FieldMapping, Any, Any]]:
    """(mapping, local value, Stripe value) of every synced field, for a reconcile's diff."""
    values = customer_values(customer)
    return [
        (mapping, values[mapping.local], _normal(mapping.remote, remote.get(mapping.remote)))
        for mapping in stripe_field_map().mappings
        if mapping.direction.outward or mapping.direction.inward
    ]


def stripe_create_params(values: dict[str, Any]) -> dict[str, Any]:
    """Stripe API parameters that create a customer with `values` (local name -> value): blank
    fields are left out, as a create must not name them."""
    params = stripe_params(values)
    return {name: value for name, value in params.items() if value not in ("", None, {}, [])}


def stripe_params(changed: dict[str, Any]) -> dict[str, Any]:
    """Stripe API parameters that set `changed` (local name -> value; for metadata, the keys to
    set, None for a key to remove). Stripe clears a field given an empty string."""
    remote_names = {mapping.local: mapping.remote for mapping in stripe_field_map().mappings}
    params: dict[str, Any] = {}
    for local, value in changed.items():
        kind = FIELD_KINDS[local]
        if kind == "metadata":
            value = {key: "" if item is None else item for key, item in (value or {}).items()}
        elif kind == "address":
            value = _address(value) if any((value or {}).values()) else ""
        elif kind == "locales":
            value = list(value) if value else ""
        elif value is None:
            value = ""
        params[remote_names[local]] = value
    return params


def local_id_of(remote: dict[str, Any]) -> int | None:
    """The local id the hub stored in the Stripe object (customer, invoice) it created, if any."""
    value = str((remote.get("metadata") or {}).get(LOCAL_ID_KEY) or "")
    return int(value) if value.isdigit() and len(value) < 19 else None
