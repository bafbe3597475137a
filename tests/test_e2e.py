"""End to end, as users and Stripe meet the hub: the web app, relay and both workers run as
real processes (from the Procfile) against Tansu, localstripe and a database of their own."""

from __future__ import annotations

import signal
import uuid

import pytest
import requests
import stripe

from .conftest import ARTIFACTS
from .helpers import stripe_event, stripe_signature, wait_until
from .hub import HEALTH_TOKEN, Hub, running_hub

pytestmark = [pytest.mark.e2e]

SYNC_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("hub"), artifacts=ARTIFACTS) as hub:
        yield hub


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def wait_synced(hub: Hub, customer_id: int) -> dict:
    return wait_until(
        lambda: (status := hub.integration_status(customer_id))["synced"] and status,
        timeout=SYNC_TIMEOUT,
        message=f"customer {customer_id} synced",
    )


def test_api_changes_reach_stripe_once(hub):
    email = unique_email("api")
    inbox_before = hub.inbox_count()
    created = hub.api("POST", "/api/customers", {"name": "Ada", "email": email})
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]

    status = wait_synced(hub, customer_id)
    [stripe_id] = [i["external_id"] for i in status["integrations"] if i["type"] == "stripe"]
    remote = hub.stripe.v1.customers.retrieve(stripe_id)
    assert (remote.name, remote.email, remote.metadata["local_id"]) == ("Ada", email, str(customer_id))

    # Our own create comes back as a signed webhook; once it is applied there is still exactly
    # one customer on each side.
    wait_until(lambda: hub.inbox_count() > inbox_before, timeout=SYNC_TIMEOUT, message="echo webhook applied")
    assert len(hub.customers_with_email(email)) == 1
    assert len(hub.stripe_customers_with_email(email)) == 1

    assert hub.api("PATCH", f"/api/customers/{customer_id}", {"name": "Ada Lovelace"}).status_code == 200
    wait_until(lambda: hub.stripe.v1.customers.retrieve(stripe_id).name == "Ada Lovelace", timeout=SYNC_TIMEOUT)

    assert hub.api("DELETE", f"/api/customers/{customer_id}").status_code == 204

    def deleted_in_stripe() -> bool:
        try:
            hub.stripe.v1.customers.retrieve(stripe_id)
        except stripe.InvalidRequestError:
            return True
        return False

    wait_until(deleted_in_stripe, timeout=SYNC_TIMEOUT, message="deleted in Stripe")
    assert hub.api("GET", f"/api/customers/{customer_id}").status_code == 404


def test_stripe_changes_reach_the_catalog_without_ping_pong(hub):
    email = unique_email("remote")
    remote = hub.stripe.v1.customers.create(params={"name": "Grace", "email": email})

    local = wait_until(lambda: hub.customers_with_email(email), timeout=SYNC_TIMEOUT, message="created locally")[0]
    assert local["name"] == "Grace"
    status = hub.integration_status(local["id"])
    assert status["synced"] is True and status["integrations"][0]["external_id"] == remote.id

    hub.stripe.v1.customers.update(remote.id, params={"name": "Grace Hopper"})
    wait_until(
        lambda: hub.api("GET", f"/api/customers/{local['id']}").json()["name"] == "Grace Hopper",
        timeout=SYNC_TIMEOUT,
        message="update applied locally",
    )

    hub.stripe.v1.customers.delete(remote.id)
    wait_until(
        lambda: hub.integration_status(local["id"])["integrations"] == [],
        timeout=SYNC_TIMEOUT,
        message="mapping removed",
    )
    # The local customer stays, unsynced, and nothing was sent back to Stripe on the way.
    assert hub.api("GET", f"/api/customers/{local['id']}").json()["name"] == "Grace Hopper"
    outward = hub.db.scalar(
        "SELECT COUNT(*) FROM sync_outboxmessage WHERE topic = %s AND key = %s",
        ("stripe_customer_outward", str(local["id"])),
    )
    assert outward == 0
    assert len(hub.customers_with_email(email)) == 1


def stripe_mapping(hub: Hub, item_id: int) -> dict | None:
    """The item's synced Stripe mapping as /api/integrations shows it, or None."""
    rows = hub.api("GET", f"/api/integrations?item={item_id}&integration_type=stripe").json()["results"]
    return next((row for row in rows if row["status"] == "synced" and row["integration_id"]), None)


def test_an_invoice_made_here_reaches_stripe_after_its_customer_and_its_lifecycle_follows(hub):
    customer = hub.api("POST", "/api/customers", {"name": "Ada", "email": unique_email("inv")}).json()
    # At once, while the customer's own push may still be on its way: the invoice waits for it.
    lines = [{"description": "Consulting", "quantity": 3, "unit_amount": 12500}, {"description": "Travel", "quantity": 1, "unit_amount": 4000}]
    created = hub.api("POST", "/api/invoices", {"customer": customer["id"], "currency": "eur", "lines": lines})
    assert created.status_code == 201, created.text
    invoice_id = created.json()["id"]
    row = wait_until(lambda: stripe_mapping(hub, invoice_id), timeout=SYNC_TIMEOUT, message="invoice in Stripe")
    assert row["item_type"] == "invoice"
    remote = hub.stripe.v1.invoices.retrieve(row["integration_id"])
    customer_row = stripe_mapping(hub, customer["id"])
    assert (remote.status, remote.customer, remote.total) == ("draft", customer_row["integration_id"], 41500)
    assert [line.amount for line in remote.lines.data] == [37500, 4000]

    assert hub.api("POST", f"/api/invoices/{invoice_id}/finalize").status_code == 200
    wait_until(lambda: hub.stripe.v1.invoices.retrieve(row["integration_id"]).status == "open", timeout=SYNC_TIMEOUT)
    number = hub.stripe.v1.invoices.retrieve(row["integration_id"]).number
    wait_until(lambda: hub.api("GET", f"/api/invoices/{invoice_id}").json()["number"] == number, timeout=SYNC_TIMEOUT,
               message="Stripe's number back here")
    assert hub.api("POST", f"/api/invoices/{invoice_id}/mark-paid").status_code == 200
    wait_until(lambda: hub.stripe.v1.invoices.retrieve(row["integration_id"]).status == "paid", timeout=SYNC_TIMEOUT)
    # Deleting its customer is refused while it has invoices: a clear 409, and both stay.
    refused = hub.api("DELETE", f"/api/customers/{customer['id']}")
    assert refused.status_code == 409 and "invoice" in refused.json()["detail"]


def test_an_invoice_made_in_stripe_appears_here_and_follows_stripes_lifecycle(hub):
    email = unique_email("stripe-inv")
    remote_customer = hub.stripe.v1.customers.create(params={"name": "Grace", "email": email})
    wait_until(lambda: hub.customers_with_email(email), timeout=SYNC_TIMEOUT, message="customer created locally")
    remote = hub.stripe.v1.invoices.create(
        params={"customer": remote_customer.id, "currency": "usd", "description": "Made in Stripe"}
    )
    hub.stripe.v1.invoice_items.create(
        params={"customer": remote_customer.id, "invoice": remote.id, "quantity": 2, "unit_amount_decimal": "2500"}
    )
    hub.stripe.v1.invoices.finalize_invoice(remote.id)

    def local_invoice() -> dict | None:
        rows = hub.api("GET", f"/api/integrations?integration_type=stripe&item_type=invoice&search={remote.id}").json()
        row = next((r for r in rows["results"] if r["integration_id"] == remote.id), None)
        return row and hub.api("GET", f"/api/invoices/{row['item_id']}").json()

    invoice = wait_until(lambda: (i := local_invoice()) and i["status"] == "open" and i, timeout=SYNC_TIMEOUT,
                         message="invoice here, finalized")
    assert (invoice["description"], invoice["total"], invoice["currency"]) == ("Made in Stripe", 5000, "usd")
    assert invoice["number"] == hub.stripe.v1.invoices.retrieve(remote.id).number
    hub.stripe.v1.invoices.void_invoice(remote.id)
    wait_until(lambda: local_invoice()["status"] == "void", timeout=SYNC_TIMEOUT, message="voided here")


@pytest.mark.parametrize("signature", [None, "t=1,v1=00", "wrong-secret"])
def test_unsigned_or_wrongly_signed_webhook_is_refused(hub, signature):
    email = unique_email("forged")
    body = stripe_event("customer.created", {"id": "cus_forged", "name": "Mallory", "email": email})
    if signature == "wrong-secret":
        signature = stripe_signature(body, "whsec_not_ours")
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    inbox_before = hub.inbox_count()
    response = requests.post(f"{hub.base_url}/webhooks/stripe", data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert hub.customers_with_email(email) == []
    assert hub.inbox_count() == inbox_before


def test_a_killed_worker_resumes_without_losing_or_doubling_events(hub):
    hub.kill("stripe_worker")  # SIGKILL: no clean shutdown, nothing committed on the way out
    emails = [unique_email(f"kill{i}") for i in range(12)]
    ids = []
    for email in emails:
        response = hub.api("POST", "/api/customers", {"name": "Killed", "email": email})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    assert not any(hub.integration_status(customer_id)["synced"] for customer_id in ids)

    hub.start("stripe_worker")
    wait_until(
        lambda: sum(hub.integration_status(customer_id)["synced"] for customer_id in ids) >= 3,
        timeout=SYNC_TIMEOUT,
        message="the worker started draining",
    )
    hub.kill("stripe_worker")
    hub.start("stripe_worker")

    for customer_id in ids:
        wait_synced(hub, customer_id)
    for email in emails:
        assert len(hub.stripe_customers_with_email(email)) == 1, email
        assert len(hub.customers_with_email(email)) == 1, email


def test_workers_stop_cleanly_on_sigterm(hub):
    for name in ("inward_worker", "relay"):
        assert hub.kill(name, signal.SIGTERM) == 0
        hub.start(name)
    # Still working after the restart: a change made in Stripe arrives.
    email = unique_email("after-restart")
    hub.stripe.v1.customers.create(params={"name": "Back", "email": email})
    wait_until(lambda: hub.customers_with_email(email), timeout=SYNC_TIMEOUT, message="applied after restart")


def test_gunicorn_serves_docs_static_files_health_and_metrics(hub):
    # The docs and the schema need a login (API_DOCS_PUBLIC is off): a browser goes to it.
    signed_out = requests.get(f"{hub.base_url}/docs", timeout=10, allow_redirects=False)
    assert signed_out.status_code == 302 and signed_out.headers["Location"] == "/api-auth/login/?next=/docs"
    assert requests.get(f"{hub.base_url}/api/schema", timeout=10).status_code == 401
    docs = hub.api("GET", "/docs")
    assert docs.status_code == 200
    asset = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert asset in docs.text
    served = requests.get(f"{hub.base_url}{asset}", timeout=10)
    assert served.status_code == 200 and len(served.content) > 100_000
    health = requests.get(f"{hub.base_url}/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}, health.text  # anyone: the status
    headers = {"Authorization": f"Bearer {HEALTH_TOKEN}"}
    health = requests.get(f"{hub.base_url}/health", headers=headers, timeout=10)
    assert health.status_code == 200, health.text
    assert set(health.json()["checks"]) == {"database", "kafka", "stripe", "webhooks"}
    metrics = requests.get(f"{hub.base_url}/metrics", timeout=10).text
    assert "synchub_outbox_backlog" in metrics and "synchub_consumer_lag" in metrics
