"""No input reaches a 500: what a reviewer (and schemathesis) sent, answered with a 4xx that says
what is wrong. Runs on the configured database (SQLite by default; CI: PostgreSQL)."""

from __future__ import annotations

import datetime
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError, connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from catalog import services
from catalog.models import CatalogIntegration, CatalogItem, Customer
from catalog.selectors import customers_with_email
from sync.models import SyncEvent
from synchub.parsers import LONE_SURROGATE, has_lone_surrogate

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


def test_the_api_refuses_non_ascii_emails_with_a_field_error(api_client):
    for email in ["x@bücher.example", "ü@example.com"]:
        response = api_client.post("/api/customers", {"name": "IDN", "email": email}, format="json")
        assert response.status_code == 400, response.content
        assert list(response.json()) == ["email"]
    assert "xn--" in api_client.post("/api/customers", {"email": "x@bücher.example"}, format="json").json()["email"][0]
    bulk = api_client.post("/api/customers/bulk", {"customers": [{"email": "x@bücher.example"}]}, format="json")
    assert list(bulk.json()["results"][0]["errors"]) == ["email"]
    ascii_form = api_client.post("/api/customers", {"email": "x@xn--bcher-kva.example"}, format="json")
    assert ascii_form.status_code == 201
    assert not Customer.objects.filter(email__contains="ü").exists()


def test_emails_are_unique_regardless_of_case_the_same_way_on_every_database():
    """Inward (what Stripe holds) any email is taken; SQLite's LOWER() folds ASCII only, so the
    key is folded in Python: x@BÜCHER.example is x@bücher.example on SQLite too."""
    first = services.customer_create(name="Bücher", email="x@bücher.example")
    assert first.email == "x@bücher.example" and first.email_key == "x@bücher.example"
    for same in ["x@BÜCHER.example", "X@Bücher.EXAMPLE"]:
        with pytest.raises(ValidationError) as raised:
            services.customer_create(name="again", email=same)
        assert raised.value.message_dict == {"email": [services.DUPLICATE_EMAIL_MESSAGE]}
    assert list(customers_with_email("X@BÜCHER.EXAMPLE")) == [first]
    assert list(customers_with_email("")) == []
    # A save naming only the email keeps its key in step.
    first.email = "Y@BÜCHER.example"
    first.save(update_fields=["email"])
    assert Customer.objects.get(pk=first.pk).email_key == "y@bücher.example"
    assert list(customers_with_email("y@bücher.EXAMPLE")) == [first]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keys_the_emails_customers_already_have(capsys):
    before, after = [("catalog", "0002_customer_stripe_fields")], [("catalog", "0003_customer_email_key")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("catalog", "Customer")
        # Distinct under LOWER() (the old index) on both databases, one key when case-folded.
        ada, strasse, shouting, nobody = (
            old.objects.create(catalog_type="customer", email=email).pk
            for email in ["Ada@Example.com", "straße@example.com", "STRASSE@example.com", None]
        )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("catalog", "Customer")
        keys = dict(new.objects.values_list("pk", "email_key"))
        assert keys == {ada: "ada@example.com", strasse: "strasse@example.com", shouting: None, nobody: None}
        assert f"no email_key): [{shouting}]" in capsys.readouterr().out
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_lone_surrogate_escape_is_a_400(api_client, webhook_secret):
    """`"\\ud800"` is valid JSON but no character: the database and a UTF-8 answer quoting it
    (`"\\ud800" is not a valid choice`) both failed on it."""
    for body in [
        b'{"name": "ok", "address": {"country": "\\ud800"}}',
        b'{"name": "ok", "metadata": {"\\udc00": "x"}}',
        b'{"customers": [{"name": "\\ud800"}]}',
    ]:
        response = api_client.post("/api/customers", body, content_type="application/json")
        assert response.status_code == 400, (body, response.content)
        assert response.json() == {"detail": LONE_SURROGATE}
    # A pair is one character, and fine.
    emoji = api_client.post("/api/customers", b'{"name": "\\ud83d\\ude00"}', content_type="application/json")
    assert emoji.status_code == 201 and emoji.json()["name"] == "😀"

    body = b'{"id": "evt_1", "type": "customer.created", "data": {"object": {"id": "cus_1", "name": "\\ud800"}}}'
    signature = stripe_signature(body, webhook_secret)
    webhook = Client().post("/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
    assert webhook.status_code == 400


def test_null_characters_are_field_errors(api_client):
    response = api_client.post("/api/customers", {"name": "ok", "metadata": {"a\x00": "b"}}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["metadata"]
    for url in ["/api/customers", "/api/integrations"]:
        response = api_client.get(url, {"search": "a\x00b"})
        assert response.status_code == 400
        assert response.json() == {"search": ["Null characters are not allowed."]}


def test_a_body_over_the_upload_limit_is_a_413_in_json(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client.post("/api/customers", {"name": "x" * 2000}, format="json")
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body larger than 1000 bytes."}


def schema(client) -> dict:
    response = client.get("/api/schema?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_documents_every_error_answer_with_its_body(api_client):
    paths = schema(api_client)["paths"]
    operations = {(method, path): op for path, ops in paths.items() for method, op in ops.items()}
    for (method, path), operation in operations.items():
        if not path.startswith("/api/"):
            continue
        responses = operation["responses"]
        expected = {"401", "403", "404", "406"}
        if method in ("post", "put", "patch") and "requestBody" in operation:
            # A body-less action (POST /api/invoices/{id}/finalize) reads no body, so refuses none.
            expected |= {"400", "413", "415"}
        assert expected <= set(responses), (method, path, sorted(responses))
        assert "429" in responses  # the throttles (API_THROTTLE_*)
        for status in expected - {"400"}:
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorDetail"
            }
    assert "400" in operations[("get", "/api/customers")]["responses"]  # filters
    assert "400" not in operations[("get", "/api/customers/{id}")]["responses"]
    assert operations[("post", "/api/customers")]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FieldErrors"
    }
    # The webhook keeps its own answers.
    assert set(paths["/webhooks/stripe"]["post"]["responses"]) == {"200", "400", "405", "411", "413", "503"}


def test_the_schema_documents_429_once_requests_are_throttled(api_client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"user": "10000/minute"},
    }
    for operations in schema(api_client)["paths"].values():
        for operation in operations.values():
            if operation.get("security"):
                assert "429" in operation["responses"]


def test_the_schema_tells_what_may_be_null_and_which_emails_are_taken(api_client):
    components = schema(api_client)["components"]["schemas"]
    for name in ["customer_name", "customer_email"]:
        assert components["Integration"]["properties"][name]["nullable"] is True
    assert components["CustomerRequest"]["properties"]["email"]["oneOf"][0]["format"] == "email"
    assert components["Customer"]["properties"]["email"]["oneOf"][0]["format"] == "idn-email"
    result_id = components["CustomerBulkResult"]["properties"]["id"]
    assert result_id["type"] == "integer" and result_id["nullable"] is True
    row_id = components["CustomerBulkRowRequest"]["properties"]["id"]
    assert (row_id["minimum"], row_id["maximum"]) == (1, 2**63 - 1)


def test_mappings_without_a_customer_name_or_email_are_listed_with_nulls(api_client):
    without_email = Customer.objects.create(name="No email", email=None)
    CatalogIntegration.objects.update_or_create(catalog_item=without_email, integration_type="stripe")
    CatalogIntegration.objects.create(catalog_item=CatalogItem.objects.create(), integration_type="other")
    rows = {row["customer_id"]: row for row in api_client.get("/api/integrations").json()["results"]}
    assert rows[without_email.pk]["customer_email"] is None
    [other] = [row for row in rows.values() if row["integration_type"] == "other"]
    assert other["customer_name"] is None and other["customer_email"] is None


def test_the_console_and_admin_answer_any_id_and_search_without_a_500(admin_client):
    for url in [
        f"/customers/{HUGE_ID}/edit/",
        f"/customers/{HUGE_ID}/delete/",
        f"/admin/catalog/customer/{HUGE_ID}/change/",
        f"/admin/catalog/customer/{HUGE_ID}/delete/",
    ]:
        assert admin_client.get(url).status_code in (302, 404), url
    statuses = admin_client.get("/customers/statuses.json", {"ids": f"{HUGE_ID},1"})
    assert statuses.status_code == 200 and statuses.json() == {"statuses": {}}
    assert admin_client.get("/customers/", {"q": "a\x00b"}).status_code == 200
    assert admin_client.get(f"/customers/{CustomerFactory().pk}/edit/").status_code == 200


@pytest.mark.parametrize(
    "text, lone",
    [
        ('{"a": "\\ud800"}', True),
        ('{"a": ["x", {"\\uDC00": 1}]}', True),  # upper-case hex, in a key
        ('{"a": "\\ud83d\\ude00"}', False),  # a pair is one character
        ('{"a": "\\\\ud800"}', False),  # an escaped backslash, then letters
        ('{"a": "caf\\u00e9 \\u4e2d"}', False),
    ],
)
def test_the_surrogate_check_on_the_source_text_agrees_with_the_walk(text, lone):
    data = json.loads(text)
    assert has_lone_surrogate(data) is lone
    assert has_lone_surrogate(data, source=text) is lone
