"""Logging helpers: secrets never reach a log line."""

from __future__ import annotations

import logging

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter as JsonFormatterBase

REDACTED = "[redacted]"


def _configured_secrets() -> list[str]:
    # Imported here: logging is configured before the apps (and the integrations' contracts) load.
    from sync.integrations import configured_secrets

    values = [
        getattr(settings, "SECRET_KEY", ""),
        settings.DATABASES["default"].get("PASSWORD", "") if settings.configured else "",
        *configured_secrets(),
    ]
    return [value for value in values if value and len(value) >= 6]


def redact(text: str) -> str:
    """`text` without the configured secrets, nor anything shaped like an integration's secrets
    (each integration's contract declares both)."""
    from sync.integrations import secret_pattern

    for secret in _configured_secrets():
        text = text.replace(secret, REDACTED)
    pattern = secret_pattern()
    return pattern.sub(REDACTED, text) if pattern is not None else text


class RedactSecretsFilter(logging.Filter):
    """Replaces configured secrets (Django's SECRET_KEY, the database password, each
    integration's keys) and anything shaped like an integration's secret in the message; the
    formatters below do the same for exception text."""

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
