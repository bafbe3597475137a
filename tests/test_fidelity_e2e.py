"""Stripe's real timing against the whole hub (Procfile processes, Tansu, localstripe): webhooks
that come late and out of order, every customer field both ways, edits on both sides, the hub
down while Stripe changes, an oversized webhook, an outbox row Kafka cannot take."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
import requests

from .conftest import ARTIFACTS
from .helpers import stripe_signature, wait_until
from sandbox.processes import wait_for_port

from .hub import WEBHOOK_SECRET, running_hub

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

TIMEOUT = 60.0
POSTGRES_URL = (
    os.environ.get("DATABASE_URL", "").startswith("postgres")
    and os.environ["DATABASE_URL"]
    or ("postgres://postgres@127.0.0.1:5432/postgres")
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def report(line: str) -> None:
    with open(ARTIFACTS / "fidelity.txt", "a") as out:
        out.write(line + "\n")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("fidelity"), artifacts=ARTIFACTS) as hub:
        yield hub


# --- Late and reordered webhooks, on both databases --------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_deleted_customers_stay_deleted_when_webhooks_come_late_and_reordered(tmp_path_factory, database):
    base_url = "" if database == "sqlite" else POSTGRES_URL
    with running_hub(
        tmp_path_factory.mktemp(f"late-{database}"), artifacts=ARTIFACTS, webhook_proxy=True, database_base_url=base_url
    ) as hub:
        assert hub.db.engine == database
        proxy = hub.webhook_proxy
        inbox_before = hub.inbox_count()

        # Deleted here: some right after the create, some once Stripe had them.
        local_emails = [unique(f"local-del-{i}") for i in range(6)]
        for index, email in enumerate(local_emails):
            created = hub.api("POST", "/api/customers", {"name": "Short-lived", "email": email})
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            if index % 2:
                wait_until(lambda: hub.integration_status(customer_id)["synced"], timeout=TIMEOUT)
            assert hub.api("DELETE", f"/api/customers/{customer_id}").status_code == 204

        # Deleted in Stripe within a second of its creation.
        remote = []
        for index in range(4):
            email = unique(f"remote-del-{index}")
            customer = hub.stripe.v1.customers.create(params={"name": "Remote", "email": email})
            hub.stripe.v1.customers.update(customer.id, params={"name": "Remote, edited"})
            hub.stripe.v1.customers.delete(customer.id)
            remote.append((customer.id, email))

        # Every webhook came through the proxy, late and out of order, and was applied.
        wait_until(
            lambda: proxy.received >= 6 + 12 and proxy.pending == 0 and len(proxy.delivered) == proxy.received,
            timeout=TIMEOUT,
            message="every webhook delivered",
        )
        assert all(200 <= status < 300 for _, status in proxy.delivered), proxy.delivered
        order = [event_type for event_type, _ in proxy.delivered]
        assert any(
            later == "customer.created" and earlier in ("customer.deleted", "customer.updated")
            for earlier, later in zip(order, order[1:])
        ), order  # some create did arrive after its customer's later events
        wait_until(
            lambda: hub.inbox_count() >= inbox_before + proxy.received,
            timeout=TIMEOUT,
            message="every delivered event applied",
        )
        # Let the workers settle anything the late events could still trigger, then look.
        wait_until(
            lambda: hub.db.scalar("SELECT COUNT(*) FROM sync_outboxmessage WHERE published_at IS NULL") == 0,
            timeout=TIMEOUT,
        )

        for email in local_emails:
            assert hub.customers_with_email(email) == [], f"{email} came back here"
            assert hub.stripe_customers_with_email(email) == [], f"{email} is in Stripe"
        for remote_id, email in remote:
            assert (
                hub.db.scalar("SELECT COUNT(*) FROM catalog_catalogintegration WHERE integration_id = %s", (remote_id,))
                == 0
            ), f"{remote_id} linked again"
            assert hub.stripe_customers_with_email(email) == [], f"{email} recreated in Stripe"
            # At most the unlinked local copy a create applied before its delete leaves.
            assert len(hub.customers_with_email(email)) <= 1
        ignored = hub.db.scalar("SELECT COUNT(*) FROM sync_syncevent WHERE action LIKE 'ignored: deleted%%'")
        assert ignored > 0
        report(
            f"late webhooks ({database}): {proxy.received} delivered out of order, {ignored} ignored as deleted, "
            "none came back"
        )


# --- The whole customer, both ways --------------------------------------------------------------


FULL = {
    "name": "Zoë Ünïcødé",
    "phone": "+41 44 668 18 00",
    "description": "Key account",
    "address": {
        "line1": "Bahnhofstrasse 1",
        "line2": "Floor 3",
        "city": "Zürich",
        "state": "ZH",
        "postal_code": "8001",
        "country": "CH",
    },
    "metadata": {"plan": "gold", "segment": "enterprise"},
    "preferred_locales": ["de-CH", "en"],
}


def stripe_view(remote) -> dict:
    data = remote.to_dict(recursive=True)
    metadata = {key: value for key, value in (data.get("metadata") or {}).items() if key != "local_id" and value}
    return {
        "name": data.get("name"),
        "phone": data.get("phone"),
        "description": data.get("description"),
        "address": {key: value for key, value in (data.get("address") or {}).items() if value},
        "metadata": metadata,
        "preferred_locales": data.get("preferred_locales") or [],
    }


def local_view(customer: dict) -> dict:
    return {
        **{key: customer[key] for key in ("name", "phone", "description", "metadata", "preferred_locales")},
        "address": {key: value for key, value in customer["address"].items() if value},
    }


def test_every_field_round_trips_both_ways(hub):
    email = unique("whole")
    created = hub.api("POST", "/api/customers", {**FULL, "email": email})
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    status = wait_until(lambda: (s := hub.integration_status(customer_id))["synced"] and s, timeout=TIMEOUT)
    stripe_id = status["integrations"][0]["external_id"]
    expected = {**FULL, "address": FULL["address"]}
    wait_until(
        lambda: stripe_view(hub.stripe.v1.customers.retrieve(stripe_id)) == expected,
        timeout=TIMEOUT,
        message="every field in Stripe",
    )

    changed = {
        "name": "Zoe Changed",
        "phone": "+1 415 555 0100",
        "description": "Edited in the dashboard",
        "address": {
            "line1": "1 Market St",
            "line2": "",
            "city": "San Francisco",
            "state": "CA",
            "postal_code": "94105",
            "country": "US",
        },
        "metadata": {"plan": "platinum", "segment": "enterprise", "source": "dashboard"},
        "preferred_locales": ["en-US"],
    }
    hub.stripe.v1.customers.update(stripe_id, params=changed)
    want = {**changed, "address": {k: v for k, v in changed["address"].items() if v}}
    wait_until(
        lambda: local_view(hub.api("GET", f"/api/customers/{customer_id}").json()) == want,
        timeout=TIMEOUT,
        message="every field here",
    )


def test_metadata_keys_edited_on_both_sides_at_once_both_survive(hub):
    email = unique("both-sides")
    customer_id = hub.api("POST", "/api/customers", {"name": "Both", "email": email, "metadata": {"a": "1"}}).json()[
        "id"
    ]
    status = wait_until(lambda: (s := hub.integration_status(customer_id))["synced"] and s, timeout=TIMEOUT)
    stripe_id = status["integrations"][0]["external_id"]
    # Let the echo of the create settle, then edit both sides before either hears of the other.
    wait_until(
        lambda: hub.db.scalar("SELECT COUNT(*) FROM sync_inboxevent WHERE object_id = %s", (stripe_id,)) >= 1,
        timeout=TIMEOUT,
    )
    hub.stripe.v1.customers.update(stripe_id, params={"metadata": {"from_stripe": "yes"}})
    assert hub.api("PATCH", f"/api/customers/{customer_id}", {"metadata": {"a": "1", "from_hub": "yes"}}).ok
    both = {"a": "1", "from_stripe": "yes", "from_hub": "yes"}
    wait_until(
        lambda: hub.api("GET", f"/api/customers/{customer_id}").json()["metadata"] == both,
        timeout=TIMEOUT,
        message="both keys here",
    )
    wait_until(
        lambda: stripe_view(hub.stripe.v1.customers.retrieve(stripe_id))["metadata"] == both,
        timeout=TIMEOUT,
        message="both keys in Stripe",
    )
    assert hub.db.scalar("SELECT COUNT(*) FROM sync_syncconflict") == 0


# --- The hub down while Stripe changes -------------------------------------------------------------


def test_changes_made_in_stripe_while_the_hub_was_down_arrive_within_a_minute(hub):
    receivers = ("web", "inward_worker", "stripe_catchup")
    for name in receivers:
        hub.kill(name, signal.SIGTERM)
    emails = [unique(f"while-down-{i}") for i in range(5)]
    remote_ids = [hub.stripe.v1.customers.create(params={"name": "Made while down", "email": e}).id for e in emails]
    for remote_id in remote_ids[:2]:
        hub.stripe.v1.customers.update(remote_id, params={"name": "Edited while down"})
    time.sleep(1.5)  # localstripe sends each webhook once, a second after the change: let them fail
    started = time.monotonic()
    for name in receivers:
        hub.start(name)
    wait_for_port(hub.web_port)

    def arrived() -> bool:
        found = [hub.customers_with_email(email) for email in emails]
        return all(len(customers) == 1 for customers in found) and [c[0]["name"] for c in found] == (
            ["Edited while down"] * 2 + ["Made while down"] * 3
        )

    wait_until(arrived, timeout=TIMEOUT, interval=0.5, message="changes made while down arrived")
    seconds = time.monotonic() - started
    for email in emails:
        assert len(hub.customers_with_email(email)) == 1, email
    report(f"hub down while 5 customers were created and 2 edited in Stripe: all here {seconds:.1f} s after restart")


# --- What cannot be taken ---------------------------------------------------------------------------


def test_an_oversized_webhook_gets_a_413_from_the_server(hub):
    event = {
        "id": "evt_big",
        "object": "event",
        "type": "customer.updated",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_big", "object": "customer", "description": "x" * 400_000}},
    }
    body = json.dumps(event).encode()
    response = requests.post(
        f"{hub.base_url}/webhooks/stripe",
        data=body,
        timeout=30,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, WEBHOOK_SECRET)},
    )
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["detail"]


def test_an_outbox_row_kafka_cannot_take_is_dead_lettered_and_later_changes_reach_stripe(hub):
    email = unique("poison")
    customer_id = hub.api("POST", "/api/customers", {"name": "Before", "email": email}).json()["id"]
    status = wait_until(lambda: (s := hub.integration_status(customer_id))["synced"] and s, timeout=TIMEOUT)
    stripe_id = status["integrations"][0]["external_id"]
    # A message over Kafka's record limit, as a task could enqueue it.
    hub.manage(
        "shell",
        "-c",
        "from integrations.stripe.tasks import push_customer_to_stripe\n"
        "from django.db import transaction\n"
        "with transaction.atomic():\n"
        f"    push_customer_to_stripe.delay(item_id={customer_id}, action='upsert', event_id='huge', pad='x' * 1_200_000)",
    )
    assert hub.api("PATCH", f"/api/customers/{customer_id}", {"name": "After"}).ok
    wait_until(
        lambda: hub.stripe.v1.customers.retrieve(stripe_id).name == "After",
        timeout=TIMEOUT,
        message="the change behind the poison row reached Stripe",
    )
    status, output = hub.manage_status("sync_dlq", "list")
    assert status == 0 and "not publishable" in output, output
    assert hub.db.scalar("SELECT COUNT(*) FROM sync_outboxmessage WHERE published_at IS NULL") == 0
