"""Logging helpers: secrets never reach a log line."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter as JsonFormatterBase

# Stripe keys and signing secrets have recognisable shapes; redact them wherever they appear.
SECRET_PATTERN = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z_]{4,}|\bwhsec_[0-9A-Za-z_]{4,}")
REDACTED = "[redacted]"


def _configured_secrets() -> list[str]:
    values = [
        getattr(settings, "SECRET_KEY", ""),
        getattr(settings, "STRIPE_API_KEY", ""),
        # Several while one is rotated, comma-separated.
        *getattr(settings, "STRIPE_WEBHOOK_SECRET", "").split(","),
        settings.DATABASES["default"].get("PASSWORD", "") if settings.configured else "",
    ]
    return [value for value in values if value and len(value) >= 6]


def redact(text: str) -> str:
    for secret in _configured_secrets():
        text = text.replace(secret, REDACTED)
    return SECRET_PATTERN.sub(REDACTED, text)


class RedactSecretsFilter(logging.Filter):
    """Replaces configured secrets (Django's SECRET_KEY, Stripe keys, the database password) and
    anything shaped like a Stripe key in the message; the formatters below do the same for
    exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class PlainFormatter(logging.Formatter):
    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))


class JsonFormatter(JsonFormatterBase):
    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))
