"""`POST /webhooks/stripe`: signature checks on the raw body, durable hand-off, clear errors."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from sync import kafka as sync_kafka
from sync.models import OutboxMessage
from sync.tasks import TaskMessage

from .helpers import read_topic, stripe_event, stripe_signature

pytestmark = pytest.mark.django_db

URL = "/webhooks/stripe"


def post(body: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return Client().post(URL, data=body, content_type="application/json", **headers)


def inward_messages(expected: int) -> list[TaskMessage]:
    return [TaskMessage.decode(r.value) for r in read_topic("stripe_customer_inward", expected=expected, timeout=5)]


def test_signed_customer_event_is_put_on_kafka(kafka, webhook_secret):
    before = len(inward_messages(0))
    body = stripe_event("customer.updated", {"id": "cus_wh", "name": "N", "email": "n@example.com"}, event_id="evt_k")
    response = post(body, stripe_signature(body, webhook_secret))
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "id": "evt_k", "queued": True}
    messages = inward_messages(before + 1)
    message = next(m for m in messages if m.kwargs["event_id"] == "evt_k")
    assert message.task == "stripe.apply_event"
    assert message.kwargs["event_type"] == "customer.updated"
    assert message.kwargs["stripe_customer_id"] == "cus_wh"
    assert message.kwargs["customer"]["email"] == "n@example.com"
    assert not OutboxMessage.objects.exists()


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "garbage",
        "t=1,v1=deadbeef",
        "wrong-secret",
        "too-old",
    ],
)
def test_unsigned_or_wrongly_signed_webhook_is_a_400_and_changes_nothing(kafka, webhook_secret, signature):
    body = stripe_event("customer.created", {"id": "cus_bad", "name": "Evil", "email": "evil@example.com"})
    if signature == "wrong-secret":
        signature = stripe_signature(body, "whsec_someone_else")
    elif signature == "too-old":
        signature = stripe_signature(body, webhook_secret, timestamp=int(time.time()) - 3600)
    response = post(body, signature)
    assert response.status_code == 400
    assert "detail" in response.json()
    assert not OutboxMessage.objects.exists()


def test_body_changed_after_signing_is_rejected(kafka, webhook_secret):
    body = stripe_event("customer.created", {"id": "cus_t", "name": "A", "email": "a@example.com"})
    signature = stripe_signature(body, webhook_secret)
    response = post(body.replace(b'"A"', b'"B"'), signature)
    assert response.status_code == 400


def test_signed_but_malformed_payload_is_a_400(kafka, webhook_secret):
    before = len(inward_messages(0))
    malformed = [
        b"{not json",
        b"[]",
        b"\xff\xfe",
        {"type": "customer.created", "id": "evt_1"},
        {"type": "customer.created", "id": "evt_2", "data": []},
        {"type": "customer.updated", "id": "evt_3", "data": {"object": {"name": "no id"}}},
        {"type": "customer.updated", "id": 4, "data": {"object": {"id": "cus_1"}}},
        {"type": "customer.updated", "id": "evt_5", "created": "yesterday", "data": {"object": {"id": "cus_1"}}},
    ]
    for body in malformed:
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = post(body, stripe_signature(body, webhook_secret))
        assert response.status_code == 400, body
        assert response.json()["detail"] in {"Malformed JSON payload.", "Not a well-formed Stripe event."}
    assert not OutboxMessage.objects.exists()
    assert len(inward_messages(before)) == before


def test_other_event_types_are_acknowledged_and_ignored(kafka, webhook_secret):
    body = stripe_event("invoice.paid", {"id": "in_1"})
    response = post(body, stripe_signature(body, webhook_secret))
    assert response.status_code == 200 and response.json()["queued"] is False


def test_kafka_down_the_event_is_kept_in_the_outbox_before_the_2xx(kafka, webhook_secret, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ["127.0.0.1:9"]
    settings.KAFKA_PUBLISH_TIMEOUT_SECONDS = 1.0
    sync_kafka.reset_producer()
    body = stripe_event("customer.created", {"id": "cus_o", "name": "O", "email": "o@example.com"}, event_id="evt_o")
    response = post(body, stripe_signature(body, webhook_secret))
    assert response.status_code == 200
    [row] = OutboxMessage.objects.all()
    assert row.topic == "stripe_customer_inward" and row.key == "cus_o"
    assert row.payload["kwargs"]["event_id"] == "evt_o"


def test_without_a_configured_secret_nothing_is_accepted(kafka, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = stripe_event("customer.created", {"id": "cus_x"})
    response = post(body, stripe_signature(body, ""))
    assert response.status_code == 503
    assert not OutboxMessage.objects.exists()


def test_only_post_is_allowed(webhook_secret):
    assert Client().get(URL).status_code == 405


def test_webhook_outcomes_are_counted(kafka, webhook_secret):
    from sync.metrics import WEBHOOKS_RECEIVED

    def count(outcome: str) -> float:
        return WEBHOOKS_RECEIVED.labels(integration="stripe", outcome=outcome)._value.get()

    rejected, queued = count("rejected"), count("queued")
    post(b"{}", "t=1,v1=00")
    body = stripe_event("customer.updated", {"id": "cus_m", "name": "M", "email": "m@example.com"})
    post(body, stripe_signature(body, webhook_secret))
    assert (count("rejected"), count("queued")) == (rejected + 1, queued + 1)
