"""Any system over Standard Webhooks (https://www.standardwebhooks.com), both ways: every catalog
change delivered to each subscribed endpoint, and signed changes from an endpoint's system
applied to the catalog. Each endpoint is an instance of this integration: its mappings, audit
rows and tombstones carry the integration type `webhooks:<endpoint id>`."""

INTEGRATION_TYPE = "webhooks"


def endpoint_integration_type(endpoint_id: int) -> str:
    return f"{INTEGRATION_TYPE}:{endpoint_id}"
