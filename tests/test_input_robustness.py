"""No input reaches a 500: what a reviewer (and schemathesis) sent, answered with a 4xx that says
what is wrong. Runs on the configured database (SQLite by default; CI: PostgreSQL)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from .factories import CustomerFactory
from .helpers import stripe_signature

pytestmark = pytest.mark.django_db

# Deeper than Python's recursion limit: the JSON decoder raises RecursionError on it.
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("method", "url"),
    [("post", "/api/customers"), ("post", "/api/customers/bulk"), ("put", "/api/customers/1")],
)
def test_a_json_body_nested_too_deeply_is_a_400(api_client, method, url):
    CustomerFactory(id=1)
    response = getattr(api_client, method)(url, DEEP_JSON, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json() == {"detail": "JSON parse error - nested too deeply."}


def test_the_api_takes_json_only(api_client):
    response = api_client.post("/api/customers", {"name": "Form"}, format="multipart")
    assert response.status_code == 415
    assert "detail" in response.json()


def test_a_signed_webhook_nested_too_deeply_is_a_400(webhook_secret):
    response = Client().post(
        "/webhooks/stripe",
        data=DEEP_JSON,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(DEEP_JSON, webhook_secret),
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Malformed JSON payload."}


def import_csv(client: Client, text: str) -> str:
    upload = SimpleUploadedFile("c.csv", text.encode(), "text/csv")
    response = client.post("/admin/catalog/customer/import-csv/", {"file": upload})
    assert response.status_code == 200
    return response.content.decode()


def test_csv_import_reports_metadata_nested_too_deeply(admin_client):
    # Under the csv module's field limit (128 KiB), over the JSON decoder's depth.
    metadata = "[" * 50_000 + "]" * 50_000
    html = import_csv(admin_client, f"name,email,metadata\nDeep,deep@example.com,{metadata}\n")
    assert "0 of 1 rows saved." in html and "nested too deeply" in html


def test_csv_import_reports_a_field_over_the_csv_limit(admin_client):
    html = import_csv(admin_client, f"name,email\n{'x' * 200_000},big@example.com\n")
    assert "The file is not readable CSV: field larger than field limit" in html
