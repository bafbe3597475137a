"""Three systems on real processes: the hub (web, relay, workers, the webhook sender), Stripe (the
sandbox's) and another system speaking Standard Webhooks (tests/webhook_receiver.py, a process of
its own that verifies signatures and sends changes back)."""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from .conftest import ARTIFACTS
from .helpers import running_receiver, wait_until
from .hub import Hub, running_hub

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SYNC_TIMEOUT = 60.0
RECEIVER_SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("webhooks-hub"), artifacts=ARTIFACTS) as hub:
        yield hub


@pytest.fixture
def receiver(hub):
    with running_receiver(RECEIVER_SECRET, ARTIFACTS / f"receiver-{uuid.uuid4().hex[:6]}.log") as receiver:
        yield receiver


def add_endpoint(hub: Hub, receiver, **fields) -> dict:
    created = hub.api("POST", "/api/webhook-endpoints", {"url": receiver.url, **fields})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    receiver.set_secrets([endpoint["secret"]])
    return endpoint


def inbound_url(hub: Hub, endpoint: dict) -> str:
    return f"{hub.base_url}/webhooks/inbound/{endpoint['id']}"


def received_of(receiver, *, email: str | None = None, item_id: int | None = None) -> list[dict]:
    return [
        m for m in receiver.received()
        if (email is None or m["data"].get("email") == email) and (item_id is None or m["data"].get("id") == item_id)
    ]


def stripe_writes(hub: Hub) -> float:
    """Write requests the hub made to Stripe so far (its metrics, every process)."""
    text = hub.api("GET", "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("synchub_external_request_seconds_count{") and 'integration="stripe"' in line
        and ('method="POST"' in line or 'method="DELETE"' in line)
    )


def quiet_for(seconds: float, measure) -> None:
    """Assert that `measure()` does not change for `seconds` (polled): the systems went quiet."""
    before = measure()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert measure() == before, "still changing after agreement"
        time.sleep(0.5)


def test_three_systems_converge_without_a_loop_and_then_go_quiet(hub, receiver):
    endpoint = add_endpoint(hub, receiver)
    # Stripe -> hub -> the other system.
    email = f"stripe-{uuid.uuid4().hex[:8]}@example.com"
    hub.stripe.v1.customers.create(params={"name": "From Stripe", "email": email})
    [message] = wait_until(lambda: received_of(receiver, email=email), timeout=SYNC_TIMEOUT, message="delivered")
    assert message["type"] == "customer.created" and message["data"]["name"] == "From Stripe"

    # The other system -> hub -> Stripe (and not back to it).
    crm_email = f"crm-{uuid.uuid4().hex[:8]}@example.com"
    status, body = receiver.send(inbound_url(hub, endpoint), "customer.upserted",
                                 {"id": "crm-1", "name": "From CRM", "email": crm_email})
    assert status == 202, body
    [remote] = wait_until(lambda: hub.stripe_customers_with_email(crm_email), timeout=SYNC_TIMEOUT, message="in Stripe")
    assert remote.name == "From CRM"
    [local] = hub.customers_with_email(crm_email)

    # Concurrent edits of different fields on all three sides converge.
    assert hub.api("PATCH", f"/api/customers/{local['id']}", {"name": "Edited here"}).status_code == 200
    hub.stripe.v1.customers.update(remote.id, params={"phone": "+1 555 0100"})
    status, _ = receiver.send(inbound_url(hub, endpoint), "customer.updated", {"id": "crm-1", "description": "Edited in CRM"})
    assert status == 202

    def agreed() -> bool:
        here = hub.api("GET", f"/api/customers/{local['id']}").json()
        there = hub.stripe.v1.customers.retrieve(remote.id)
        told = received_of(receiver, item_id=local["id"])
        last = told[-1]["data"] if told else {}
        wanted = ("Edited here", "+1 555 0100", "Edited in CRM")
        return (
            (here["name"], here["phone"], here["description"]) == wanted
            and (there.name, there.phone, there.description) == wanted
            and (last.get("name"), last.get("phone"), last.get("description")) == wanted
        )

    wait_until(agreed, timeout=SYNC_TIMEOUT, message="all three agree")
    # Then nothing more moves: no delivery to the other system, no write to Stripe.
    quiet_for(6, lambda: (len(receiver.received()), stripe_writes(hub)))


def test_a_receiver_down_for_a_while_gets_everything_in_order_and_stripe_is_not_held_up(hub, receiver):
    endpoint = add_endpoint(hub, receiver)
    receiver.mode("fail")
    email = f"down-{uuid.uuid4().hex[:8]}@example.com"
    started = time.monotonic()
    customer = hub.api("POST", "/api/customers", {"name": "v0", "email": email}).json()
    wait_until(lambda: hub.stripe_customers_with_email(email), timeout=SYNC_TIMEOUT, message="in Stripe meanwhile")
    stripe_latency = time.monotonic() - started
    for version in range(1, 4):
        assert hub.api("PATCH", f"/api/customers/{customer['id']}", {"name": f"v{version}"}).status_code == 200
    wait_until(lambda: receiver.stats()["failed"] >= 2, timeout=SYNC_TIMEOUT, message="deliveries failing")
    receiver.mode("ok")

    def all_four() -> list[str]:
        names = [m["data"]["name"] for m in received_of(receiver, item_id=customer["id"])]
        return names if names and names[-1] == "v3" else []

    names = wait_until(all_four, timeout=SYNC_TIMEOUT, message="every change delivered")
    # In order per item: never an older state after a newer one (changes in quick succession may
    # come as one message with the newest state, as Stripe's own events do), ending with the last.
    versions = [int(name[1:]) for name in names]
    assert versions == sorted(versions) and versions[0] == 0 and versions[-1] == 3, names
    # And every message queued for it was delivered in the end: none left, none dead.
    deliveries = hub.api("GET", f"/api/webhook-endpoints/{endpoint['id']}/deliveries").json()["results"]
    mine = [d for d in deliveries if d["item_id"] == customer["id"]]
    assert mine and all(d["status"] == "succeeded" for d in mine) and any(d["attempts"] > 1 for d in mine)
    assert stripe_latency < 15, f"Stripe sync took {stripe_latency:.1f} s while the receiver was down"
    endpoint_now = hub.api("GET", f"/api/webhook-endpoints/{endpoint['id']}").json()
    assert endpoint_now["enabled"] and endpoint_now["failing_since"] is None


def test_a_receiver_that_never_answers_ends_disabled_with_its_messages_dead_lettered(hub, receiver, tmp_path):
    healthy = running_receiver(RECEIVER_SECRET, tmp_path / "healthy.log")
    with healthy as other:
        stalled = add_endpoint(hub, receiver)
        fine = add_endpoint(hub, other)
        receiver.mode("stall", stall_seconds=30)
        latencies = []
        emails = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            email = f"stall-{uuid.uuid4().hex[:8]}@example.com"
            emails.append(email)
            started = time.monotonic()
            hub.api("POST", "/api/customers", {"name": "Stalled?", "email": email})
            wait_until(lambda email=email: hub.stripe_customers_with_email(email), timeout=SYNC_TIMEOUT)
            latencies.append(time.monotonic() - started)
            if not hub.api("GET", f"/api/webhook-endpoints/{stalled['id']}").json()["enabled"]:
                break
        state = hub.api("GET", f"/api/webhook-endpoints/{stalled['id']}").json()
        assert not state["enabled"] and "failing since" in state["disabled_reason"]
        dead = hub.api("GET", f"/api/webhook-endpoints/{stalled['id']}/deliveries?status=dead").json()
        assert dead["count"] >= 1 and all(d["status"] == "dead" for d in dead["results"])
        wait_until(
            lambda: hub.api("GET", f"/api/webhook-endpoints/{stalled['id']}/deliveries?status=pending").json()["count"] == 0,
            timeout=SYNC_TIMEOUT, message="nothing left pending for the disabled endpoint",
        )
        # The healthy endpoint heard of every customer meanwhile, and Stripe kept its pace.
        wait_until(lambda: all(received_of(other, email=e) for e in emails), timeout=SYNC_TIMEOUT)
        assert max(latencies) < 15, latencies
        assert hub.api("GET", f"/api/webhook-endpoints/{fine['id']}").json()["enabled"]
        (ARTIFACTS / "webhooks.txt").write_text(
            f"Stripe sync latency while an endpoint stalled: {len(latencies)} customers, "
            f"max {max(latencies):.2f} s, median {sorted(latencies)[len(latencies) // 2]:.2f} s\n"
        )


def test_bad_inbound_messages_get_a_clear_4xx_and_change_nothing(hub, receiver):
    endpoint = add_endpoint(hub, receiver)
    url = inbound_url(hub, endpoint)
    before = hub.api("GET", "/api/customers?page_size=1").json()["count"]
    wrong = "whsec_" + base64.b64encode(b"w" * 32).decode()
    assert receiver.send(url, "customer.upserted", {"id": "x1", "name": "A"}, secret=wrong)[0] == 401
    assert receiver.send(url, "customer.upserted", {"id": "x1", "name": "A"}, timestamp=int(time.time()) - 3600)[0] == 400
    assert receiver.send(url, "customer.upserted", {"id": "x1", "email": "nope"})[0] == 400
    assert receiver.send(url, "customer.upserted", {"name": "no id"})[0] == 400
    assert receiver.send(url, "customer.upserted", {"id": "x2", "name": "Once"}, id="msg_fixed")[0] == 202
    assert receiver.send(url, "customer.upserted", {"id": "x2", "name": "Twice"}, id="msg_fixed")[0] == 409
    unsigned = receiver.send(url, "customer.upserted", {"id": "x3"}, headers={"webhook-signature": ""})
    assert unsigned[0] == 401
    wait_until(lambda: hub.api("GET", "/api/customers?search=Once").json()["count"] == 1, timeout=SYNC_TIMEOUT)
    assert hub.api("GET", "/api/customers?page_size=1").json()["count"] == before + 1
