"""The Stripe services, both directions, against localstripe (the real `stripe` library)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import stripe

from catalog import services as catalog
from catalog.models import CatalogIntegration, Customer, SyncStatus
from integrations.stripe.client import stripe_client
from integrations.stripe.apply import stripe_event_apply
from integrations.stripe.push import customer_push
from sync.models import InboxEvent, OutboxMessage, SyncConflict
from sync.tasks import PermanentTaskError

from .factories import CustomerFactory
from .helpers import wait_until

pytestmark = pytest.mark.django_db


def push(customer_id: int, action: str = "upsert", external_id: str | None = None, event_id: str | None = None):
    customer_push(item_id=customer_id, action=action, event_id=event_id or uuid.uuid4().hex, external_id=external_id)


def begin_create(customer: Customer, *, key: str) -> None:
    """What the worker records before asking Stripe to create `customer`."""
    mappings = catalog.integrations_for_items(item_ids=[customer.pk], integration_type="stripe")
    catalog.integrations_begin_create(integration_type="stripe", keys={customer.pk: key}, mappings=mappings)


def mapping_of(customer: Customer) -> CatalogIntegration:
    return CatalogIntegration.objects.get(catalog_item=customer, integration_type="stripe")


def remote_customers(client: stripe.StripeClient, email: str) -> list:
    return list(client.v1.customers.list(params={"email": email}).data)


_last_event_second = 0


def next_event_second() -> int:
    """Stripe event times in whole seconds: each event a second after the previous one and after
    anything recorded so far (our own last push included), as events of separate changes are."""
    global _last_event_second
    _last_event_second = max(_last_event_second + 1, int(time.time()) + 1)
    return _last_event_second


def apply(event_type: str, remote: dict, event_id: str | None = None, created: int | None = None) -> bool:
    """Apply an event as the webhook delivers it; False when it was a repeat."""
    result = stripe_event_apply(
        event_id=event_id or f"evt_{uuid.uuid4().hex}",
        event_type=event_type,
        customer=remote,
        created=created if created is not None else next_event_second(),
    )
    return result.action != "duplicate"


def outward_events() -> int:
    return OutboxMessage.objects.filter(topic="stripe_customer_outward").count()


# --- Outward ---------------------------------------------------------------------------------


def test_push_creates_one_stripe_customer_and_records_the_mapping(stripe_sandbox):
    customer = CustomerFactory(name="Ada", email="ada@example.com")
    push(customer.pk, event_id="e1")
    push(customer.pk, event_id="e1")  # the same event delivered again

    [remote] = remote_customers(stripe_sandbox, "ada@example.com")
    assert (remote.name, remote.email, remote.metadata["local_id"]) == ("Ada", "ada@example.com", str(customer.pk))
    mapping = mapping_of(customer)
    assert (mapping.integration_id, mapping.status, mapping.last_error) == (remote.id, SyncStatus.SYNCED, "")
    assert mapping.last_synced_at is not None


def test_push_updates_then_deletes(stripe_sandbox):
    customer = CustomerFactory(email="ada@example.com")
    push(customer.pk)
    remote_id = mapping_of(customer).integration_id
    catalog.customer_update(customer=customer, name="Renamed", email="new@example.com")
    push(customer.pk)
    remote = stripe_sandbox.v1.customers.retrieve(remote_id)
    assert (remote.name, remote.email) == ("Renamed", "new@example.com")

    push(customer.pk, action="delete", external_id=remote_id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_sandbox.v1.customers.retrieve(remote_id)
    push(customer.pk, action="delete", external_id=remote_id)  # already gone: fine


def test_push_of_a_customer_deleted_since_calls_nothing(stripe_sandbox):
    customer = CustomerFactory(email="gone@example.com")
    customer_id = customer.pk
    customer.delete()
    push(customer_id)
    assert remote_customers(stripe_sandbox, "gone@example.com") == []


def test_push_to_a_customer_deleted_in_stripe_unlinks_it(stripe_sandbox):
    customer = CustomerFactory()
    push(customer.pk)
    stripe_sandbox.v1.customers.delete(mapping_of(customer).integration_id)
    catalog.customer_update(customer=customer, name="Changed")
    push(customer.pk)
    assert not CatalogIntegration.objects.filter(catalog_item=customer).exists()
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_unreachable_stripe_is_retryable_and_recorded(stripe_sandbox, settings):
    customer = CustomerFactory()
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    stripe_client.cache_clear()
    with pytest.raises(stripe.APIConnectionError):
        push(customer.pk)
    mapping = mapping_of(customer)
    assert mapping.status == SyncStatus.PENDING and mapping.last_error


def test_client_error_is_permanent_and_marks_the_mapping_failed(stripe_sandbox, settings):
    customer = CustomerFactory()
    settings.STRIPE_API_KEY = "not-a-key"
    stripe_client.cache_clear()
    with pytest.raises(PermanentTaskError):
        push(customer.pk)
    mapping = mapping_of(customer)
    assert mapping.status == SyncStatus.FAILED and "Unauthorized" in mapping.last_error


# --- Inward ----------------------------------------------------------------------------------


def test_created_remotely_creates_the_local_customer_without_echo():
    assert apply("customer.created", {"id": "cus_new", "name": "Remote", "email": "remote@example.com"})
    customer = Customer.objects.get(email="remote@example.com")
    mapping = mapping_of(customer)
    assert (customer.name, mapping.integration_id, mapping.status) == ("Remote", "cus_new", SyncStatus.SYNCED)
    assert outward_events() == 0


def test_the_same_event_applies_once():
    event = {"id": "cus_1", "name": "Once", "email": "once@example.com"}
    assert apply("customer.created", event, event_id="evt_same") is True
    assert apply("customer.created", event, event_id="evt_same") is False
    assert apply("customer.updated", {**event, "name": "Twice"}, event_id="evt_same") is False
    assert Customer.objects.get().name == "Once"
    assert InboxEvent.objects.filter(event_id="evt_same").count() == 1


def test_stripe_customer_without_email_is_stored():
    apply("customer.created", {"id": "cus_anon", "name": "", "email": None})
    customer = mapping_of_remote("cus_anon")
    assert customer.email is None


def mapping_of_remote(remote_id: str) -> Customer:
    return CatalogIntegration.objects.get(integration_id=remote_id).catalog_item.get_real_instance()


def test_updated_and_deleted_remotely():
    apply("customer.created", {"id": "cus_2", "name": "A", "email": "a@example.com"})
    apply("customer.updated", {"id": "cus_2", "name": "B", "email": "b@example.com"})
    customer = mapping_of_remote("cus_2")
    assert (customer.name, customer.email) == ("B", "b@example.com")
    apply("customer.deleted", {"id": "cus_2", "name": "B", "email": "b@example.com"})
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert not CatalogIntegration.objects.filter(catalog_item=customer).exists()
    assert outward_events() == 0


def test_updated_delivered_before_created_ends_with_the_newest_state():
    now = int(time.time())
    apply("customer.updated", {"id": "cus_3", "name": "Newer", "email": "c@example.com"}, created=now + 1)
    assert apply("customer.created", {"id": "cus_3", "name": "Older", "email": "c@example.com"}, created=now)
    assert Customer.objects.count() == 1
    assert mapping_of_remote("cus_3").name == "Newer"


def test_an_inward_rename_takes_a_fixed_few_statements():
    """A rename of a linked customer reads its inbox and mapping once, loads the customer once and
    skips the email look-up when the email did not change."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    apply("customer.created", {"id": "cus_q", "name": "Before", "email": "q@example.com"})
    with CaptureQueriesContext(connection) as queries:
        apply("customer.updated", {"id": "cus_q", "name": "After", "email": "q@example.com"})
    assert mapping_of_remote("cus_q").name == "After"
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # The inbox (repeats and earlier events, one aggregate), the tombstone look-up, the mapping,
    # the customer, its two tables' UPDATEs, the mapping's agreed fields and the inbox row.
    assert len(statements) <= 8, "\n".join(statements)
    assert sum('"catalog_catalogintegration"' in sql and sql.startswith("SELECT") for sql in statements) == 1
    assert not any("LOWER" in sql for sql in statements)  # no email look-up


def test_an_event_older_than_one_applied_is_ignored():
    now = int(time.time())
    apply("customer.created", {"id": "cus_o", "name": "First", "email": "o@example.com"}, created=now)
    apply("customer.updated", {"id": "cus_o", "name": "Third", "email": "o@example.com"}, created=now + 10)
    apply("customer.updated", {"id": "cus_o", "name": "Second", "email": "o@example.com"}, created=now + 5)
    assert mapping_of_remote("cus_o").name == "Third"
    assert InboxEvent.objects.filter(object_id="cus_o").count() == 3


def test_events_in_the_same_second_are_resolved_by_reading_stripe(stripe_sandbox):
    remote = stripe_sandbox.v1.customers.create(params={"name": "Truth", "email": "tie@example.com"})
    now = int(time.time())
    apply("customer.created", {"id": remote.id, "name": "A", "email": "tie@example.com"}, created=now)
    apply("customer.updated", {"id": remote.id, "name": "B", "email": "tie@example.com"}, created=now)
    assert mapping_of_remote(remote.id).name == "Truth"


def test_nothing_revives_a_customer_deleted_in_stripe():
    now = int(time.time())
    apply("customer.deleted", {"id": "cus_d", "name": "D", "email": "d@example.com"}, created=now + 2)
    apply("customer.created", {"id": "cus_d", "name": "D", "email": "d@example.com"}, created=now)
    apply("customer.updated", {"id": "cus_d", "name": "D2", "email": "d@example.com"}, created=now + 1)
    assert not Customer.objects.exists()


def test_created_remotely_links_an_unmapped_local_customer_by_email():
    local = Customer.objects.create(name="Local", email="Link@Example.com")
    CatalogIntegration.objects.all().delete()  # never synced
    before = outward_events()
    apply("customer.created", {"id": "cus_link", "name": "Remote name", "email": "link@example.com"})
    assert Customer.objects.count() == 1
    assert mapping_of(local).integration_id == "cus_link"
    assert Customer.objects.get().name == "Remote name"
    assert outward_events() == before


def test_our_own_create_coming_back_only_links(stripe_sandbox):
    """The webhook of our own create can beat the worker's bookkeeping: it links by
    metadata.local_id and keeps the local values that are on their way."""
    customer = CustomerFactory(name="Mine", email="mine@example.com")
    catalog.customer_update(customer=customer, name="Mine, edited")
    apply(
        "customer.created",
        {"id": "cus_mine", "name": "Mine", "email": "mine@example.com", "metadata": {"local_id": str(customer.pk)}},
    )
    customer.refresh_from_db()
    mapping = mapping_of(customer)
    assert (customer.name, mapping.integration_id, mapping.status) == ("Mine, edited", "cus_mine", SyncStatus.PENDING)
    assert Customer.objects.count() == 1


def test_echo_of_our_own_update_changes_nothing(stripe_sandbox):
    customer = CustomerFactory(name="Echo", email="echo@example.com")
    push(customer.pk)
    remote_id = mapping_of(customer).integration_id
    events_before, updated_before = outward_events(), Customer.objects.get().updated_at
    apply("customer.updated", {"id": remote_id, "name": "Echo", "email": "echo@example.com"})
    assert outward_events() == events_before
    assert Customer.objects.get().updated_at == updated_before


def synced_customer(remote_id: str, **fields) -> Customer:
    customer = CustomerFactory(**fields)
    catalog.integration_record_synced(
        item_id=customer.pk,
        integration_type="stripe",
        integration_id=remote_id,
        agreed_fields={"name": customer.name, "email": customer.email},
    )
    return customer


def test_fields_changed_on_different_sides_merge_without_conflict():
    customer = synced_customer("cus_m", name="Base", email="base@example.com")
    catalog.customer_update(customer=customer, name="Local name")  # pending push
    apply("customer.updated", {"id": "cus_m", "name": "Base", "email": "remote@example.com"})
    customer.refresh_from_db()
    assert (customer.name, customer.email) == ("Local name", "remote@example.com")
    assert not SyncConflict.objects.exists()


def test_a_field_changed_on_both_sides_keeps_the_local_value_and_records_the_conflict():
    customer = synced_customer("cus_c", name="Base", email="c@example.com")
    catalog.customer_update(customer=customer, name="Local edit")  # pending push
    apply("customer.updated", {"id": "cus_c", "name": "Remote edit", "email": "c@example.com"}, event_id="evt_c")
    customer.refresh_from_db()
    assert customer.name == "Local edit"
    [conflict] = SyncConflict.objects.all()
    assert (conflict.field, conflict.local_value, conflict.remote_value, conflict.kept, conflict.remote_event_id) == (
        "name",
        "Local edit",
        "Remote edit",
        "local",
        "evt_c",
    )


def test_a_conflict_won_locally_without_a_push_in_flight_sends_one():
    customer = synced_customer("cus_f", name="Base")
    catalog.customer_update(customer=customer, name="Local edit")
    catalog.integration_record_error(item_id=customer.pk, integration_type="stripe", error="gave up", final=True)
    before = outward_events()
    apply("customer.updated", {"id": "cus_f", "name": "Remote edit", "email": customer.email})
    assert outward_events() == before + 1
    assert mapping_of(customer).status == SyncStatus.PENDING


def test_push_sends_only_locally_changed_fields(stripe_sandbox):
    customer = CustomerFactory(name="Before", email="partial@example.com")
    push(customer.pk)
    remote_id = mapping_of(customer).integration_id
    # Changed in Stripe while its webhook is still on the way:
    stripe_sandbox.v1.customers.update(remote_id, params={"email": "changed-in-stripe@example.com"})
    catalog.customer_update(customer=customer, name="After")
    push(customer.pk)
    remote = stripe_sandbox.v1.customers.retrieve(remote_id)
    assert (remote.name, remote.email) == ("After", "changed-in-stripe@example.com")


def test_full_resync_repairs_drift(stripe_sandbox):
    customer = CustomerFactory(name="Ours", email="drift@example.com")
    push(customer.pk)
    remote_id = mapping_of(customer).integration_id
    stripe_sandbox.v1.customers.update(remote_id, params={"name": "Drifted"})
    customer_push(item_id=customer.pk, action="upsert", event_id="resync-1", full=True)
    assert stripe_sandbox.v1.customers.retrieve(remote_id).name == "Ours"


def test_email_clash_with_another_linked_customer_is_permanent_and_writes_nothing():
    linked = CustomerFactory(email="taken@example.com")
    catalog.integration_record_synced(item_id=linked.pk, integration_type="stripe", integration_id="cus_owner")
    with pytest.raises(PermanentTaskError):
        apply("customer.created", {"id": "cus_other", "name": "X", "email": "TAKEN@example.com"}, event_id="evt_x")
    assert Customer.objects.count() == 1
    assert not InboxEvent.objects.filter(event_id="evt_x").exists()  # a replay after a fix applies it


def test_a_create_interrupted_after_stripe_answered_is_not_repeated(stripe_sandbox):
    """A crash between Stripe's create and our bookkeeping: the retry adopts the customer."""
    customer = CustomerFactory(email="crash@example.com")
    begin_create(customer, key="synchub-e1-create")
    stripe_sandbox.v1.customers.create(
        params={"email": "crash@example.com", "name": customer.name, "metadata": {"local_id": str(customer.pk)}}
    )
    push(customer.pk, event_id="e1")
    [remote] = remote_customers(stripe_sandbox, "crash@example.com")
    mapping = mapping_of(customer)
    assert (mapping.integration_id, mapping.pending_create_key) == (remote.id, "")


def test_a_create_interrupted_before_stripe_answered_creates_once(stripe_sandbox):
    customer = CustomerFactory(email="early@example.com")
    begin_create(customer, key="synchub-e2-create")
    push(customer.pk, event_id="e3")
    assert len(remote_customers(stripe_sandbox, "early@example.com")) == 1


def test_stripe_calls_are_timed_by_outcome(stripe_sandbox):
    from sync.metrics import EXTERNAL_REQUESTS

    def observed(method: str, outcome: str) -> float:
        return EXTERNAL_REQUESTS.labels(integration="stripe", method=method, outcome=outcome)._sum.get()

    ok_before, missing_before = observed("POST", "ok"), observed("POST", "4xx")
    customer = CustomerFactory()
    push(customer.pk)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_sandbox.v1.customers.update("cus_missing", params={"name": "x"})
    assert observed("POST", "ok") > ok_before
    assert observed("POST", "4xx") > missing_before


def _changes(customers, action: str = "upsert") -> list[dict]:
    return [{"item_id": c.pk, "action": action, "event_id": uuid.uuid4().hex} for c in customers]


def test_a_batch_of_changes_costs_the_same_statements_whatever_its_size(stripe_sandbox):
    """The worker hands the Stripe push whole batches: reading and recording them takes a fixed
    number of SQL statements, not a few per change."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations.stripe.push import customers_push

    statements = []
    for size in (2, 12):
        customers = CustomerFactory.create_batch(size)
        with CaptureQueriesContext(connection) as queries:
            results = customers_push(_changes(customers))
        assert [r.action for r in results] == ["created"] * size
        statements.append(len(queries))
        with CaptureQueriesContext(connection) as queries:
            for customer in customers:
                customer.name += " renamed"
                customer.save()
        with CaptureQueriesContext(connection) as queries:
            results = customers_push(_changes(customers))
        assert [r.action for r in results] == ["updated"] * size
        statements.append(len(queries))
        for customer in customers:
            mapping = mapping_of(customer)
            assert mapping.status == SyncStatus.SYNCED
            assert stripe_sandbox.v1.customers.retrieve(mapping.integration_id).name == customer.name
    assert statements[0] == statements[2] and statements[1] == statements[3], statements


def test_a_batch_mixes_outcomes_and_reports_each(stripe_sandbox):
    kept, gone, deleted_in_stripe = CustomerFactory.create_batch(3)
    linked = CustomerFactory()
    push(linked.pk)
    remote_id = mapping_of(linked).integration_id
    gone_id = gone.pk
    gone.delete()
    CatalogIntegration.objects.filter(catalog_item=deleted_in_stripe).update(integration_id="cus_missing_in_stripe")

    from integrations.stripe.push import customers_push

    changes = _changes([kept]) + [{"item_id": gone_id, "action": "upsert", "event_id": "e-gone"}]
    changes += _changes([deleted_in_stripe]) + [
        {"item_id": linked.pk, "action": "delete", "event_id": "e-del", "external_id": remote_id}
    ]
    results = customers_push(changes)

    assert results[0].action == "created" and mapping_of(kept).status == SyncStatus.SYNCED
    assert results[1].action == "skipped: deleted locally"
    assert results[2].action == "unlinked: deleted in Stripe"
    assert not CatalogIntegration.objects.filter(catalog_item=deleted_in_stripe).exists()
    assert results[3].action == "deleted"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_sandbox.v1.customers.retrieve(remote_id)


def test_a_batch_of_events_applies_in_a_few_statements_each_and_one_failure_fails_only_itself():
    """The inward worker hands a poll's events (distinct customers) over at once: one
    transaction, reads shared by the batch, plain changes written together, the refused event
    alone in its savepoint (tests/test_inward_batch.py has the rest)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations.stripe.apply import stripe_events_apply

    for index in range(40):
        apply("customer.created", {"id": f"cus_b{index}", "name": "Before", "email": f"b{index}@example.com"})
    CustomerFactory(email="taken@example.com")
    now = next_event_second()
    events = [
        {
            "event_id": f"evt_b{index}",
            "event_type": "customer.updated",
            "created": now + 5,
            "customer": {
                "id": f"cus_b{index}",
                "object": "customer",
                "name": "After",
                "email": f"b{index}@example.com",
            },
        }
        for index in range(40)
    ]
    # One of them takes an email another local customer has: refused, alone.
    events[7]["customer"]["email"] = "taken@example.com"
    with CaptureQueriesContext(connection) as queries:
        outcomes = stripe_events_apply(events)
    assert isinstance(outcomes[7], PermanentTaskError)
    assert [o.action for i, o in enumerate(outcomes) if i != 7] == ["applied"] * 39
    assert mapping_of_remote("cus_b0").name == "After" and mapping_of_remote("cus_b7").name == "Before"
    assert not InboxEvent.objects.filter(event_id="evt_b7").exists()  # its retry will apply it
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # Per batch: the inbox (repeats and earlier events in one), tombstones, mappings, customers,
    # the plain changes' two UPDATEs and agreed fields (executemany each), the inbox rows; the
    # refused event's email look-up and its savepoint's rollback.
    assert len(statements) <= 10, "\n".join(statements[:20])


@pytest.mark.django_db(transaction=True)
def test_a_local_delete_while_a_create_is_recorded_deletes_it_in_stripe_too():
    """The worker has recorded a Stripe id for a customer, not yet committed, when staff delete
    the customer: the delete must wait for that record and send the Stripe delete, or the
    Stripe customer outlives the local one (seen on PostgreSQL with late webhooks)."""
    from django.db import connection, connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite's IMMEDIATE transactions already serialise these writers")
    customer = CustomerFactory(email=f"race-{uuid.uuid4().hex[:8]}@example.com")
    recorded, release, deleted = threading.Event(), threading.Event(), threading.Event()

    def record_create() -> None:
        try:
            with transaction.atomic():
                catalog.integrations_record_synced(integration_type="stripe", confirmed={customer.pk: ("cus_race", {})})
                recorded.set()
                release.wait(30)
        finally:
            connections.close_all()

    def delete_locally() -> None:
        try:
            with transaction.atomic():
                catalog.customer_delete(customer=Customer.objects.get(pk=customer.pk))
            deleted.set()
        finally:
            connections.close_all()

    recorder = threading.Thread(target=record_create)
    recorder.start()
    assert recorded.wait(10)
    deleter = threading.Thread(target=delete_locally)
    deleter.start()
    # The delete is waiting on the record's row lock before the record commits.
    wait_until(
        lambda: _waiting_on_locks() > 0 or deleted.is_set(), timeout=10, message="the delete reached the mapping"
    )
    release.set()
    recorder.join(10)
    deleter.join(10)
    assert deleted.is_set()

    deletes = [
        message.payload
        for message in OutboxMessage.objects.filter(topic="stripe_customer_outward")
        if message.payload.get("kwargs", {}).get("action") == "delete"
    ]
    assert [payload["kwargs"]["external_id"] for payload in deletes] == ["cus_race"], deletes


def _waiting_on_locks() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_each_operation_names_the_fields_it_sent_or_applied(stripe_sandbox):
    """What an item's timeline shows under each operation (`SyncResult.fields`)."""
    customer = CustomerFactory(name="Before", email="fields@example.com", phone="")
    created = customer_push(item_id=customer.pk, action="upsert", event_id=uuid.uuid4().hex)
    assert created.action == "created" and {"name", "email", "phone", "metadata"} <= set(created.fields)
    catalog.customer_update(customer=customer, name="After")
    updated = customer_push(item_id=customer.pk, action="upsert", event_id=uuid.uuid4().hex)
    assert (updated.action, updated.fields) == ("updated", ("name",))
    remote_id = mapping_of(customer).integration_id
    applied = stripe_event_apply(
        event_id=f"evt_{uuid.uuid4().hex}",
        event_type="customer.updated",
        customer={"id": remote_id, "name": "After", "email": "fields@example.com", "phone": "+15555550123"},
        created=next_event_second(),
    )
    assert (applied.action, applied.fields) == ("applied", ("phone",))
