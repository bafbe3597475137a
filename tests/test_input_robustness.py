"""No input reaches a 500: what a reviewer (and schemathesis) sent, answered with a 4xx that says
what is wrong. Runs on the configured database (SQLite by default; CI: PostgreSQL)."""

from __future__ import annotations

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError
from django.test import Client
from django.utils import timezone

from catalog import services
from catalog.models import CatalogIntegration, Customer
from sync.models import SyncEvent

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


HUGE_ID = 27503541270556450816  # beyond 64 bits


def test_an_id_out_of_range_in_the_url_is_a_404(api_client):
    for customer_id in [HUGE_ID, 2**63, 10**400, 0, -1, "１"]:
        for method, suffix in [("get", ""), ("put", ""), ("patch", ""), ("delete", ""), ("get", "/integration-status")]:
            url = f"/api/customers/{customer_id}{suffix}"
            response = getattr(api_client, method)(url, {"name": "x"}, format="json")
            assert response.status_code == 404, (method, url, response.content)
            assert response.json() == {"detail": "No Customer matches the given query."}


def test_the_largest_id_is_looked_up(api_client):
    assert api_client.get(f"/api/customers/{2**63 - 1}").status_code == 404
    customer = CustomerFactory()
    assert api_client.get(f"/api/customers/{customer.pk}").status_code == 200


def test_bulk_row_ids_are_validated_and_results_carry_an_integer_or_null(api_client):
    existing = CustomerFactory(name="Before")
    rows = [
        {"id": HUGE_ID, "name": "huge"},
        {"id": "abc", "name": "text"},
        {"id": 0, "name": "zero"},
        {"id": [1], "name": "list"},
        {"id": True, "name": "bool"},
        {"id": 2**63 - 1, "name": "nobody"},
        {"id": str(existing.pk), "name": "After"},
    ]
    response = api_client.post("/api/customers/bulk", {"customers": rows}, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["id"] for r in results] == [None, None, None, None, None, 2**63 - 1, existing.pk]
    assert [r["status"] for r in results] == ["error"] * 6 + ["updated"]
    assert results[0]["errors"] == {"id": ["Ensure this value is less than or equal to 9223372036854775807."]}
    assert results[1]["errors"] == {"id": ["A valid integer is required."]}
    assert results[2]["errors"] == {"id": ["Ensure this value is greater than or equal to 1."]}
    assert results[5]["errors"] == {"id": ["No such customer."]}
    existing.refresh_from_db()
    assert existing.name == "After"


DATETIME_FILTERS = [
    ("/api/customers", "created_after"),
    ("/api/customers", "created_before"),
    ("/api/customers", "updated_after"),
    ("/api/integrations", "created_after"),
    ("/api/integrations", "created_before"),
    ("/api/sync-events", "created_after"),
    ("/api/sync-events", "created_before"),
]


def test_datetime_filters_take_any_utc_offset_python_can_read(api_client):
    """PostgreSQL refuses offsets beyond ±15:59; the filters query in UTC, so any works."""
    customer = CustomerFactory()
    CatalogIntegration.objects.update_or_create(catalog_item=customer, integration_type="stripe")
    SyncEvent.objects.create(task="t", item_id=customer.pk, outcome="succeeded")
    for offset in ["+16:00", "-23:59", "+23:59", "+05:45", "Z"]:
        # An hour ago here, at the other end of the world.
        moment = (timezone.now() - datetime.timedelta(hours=1)).astimezone(utc_offset(offset))
        value = moment.isoformat().replace("+00:00", "Z")
        for url, name in DATETIME_FILTERS:
            response = api_client.get(url, {name: value})
            assert response.status_code == 200, (url, name, value, response.content)
            assert response.json()["count"] == (1 if name.endswith("_after") else 0), (url, name, value)


def utc_offset(text: str) -> datetime.tzinfo:
    if text == "Z":
        return datetime.timezone.utc
    sign = 1 if text[0] == "+" else -1
    hours, minutes = map(int, text[1:].split(":"))
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0001-01-01T00:00:00+01:00", "Out of range once converted to UTC."),
        ("9999-12-31T23:59:59-01:00", "Out of range once converted to UTC."),
        ("2024-01-01T00:00:00+24:00", "Enter a valid date/time."),
        ("2024-13-01T00:00:00Z", "Enter a valid date/time."),
    ],
)
def test_a_datetime_filter_utc_cannot_hold_is_a_field_error(api_client, value, message):
    for url, name in DATETIME_FILTERS:
        response = api_client.get(url, {name: value})
        assert response.status_code == 400, (url, name, response.content)
        assert response.json() == {name: [message]}


def test_a_value_the_database_refuses_is_a_400_and_nothing_is_saved(api_client, monkeypatch):
    """Serializers check lengths and ranges first; should one miss a check, the database's
    DataError is still a 400, and the request's transaction is rolled back."""

    def create_too_long(**fields):
        Customer.objects.create(name="saved first")
        Customer.objects.create(name="x" * 300)  # a DataError on PostgreSQL (varchar(256))
        raise DataError("value too long for type character varying(256)")  # SQLite has no such limit

    monkeypatch.setattr(services, "customer_create", create_too_long)
    response = api_client.post("/api/customers", {"name": "Ada"}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"non_field_errors": ["A value is too long or out of range."]}
    assert not Customer.objects.exists()


def test_an_integer_sqlite_cannot_hold_is_a_400(api_client, monkeypatch):
    def overflow(**fields):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(services, "customer_create", overflow)
    response = api_client.post("/api/customers", {"name": "Ada"}, format="json")
    assert response.status_code == 400
