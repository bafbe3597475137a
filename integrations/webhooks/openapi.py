"""The inbound endpoint in the OpenAPI schema (/docs): a plain Django view, added by this hook."""

from typing import Any

_DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
_HEADER = {"in": "header", "required": True, "schema": {"type": "string"}}

INBOUND_OPERATION = {
    "operationId": "webhooks_inbound_create",
    "summary": "Changes from an endpoint's own system (Standard Webhooks)",
    "description": (
        "A Standard Webhooks message signed with the endpoint's secret (`webhook-signature: v1,<base64 "
        "HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}'>`), at most five minutes old. The body is "
        "`{'type': 'customer.upserted' | 'customer.created' | 'customer.updated' | 'customer.deleted', "
        "'timestamp': ISO 8601, 'data': {'id': <the customer's id in that system>, name, email, phone, "
        "description, address, metadata, preferred_locales}}` (JSON). An upsert links the id to the customer it "
        "is mapped to, else to the customer with its email, else creates one; fields are merged three-way and "
        "the change goes on to Stripe and the other endpoints. A delete deletes the customer (refused, with the "
        "reason in the audit trail, when it has invoices)."
    ),
    "tags": ["webhooks"],
    "security": [],
    "parameters": [
        {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {**_HEADER, "name": "webhook-id"},
        {**_HEADER, "name": "webhook-timestamp"},
        {**_HEADER, "name": "webhook-signature"},
    ],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {
        "202": {"description": "Recorded; it will be applied", "content": _DETAIL},
        "400": {"description": "Malformed body (field errors), or a timestamp outside the tolerance"},
        "401": {"description": "Unsigned, or not signed with a valid secret of this endpoint", "content": _DETAIL},
        "404": {"description": "No such endpoint", "content": _DETAIL},
        "405": {"description": "Any method but POST"},
        "409": {"description": "This webhook-id was already received", "content": _DETAIL},
        "413": {"description": "Body larger than WEBHOOK_MAX_BYTES", "content": _DETAIL},
        "503": {"description": "Not recorded now; send it again later", "content": _DETAIL},
    },
}


def document_inbound(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("paths", {})["/webhooks/inbound/{endpoint_id}"] = {"post": INBOUND_OPERATION}
    return result
