import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

DATA_ERROR_MESSAGE = "A value is too long or out of range."


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"

    @property
    def default_detail(self) -> str:
        return f"Request body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


class Conflict(exceptions.APIException):
    """409: the request is valid, but the item's state does not allow it (an invoice no longer a
    draft, a customer that still has invoices); the body is {"detail": why}."""

    status_code = 409
    default_detail = "The item's current state does not allow this."
    default_code = "conflict"


def exception_handler(exc, context):
    """DRF's handler, plus: a Django ValidationError raised by a service is a 400 with field errors,
    and so is a value the database refused (DataError: too long, out of range; OverflowError:
    an integer SQLite cannot hold), never a 500; a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413.

    Serializers validate before the database; a DataError here is a check they lack, so it is
    logged with its traceback. DRF's handler rolls the request's transaction back.
    """
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML 400.
        exc = PayloadTooLarge()
    elif isinstance(exc, (DataError, OverflowError)):
        request = context.get("request")
        method, path = getattr(request, "method", "?"), getattr(request, "path", "?")
        logger.warning("the database refused a value of %s %s", method, path, exc_info=exc)
        exc = exceptions.ValidationError({"non_field_errors": [DATA_ERROR_MESSAGE]})
    elif isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, list):
        # Every 400 is {field: [messages]}, as the schema says; a bare list is about no one field.
        exc = exceptions.ValidationError({"non_field_errors": exc.detail})
    return drf_exception_handler(exc, context)
