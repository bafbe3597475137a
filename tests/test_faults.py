"""The bad day, end to end: broker outage, a flaky Stripe, workers killed mid-drain, webhooks
repeated and reordered, edits on both sides at once, a poison message. Real processes, real
Tansu and localstripe, faults injected by the proxies of `tests/faults.py`."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from .conftest import ARTIFACTS
from .helpers import stripe_event, stripe_signature, wait_until
from .hub import WEBHOOK_SECRET, Hub

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]


def make_hub(tmp_path_factory, *, env: dict[str, str] | None = None, **options) -> Hub:
    hub = Hub(
        tmp_path_factory.mktemp("faults"),
        artifacts=ARTIFACTS,
        extra_env={"SYNC_TASK_MAX_ATTEMPTS": "12", "SYNC_RETRY_BACKOFF_MAX_SECONDS": "1", **(env or {})},
        **options,
    )
    hub.setup()
    return hub


def emails(prefix: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{i}@example.com" for i in range(count)]


def stripe_by_email(hub: Hub) -> Counter:
    return Counter((customer["email"] or "").lower() for customer in hub.all_stripe_customers())


def assert_each_once_in_stripe(hub: Hub, addresses: list[str]) -> None:
    counts = stripe_by_email(hub)
    doubled = {email: counts[email] for email in addresses if counts[email] != 1}
    assert doubled == {}, f"not exactly once in Stripe: {doubled}"


def wait_for_stripe_names(hub: Hub, addresses: list[str], name: str) -> None:
    """Until Stripe holds `name` for every address: the last update of each arrived."""

    def converged() -> bool:
        remote = {c["email"]: c["name"] for c in hub.all_stripe_customers()}
        return all(remote.get(email) == name for email in addresses)

    wait_until(converged, timeout=120, interval=1, message=f"Stripe holds {name!r} for all")


def report(name: str, **figures) -> None:
    line = f"{name}: " + ", ".join(f"{key}={value}" for key, value in figures.items())
    print(line)
    with open(ARTIFACTS / "fault-scenarios.txt", "a") as out:
        out.write(line + "\n")


@pytest.fixture
def hub_factory(tmp_path_factory):
    hubs: list[Hub] = []

    def factory(**options) -> Hub:
        hubs.append(make_hub(tmp_path_factory, **options))
        return hubs[-1]

    yield factory
    for hub in hubs:
        hub.teardown()


def test_broker_outage_loses_nothing(hub_factory):
    hub = hub_factory(kafka_proxy=True)
    hub.kafka_proxy.cut()
    addresses = emails("outage", 200)
    ids = hub.create_customers(addresses)  # writes keep succeeding while Kafka is unreachable
    backlog = hub.db.scalar("SELECT COUNT(*) FROM sync_outboxmessage WHERE published_at IS NULL")
    assert backlog >= 190, backlog
    assert hub.synced_count(ids) == 0

    hub.kafka_proxy.restore()
    wait_until(lambda: hub.synced_count(ids) == len(ids), timeout=240, interval=1, message="all 200 synced")
    assert_each_once_in_stripe(hub, addresses)
    assert hub.db.scalar("SELECT COUNT(*) FROM sync_outboxmessage WHERE published_at IS NULL") == 0
    report("broker outage", sent=len(ids), outbox_backlog_during_outage=backlog, synced=len(ids), duplicated=0, lost=0)


def test_flaky_stripe_converges_without_duplicates(hub_factory):
    # The client gives up (0.6 s) before the proxy's stalls end (1 s): a stall is a lost answer.
    hub = hub_factory(stripe_proxy=True, env={"STRIPE_TIMEOUT_SECONDS": "0.6"})
    hub.stripe_proxy.stall_seconds = 1.0
    hub.stripe_proxy.fault_rate = 0.3
    addresses = emails("flaky", 100)
    ids = hub.create_customers(addresses, name="v0")
    for round_ in (1, 2):
        hub.rename_customers(ids, f"v{round_}")
    wait_until(lambda: hub.synced_count(ids) == len(ids), timeout=300, interval=1, message="all converge")
    wait_for_stripe_names(hub, addresses, "v2")
    assert_each_once_in_stripe(hub, addresses)
    injected = dict(hub.stripe_proxy.injected)
    assert sum(injected.values()) >= 30, injected
    report(
        "flaky stripe (30% faults)",
        changes=3 * len(ids),
        faults_injected=injected,
        creates_forwarded=hub.stripe_proxy.count("create"),
        converged=len(ids),
        duplicated=0,
        lost=0,
    )


def test_worker_killed_repeatedly_while_draining(hub_factory):
    hub = hub_factory()
    hub.kill("stripe_worker")
    addresses = emails("kill", 250)
    ids = hub.create_customers(addresses, name="first")
    hub.rename_customers(ids, "second")  # 500 events: a create and an update each

    kills = 0
    hub.start("stripe_worker")
    for target in (40, 100, 170):
        wait_until(lambda: hub.synced_count(ids) >= target, timeout=120, interval=0.2, message=f"{target} synced")
        hub.kill("stripe_worker", signal.SIGKILL)
        kills += 1
        hub.start("stripe_worker")
    wait_until(lambda: hub.synced_count(ids) == len(ids), timeout=180, interval=1, message="all synced")
    wait_for_stripe_names(hub, addresses, "second")
    assert_each_once_in_stripe(hub, addresses)
    report("worker SIGKILLed while draining", events=2 * len(ids), kills=kills, converged=len(ids), duplicated=0, lost=0)


def post_webhook(hub: Hub, body: bytes) -> int:
    response = requests.post(
        f"{hub.base_url}/webhooks/stripe",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, WEBHOOK_SECRET)},
        timeout=10,
    )
    return response.status_code


def test_repeated_and_reordered_webhooks_apply_once(hub_factory):
    hub = hub_factory()
    email = emails("reorder", 1)[0]
    now = int(time.time())
    created = stripe_event(
        "customer.created", {"id": "cus_reorder", "name": "Old", "email": email}, event_id="evt_c1", created=now - 5
    )
    updated = stripe_event(
        "customer.updated", {"id": "cus_reorder", "name": "New", "email": email}, event_id="evt_u1", created=now
    )
    inbox_before = hub.inbox_count()
    for body in (updated, updated, updated, created, created, created):
        assert post_webhook(hub, body) == 200
    wait_until(lambda: hub.inbox_count() == inbox_before + 2, timeout=60, message="both events recorded once")
    [local] = hub.customers_with_email(email)
    assert local["name"] == "New"
    report("webhooks x3, updated before created", deliveries=6, applied=2, local_rows=1)


def test_concurrent_edits_on_both_sides_converge_without_ping_pong(hub_factory):
    hub = hub_factory(stripe_proxy=True)
    addresses = emails("both", 10)
    ids = hub.create_customers(addresses, name="start")
    wait_until(lambda: hub.synced_count(ids) == len(ids), timeout=60, message="initial sync")
    remote_ids = {
        customer_id: hub.integration_status(customer_id)["integrations"][0]["external_id"] for customer_id in ids
    }

    rounds = 5

    def edit_locally() -> None:
        for round_ in range(rounds):
            for customer_id in ids:
                hub.api("PATCH", f"/api/customers/{customer_id}", {"name": f"api-{round_}"})

    def edit_in_stripe() -> None:
        for round_ in range(rounds):
            for customer_id in ids:
                hub.stripe.v1.customers.update(remote_ids[customer_id], params={"name": f"stripe-{round_}"})

    threads = [threading.Thread(target=edit_locally), threading.Thread(target=edit_in_stripe)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def sides_equal() -> bool:
        remote = {c["id"]: c["name"] for c in hub.all_stripe_customers()}
        local = {c["id"]: c["name"] for c in hub.api("GET", "/api/customers?page_size=100").json()["results"]}
        return all(remote[remote_ids[i]] == local[i] for i in ids) and hub.synced_count(ids) == len(ids)

    wait_until(sides_equal, timeout=120, interval=1, message="both sides equal")

    # Quiet means quiet: no more update calls reach Stripe once both sides agree.
    updates = hub.stripe_proxy.count("update")
    quiet_until = time.monotonic() + 8
    while time.monotonic() < quiet_until:
        assert hub.stripe_proxy.count("update") == updates, "updates keep flowing: a sync loop"
        time.sleep(0.5)
    local_edits = rounds * len(ids)
    assert updates <= 2 * local_edits + 2 * len(ids), updates
    conflicts = hub.db.scalar("SELECT COUNT(*) FROM sync_syncconflict")
    report(
        "concurrent edits",
        api_edits=local_edits,
        stripe_edits=rounds * len(ids),
        stripe_update_calls=updates,
        conflicts_recorded=conflicts,
        converged=len(ids),
    )


def test_permanently_failing_customer_is_dead_lettered_then_replayed(hub_factory):
    hub = hub_factory(stripe_proxy=True)
    email = emails("poison", 1)[0]
    hub.stripe_proxy.reject = lambda method, path, body: email.replace("@", "%40").encode() in body
    [customer_id] = hub.create_customers([email])

    def failed() -> dict | None:
        status = hub.integration_status(customer_id)["integrations"]
        return status and status[0]["status"] == "failed" and status[0]

    mapping = wait_until(failed, timeout=60, message="marked failed")
    assert "Rejected by test" in mapping["last_error"]
    assert hub.db.scalar("SELECT COUNT(*) FROM sync_deadletter WHERE replayed_at IS NULL") == 1
    listing = hub.manage("sync_dlq", "list")
    assert "stripe.push_customer" in listing and "Rejected by test" in listing

    hub.stripe_proxy.reject = lambda method, path, body: False  # the fault is fixed
    assert "1 dead letter(s) replayed" in hub.manage("sync_dlq", "replay", "--all")
    wait_until(lambda: hub.integration_status(customer_id)["synced"], timeout=60, message="synced after replay")
    assert_each_once_in_stripe(hub, [email])
    assert "0 dead letter(s)" in hub.manage("sync_dlq", "list")
