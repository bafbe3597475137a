"""Checks of customer values as Stripe makes them, so that what the API accepts Stripe accepts."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

# The key under which the hub stores, in Stripe, the local id of a customer it created.
RESERVED_METADATA_KEYS = frozenset({"local_id"})
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500
# IETF language tags as Stripe takes them: "en", "fr-FR", "zh-Hant-TW".
LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def validate_metadata(value: dict[str, Any]) -> None:
    errors = []
    if len(value) > METADATA_MAX_KEYS:
        errors.append(f"At most {METADATA_MAX_KEYS} keys.")
    for key in value:
        if not key or len(key) > METADATA_KEY_MAX_LENGTH:
            errors.append(f"Key {key[:50]!r}: keys are 1 to {METADATA_KEY_MAX_LENGTH} characters.")
        elif "\x00" in key:  # PostgreSQL's jsonb cannot hold it (a DataError)
            errors.append(f"Key {key!r}: null characters are not allowed.")
        elif "[" in key or "]" in key:
            errors.append(f"Key {key!r}: square brackets are not allowed.")
        elif key in RESERVED_METADATA_KEYS:
            errors.append(f"Key {key!r} is reserved for the hub.")
    if errors:
        raise serializers.ValidationError(errors)


def validate_preferred_locales(value: list[str]) -> None:
    invalid = [locale for locale in value if not LOCALE_PATTERN.match(locale)]
    if invalid:
        raise serializers.ValidationError(
            [f"{locale[:30]!r} is not a language tag such as en or fr-FR." for locale in invalid]
        )
    if len(set(value)) != len(value):
        raise serializers.ValidationError(["Each locale at most once."])
