"""The inward apply of a poll's events at once (issue #13): plain changes written together, every
other event one by one, the same outcomes as one at a time, and nothing half-written when the
database refuses the batch."""

from __future__ import annotations

import copy

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Customer
from integrations.stripe import apply as stripe_apply
from integrations.stripe.apply import stripe_events_apply
from sync import outward
from sync.models import InboxEvent, OutboxMessage, SyncConflict
from sync.tasks import Task

from .factories import CustomerFactory
from .test_fidelity import fixture
from .test_stripe_sync import apply, mapping_of_remote, next_event_second, synced_customer

pytestmark = pytest.mark.django_db


def stripe_customer(remote_id: str, **fields) -> dict:
    """Stripe's published customer object (tests/fixtures/stripe), as this customer."""
    customer = copy.deepcopy(fixture("customer_created_full")["data"]["object"])
    customer.update(id=remote_id, metadata={}, **fields)
    return customer


def renames(prefix: str, count: int, *, created: int, name: str = "After") -> list[dict]:
    return [
        {
            "event_id": f"evt_{prefix}{index}_{name}",
            "event_type": "customer.updated",
            "created": created,
            "customer": stripe_customer(f"cus_{prefix}{index}", name=name, email=f"{prefix}{index}@example.com"),
        }
        for index in range(count)
    ]


def linked(prefix: str, count: int) -> None:
    for index in range(count):
        remote = stripe_customer(f"cus_{prefix}{index}", name="Before", email=f"{prefix}{index}@example.com")
        apply("customer.created", remote)


def statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def test_a_batch_of_plain_changes_costs_the_same_statements_whatever_its_size():
    linked("s", 60)
    counts = []
    for size, created in ((10, next_event_second()), (60, next_event_second())):
        with CaptureQueriesContext(connection) as queries:
            outcomes = stripe_events_apply(renames("s", size, created=created, name=f"After {size}"))
        assert [outcome.action for outcome in outcomes] == ["applied"] * size
        counts.append(len(statements(queries)))
    assert counts[0] == counts[1], counts
    # The inbox (repeats and earlier events in one), tombstones, mappings, customers; two tables'
    # UPDATEs, the mappings' agreed fields (each one executemany); the inbox rows.
    assert counts[1] <= 8
    assert {mapping_of_remote(f"cus_s{index}").name for index in range(60)} == {"After 60"}
    assert InboxEvent.objects.filter(event_id__endswith="_After 60").count() == 60


def test_a_mixed_batch_reports_each_outcome_in_order_as_one_at_a_time_would():
    linked("x", 3)
    conflicted = synced_customer("cus_conflict", name="Base", email="conflict@example.com")
    Customer.objects.filter(pk=conflicted.pk).update(name="Local edit")  # changed here since agreed
    apply("customer.updated", stripe_customer("cus_x2", name="Already", email="x2@example.com"), event_id="evt_seen")
    created = next_event_second()
    events = [
        *renames("x", 2, created=created),
        {"event_id": "evt_seen", "event_type": "customer.updated", "created": created,
         "customer": stripe_customer("cus_x2", name="Repeat", email="x2@example.com")},
        {"event_id": "evt_conflict", "event_type": "customer.updated", "created": created,
         "customer": stripe_customer("cus_conflict", name="Remote edit", email="conflict@example.com")},
        {"event_id": "evt_new", "event_type": "customer.created", "created": created,
         "customer": stripe_customer("cus_new", name="Newcomer", email="new@example.com")},
        {"event_id": "evt_gone", "event_type": "customer.deleted", "created": created,
         "customer": {**stripe_customer("cus_x1", name="After", email="x1@example.com"), "deleted": True}},
        {"event_id": "evt_stale", "event_type": "customer.updated", "created": created - 60,
         "customer": stripe_customer("cus_x2", name="Old news", email="x2@example.com")},
    ]
    # cus_x1's rename and delete are one key: the worker never puts both in one batch.
    events = [event for event in events if event["event_id"] != "evt_x1_After"]
    outcomes = stripe_events_apply(events)
    assert [outcome.action for outcome in outcomes] == [
        "applied",
        "duplicate",
        "applied",
        "applied",
        "unlinked: deleted in Stripe",
        "ignored: stale",
    ]
    assert mapping_of_remote("cus_x0").name == "After"
    assert mapping_of_remote("cus_x2").name == "Already"
    conflicted.refresh_from_db()
    assert conflicted.name == "Local edit"
    assert SyncConflict.objects.get(remote_event_id="evt_conflict").field == "name"
    assert mapping_of_remote("cus_new").name == "Newcomer"
    assert not Customer.objects.filter(integrations__integration_id="cus_x1").exists()
    assert set(InboxEvent.objects.filter(event_id__in=[e["event_id"] for e in events]).values_list(
        "event_id", flat=True)) == {"evt_x0_After", "evt_seen", "evt_conflict", "evt_new", "evt_gone", "evt_stale"}


def test_a_batch_the_database_refuses_is_rolled_back_and_applied_one_by_one(monkeypatch):
    """The batched write is all or nothing: when the database refuses it after some rows were
    written, none of them stay, and each event is applied on its own instead."""
    linked("r", 5)
    real_update = stripe_apply.customers_update

    def refused_after_writing(*, changes):
        real_update(changes=changes)
        raise IntegrityError("refused by the database")

    monkeypatch.setattr(stripe_apply, "customers_update", refused_after_writing)
    events = renames("r", 5, created=next_event_second())
    events[3]["customer"]["metadata"] = {"plan": "gold"}
    outcomes = stripe_events_apply(events)
    assert [outcome.action for outcome in outcomes] == ["applied"] * 5
    assert [mapping_of_remote(f"cus_r{index}").name for index in range(5)] == ["After"] * 5
    assert mapping_of_remote("cus_r3").metadata == {"plan": "gold"}
    # The merge base holds the applied values once, from the one-by-one path.
    assert mapping_of_remote("cus_r3").integrations.get().synced_fields["metadata"] == {"plan": "gold"}
    assert InboxEvent.objects.filter(event_id__startswith="evt_r").count() == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores a NUL in a text column")
def test_a_row_postgresql_refuses_fails_only_its_own_event():
    linked("n", 4)
    events = renames("n", 4, created=next_event_second())
    events[2]["customer"]["name"] = "Nul\x00name"
    outcomes = stripe_events_apply(events)
    assert isinstance(outcomes[2], Exception)
    assert [outcomes[i].action for i in (0, 1, 3)] == ["applied"] * 3
    assert mapping_of_remote("cus_n2").name == "Before"
    assert not InboxEvent.objects.filter(event_id=events[2]["event_id"]).exists()  # its retry applies it


def test_other_integrations_hear_every_change_applied_in_a_batch():
    """No echo to Stripe, but an integration the change did not come from is sent it."""
    linked("o", 3)
    other = Task(name="tests.other_push", topic="other_outward", func=lambda **kwargs: None, key="item_id")
    outward.register_outward_sync(model=Customer, integration_type="other", task=other)
    try:
        before = OutboxMessage.objects.filter(topic="stripe_customer_outward").count()
        stripe_events_apply(renames("o", 3, created=next_event_second()))
        heard = OutboxMessage.objects.filter(topic="other_outward")
        assert sorted(int(message.key) for message in heard) == sorted(
            mapping_of_remote(f"cus_o{index}").pk for index in range(3)
        )
        assert OutboxMessage.objects.filter(topic="stripe_customer_outward").count() == before
    finally:
        outward._routes[Customer] = [r for r in outward._routes[Customer] if r.integration_type != "other"]


def test_a_customer_changed_locally_and_untouched_remotely_keeps_the_local_value_in_a_batch():
    customer = CustomerFactory(name="Base", email="keep@example.com")
    synced = synced_customer("cus_keep", name="Base", email="keep2@example.com")
    Customer.objects.filter(pk=synced.pk).update(name="Local edit")
    outcomes = stripe_events_apply(
        [{"event_id": "evt_keep", "event_type": "customer.updated", "created": next_event_second(),
          "customer": stripe_customer("cus_keep", name="Base", email="keep2@example.com", phone="+41 44 000 00 00")}]
    )
    assert outcomes[0].action == "applied"
    synced.refresh_from_db()
    assert (synced.name, synced.phone) == ("Local edit", "+41 44 000 00 00")
    assert customer.name == "Base"


def test_the_inbox_forgets_old_events_but_not_what_decides_staleness_or_deletion(settings):
    """Past SYNC_INBOX_RETENTION_DAYS only each object's newest event and its deletions stay: a
    late redelivery of a forgotten event is still ignored as stale, and the inbox grows with the
    objects, not with every event."""
    from datetime import datetime, timedelta
    from datetime import timezone as dt_timezone

    from django.utils import timezone

    from sync.inbox import Inbox, IncomingEvent, inbox_prune

    settings.SYNC_INBOX_RETENTION_DAYS = 35
    base = datetime(2026, 10, 1, tzinfo=dt_timezone.utc)

    def handled(event_id: str, object_id: str, *, minutes: int, days_ago: int, event_type="customer.updated"):
        InboxEvent.objects.create(
            source="stripe", event_id=event_id, event_type=event_type, object_id=object_id,
            occurred_at=base + timedelta(minutes=minutes),
        )
        InboxEvent.objects.filter(event_id=event_id).update(processed_at=timezone.now() - timedelta(days=days_ago))

    handled("evt_a1", "cus_a", minutes=1, days_ago=40)
    handled("evt_a2", "cus_a", minutes=2, days_ago=40)
    handled("evt_a3", "cus_a", minutes=3, days_ago=1)  # recent
    handled("evt_b1", "cus_b", minutes=1, days_ago=40, event_type="customer.deleted")
    handled("evt_b2", "cus_b", minutes=2, days_ago=40)  # news after the delete, the newest
    handled("evt_c1", "cus_c", minutes=1, days_ago=40)  # an object's only event
    handled("evt_d1", "cus_d", minutes=1, days_ago=40)
    handled("evt_d2", "cus_d", minutes=2, days_ago=39)

    assert inbox_prune() == 3
    assert set(InboxEvent.objects.values_list("event_id", flat=True)) == {"evt_a3", "evt_b1", "evt_b2", "evt_c1", "evt_d2"}
    assert inbox_prune() == 0

    late = IncomingEvent(event_id="evt_a1", event_type="customer.updated", object_id="cus_a",
                         occurred_at=base + timedelta(minutes=1))
    after_delete = IncomingEvent(event_id="evt_b9", event_type="customer.updated", object_id="cus_b",
                                 occurred_at=base + timedelta(minutes=9))
    inbox = Inbox(source="stripe", events=[late, after_delete])
    assert inbox.skip_reason(late) == "ignored: stale"
    assert inbox.skip_reason(after_delete) == "ignored: deleted in Stripe"
