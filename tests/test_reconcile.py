"""`manage.py sync_reconcile` and `sync_import` against localstripe, with drift made on purpose."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from .conftest import ARTIFACTS
from .helpers import wait_until
from .hub import Hub

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


@pytest.fixture
def hub(tmp_path_factory):
    # Without the Events API catch-up: the drift made here with webhooks off must stay for the
    # reconcile to find.
    hub = Hub(tmp_path_factory.mktemp("reconcile"), artifacts=ARTIFACTS, without=("stripe_catchup",))
    hub.setup()
    yield hub
    hub.teardown()


def counts(output: str, title: str) -> dict[str, int]:
    section = output.split(title, 1)[1]
    return {kind: int(n) for kind, n in re.findall(r"^\s{2}(\w+)\s+(\d+)$", section, re.M)[:6]}


def test_reconcile_reports_each_drift_exactly_then_repairs_it(hub):
    run = uuid.uuid4().hex[:6]
    emails = [f"rec-{run}-{i}@example.com" for i in range(4)]
    ids = hub.create_customers(emails, name="same")
    wait_until(lambda: hub.synced_count(ids) == len(ids), timeout=60, message="initial sync")
    remote_ids = [hub.integration_status(i)["integrations"][0]["external_id"] for i in ids]

    hub.set_webhooks(enabled=False)
    hub.stripe.v1.customers.delete(remote_ids[0])  # deleted remotely
    hub.stripe.v1.customers.update(remote_ids[1], params={"name": "edited in Stripe"})  # edited remotely
    only_remote = hub.stripe.v1.customers.create(params={"name": "Only in Stripe", "email": f"remote-{run}@example.com"})
    never_synced = hub.manage(
        "shell", "-c",
        "from sync.outward import applying_remote_change\n"
        "from catalog.services import customer_create\n"
        "with applying_remote_change('stripe'):\n"
        f"    print(customer_create(name='Never synced', email='local-{run}@example.com').pk)",
    ).strip().splitlines()[-1]

    status, output = hub.manage_status("sync_reconcile", "--dry-run")
    assert status == 1, output
    summary = counts(output, "comparison")
    assert summary == {"missing_remote": 1, "missing_local": 1, "field_diff": 1, "orphan_mapping": 1,
                       "duplicate_remote": 0, "total": 4}, output
    assert re.search(rf"orphan_mapping\s+item {ids[0]}\s+{remote_ids[0]}", output)
    assert re.search(rf"field_diff\s+item {ids[1]}\s+{remote_ids[1]}\s+name: 'same' here, 'edited in Stripe'", output)
    assert re.search(rf"missing_local\s+item -\s+{only_remote.id}", output)
    assert re.search(rf"missing_remote\s+item {never_synced}\b", output)

    started = time.monotonic()
    status, output = hub.manage_status("sync_reconcile", "--wait", "120")
    assert status == 0, output
    assert counts(output, "after repair")["total"] == 0, output
    repair_seconds = time.monotonic() - started

    status, output = hub.manage_status("sync_reconcile", "--dry-run")
    assert status == 0 and counts(output, "comparison")["total"] == 0, output
    # The repairs took the normal paths: edited name applied here, the only-remote customer imported.
    assert hub.api("GET", f"/api/customers/{ids[1]}").json()["name"] == "edited in Stripe"
    assert hub.customers_with_email(f"remote-{run}@example.com")
    with open(ARTIFACTS / "reconcile.txt", "a") as out:
        out.write(f"reconcile repair of 4 drifts: {repair_seconds:.1f} s\n")


def test_import_of_500_existing_stripe_customers_into_an_empty_hub(hub):
    hub.set_webhooks(enabled=False)
    run = uuid.uuid4().hex[:6]
    emails = [f"imp-{run}-{i}@example.com" for i in range(500)]
    for email in emails:
        hub.stripe.v1.customers.create(params={"name": "Imported", "email": email})
    # One of them already exists locally, never synced: it is linked by email, not doubled.
    hub.manage(
        "shell", "-c",
        "from sync.outward import applying_remote_change\n"
        "from catalog.services import customer_create\n"
        "with applying_remote_change('stripe'):\n"
        f"    customer_create(name='Local first', email='{emails[0].upper()}')",
    )
    started = time.monotonic()
    status, output = hub.manage_status("sync_import", "--wait", "300")
    seconds = time.monotonic() - started
    assert status == 0, output
    assert counts(output, "comparison")["missing_local"] == 500
    total = hub.api("GET", "/api/customers?page_size=1").json()["count"]
    assert total == 500
    linked = hub.db.scalar(
        "SELECT COUNT(*) FROM catalog_catalogintegration WHERE integration_type='stripe' AND status='synced'"
    )
    assert linked == 500
    with open(ARTIFACTS / "reconcile.txt", "a") as out:
        out.write(f"import of 500 localstripe customers: {seconds:.1f} s\n")


def test_reconcile_finds_and_repairs_invoice_drift(hub):
    # Webhooks off from the start: the echoes of our own pushes, still on their way, would be
    # read again from Stripe (same second as the push) and bring the drift in before the reconcile.
    hub.set_webhooks(enabled=False)
    run = uuid.uuid4().hex[:6]
    [customer_id] = hub.create_customers([f"inv-rec-{run}@example.com"], name="Invoiced")
    lines = [{"description": "Work", "quantity": 1, "unit_amount": 5000}]
    invoice_ids = [
        hub.api("POST", "/api/invoices", {"customer": customer_id, "currency": "eur", "lines": lines}).json()["id"]
        for _ in range(2)
    ]
    wait_until(lambda: hub.synced_count([customer_id, *invoice_ids]) == 3, timeout=90, message="invoices in Stripe")
    remote_ids = [
        hub.api("GET", f"/api/integrations?item={item}").json()["results"][0]["integration_id"] for item in invoice_ids
    ]
    stripe_customer = hub.integration_status(customer_id)["integrations"][0]["external_id"]

    hub.stripe.v1.invoices.update(remote_ids[0], params={"description": "edited in Stripe"})  # edited remotely
    hub.stripe.v1.invoices.delete(remote_ids[1])  # deleted remotely
    only_remote = hub.stripe.v1.invoices.create(params={"customer": stripe_customer, "currency": "eur"})
    never_synced = hub.manage(
        "shell", "-c",
        "from sync.outward import applying_remote_change\n"
        "from catalog.invoice_services import invoice_create\n"
        "from catalog.models import Customer\n"
        "with applying_remote_change('stripe'):\n"
        f"    print(invoice_create(customer=Customer.objects.get(pk={customer_id}), currency='eur', lines=[]).pk)",
    ).strip().splitlines()[-1]

    status, output = hub.manage_status("sync_reconcile", "--dry-run", "--type", "invoice")
    assert status == 1, output
    assert counts(output, "stripe invoice: comparison") == {
        "missing_remote": 1, "missing_local": 1, "field_diff": 1, "orphan_mapping": 1, "duplicate_remote": 0,
        "total": 4,
    }, output
    assert re.search(rf"field_diff\s+item {invoice_ids[0]}\s+{remote_ids[0]}\s+description: '' here, 'edited in Stripe'", output)
    assert re.search(rf"missing_local\s+item -\s+{only_remote.id}", output)
    assert re.search(rf"missing_remote\s+item {never_synced}\b", output)

    status, output = hub.manage_status("sync_reconcile", "--type", "invoice", "--wait", "120")
    assert status == 0, output
    assert counts(output, "after repair")["total"] == 0, output
    assert hub.api("GET", f"/api/invoices/{invoice_ids[0]}").json()["description"] == "edited in Stripe"
    imported = hub.api("GET", f"/api/integrations?integration_type=stripe&search={only_remote.id}").json()["results"]
    assert [row["item_type"] for row in imported] == ["invoice"]
