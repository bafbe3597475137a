"""The error answers of the API in its OpenAPI schema: every 4xx an operation can give, with the
shape of its body, so that the schema tells the whole truth (schemathesis checks it,
tests/test_schemathesis.py). A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS)."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework.settings import api_settings

FIELD_ERRORS = "FieldErrors"
ERROR_DETAIL = "ErrorDetail"

COMPONENTS = {
    FIELD_ERRORS: {
        "type": "object",
        "description": (
            "What is wrong with the request: per field, its messages (or, for a nested field such as "
            "`address` or `metadata`, the same shape per part); `non_field_errors` for the request as a "
            "whole; `detail` alone when the body could not be read at all."
        ),
        "additionalProperties": {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "string"},
                {"$ref": f"#/components/schemas/{FIELD_ERRORS}"},
            ]
        },
        "example": {"email": ["Enter a valid email address."]},
    },
    ERROR_DETAIL: {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
}


def conflict_response(description: str) -> OpenApiResponse:
    """A 409 (synchub.api.Conflict) for an operation's `extend_schema(responses=...)`: only the
    operations that can give one document it, each saying when."""
    return OpenApiResponse(response={"$ref": f"#/components/schemas/{ERROR_DETAIL}"}, description=description)


def _response(description: str, component: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }


def _errors_of(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The error answers DRF and the hub's handlers can give to `operation`."""
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    errors = {}
    if has_body or any(parameter["in"] == "query" for parameter in parameters):
        errors["400"] = _response("Invalid input: field errors (or a body that is not JSON)", FIELD_ERRORS)
    security = operation.get("security", [])
    if security and {} not in security:
        errors["401"] = _response("Not authenticated (no or an invalid token or session)", ERROR_DETAIL)
        errors["403"] = _response("Not allowed (or a session request without its CSRF token)", ERROR_DETAIL)
    errors["404"] = _response("Not found: no such item, a page beyond the last, or an unknown `format`", ERROR_DETAIL)
    errors["406"] = _response("No answer in a media type the Accept header allows", ERROR_DETAIL)
    if has_body:
        errors["413"] = _response("Body larger than DATA_UPLOAD_MAX_MEMORY_SIZE", ERROR_DETAIL)
        errors["415"] = _response("Body not sent as application/json", ERROR_DETAIL)
    if api_settings.DEFAULT_THROTTLE_CLASSES:
        errors["429"] = _response("Too many requests: retry after the Retry-After header's seconds", ERROR_DETAIL)
    return errors


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add the error answers to every operation of the REST API (those it documents itself are
    kept: the webhook's, for one)."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            for status, response in _errors_of(operation).items():
                operation["responses"].setdefault(status, response)
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    return result
