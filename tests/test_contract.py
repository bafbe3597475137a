"""The integration contract: the registry the hub reads, topics and groups per integration and
catalog type, one worker command for all, no vendor outside its package, and moving what an
old topic still holds."""

from __future__ import annotations

import ast
import io
import time
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Customer, Invoice
from sync import kafka as sync_kafka
from sync.integrations import (
    external_url,
    integration_named,
    integrations,
    integrations_for,
    reconcilers,
    sync_topic,
    worker_group,
)
from sync.models import OutboxMessage
from sync.tasks import TaskMessage, dead_letter_topic, retry_topic, task
from sync.worker import Worker

from .helpers import read_topic, run_worker

BASE = Path(__file__).resolve().parent.parent


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_stripe_declares_customers_and_invoices_with_their_own_topics():
    stripe = integration_named("stripe")
    assert [integration.name for integration in integrations_for(Invoice)] == ["stripe", "webhooks"]
    assert {(sync.catalog_type, sync.outward.topic, sync.inward.topic) for sync in stripe.syncs} == {
        ("customer", "stripe_customer_outward", "stripe_customer_inward"),
        ("invoice", "stripe_invoice_outward", "stripe_invoice_inward"),
    }
    assert [task.name for task in stripe.tasks(direction="inward", catalog_types=["invoice"])] == [
        "stripe.apply_invoice_event"
    ]
    assert set(reconcilers()) == {("stripe", "customer"), ("stripe", "invoice")}
    assert sync_topic(integration="acme", catalog_type="invoice", direction="inward") == "acme_invoice_inward"
    assert worker_group(integration="stripe", direction="outward") == "synchub-stripe-outward"
    assert worker_group(integration="stripe", direction="inward", catalog_type="invoice") == "synchub-stripe-invoice-inward"
    with pytest.raises(ValueError):
        sync_topic(integration="acme", catalog_type="invoice", direction="sideways")
    with pytest.raises(LookupError):
        integration_named("salesforce")


def test_the_dashboard_link_follows_the_kind_of_object_and_the_keys_mode(settings):
    from catalog.models import CatalogIntegration

    settings.STRIPE_API_KEY = "sk_test_abc"
    assert external_url(CatalogIntegration(integration_type="stripe", integration_id="cus_1")) == (
        "https://dashboard.stripe.com/test/customers/cus_1"
    )
    settings.STRIPE_API_KEY = "sk_live_abc"
    assert external_url(CatalogIntegration(integration_type="stripe", integration_id="in_9")) == (
        "https://dashboard.stripe.com/invoices/in_9"
    )
    assert external_url(CatalogIntegration(integration_type="stripe", integration_id=None)) is None
    assert external_url(CatalogIntegration(integration_type="unknown", integration_id="x")) is None


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["sync", "catalog", "console", "synchub"])
def test_nothing_outside_the_stripe_package_imports_stripe(package):
    offenders = {
        str(path.relative_to(BASE)): sorted(
            name for name in _imported_modules(path) if name == "stripe" or name.startswith("integrations")
        )
        for path in (BASE / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_sync_and_catalog_name_no_catalog_type_or_vendor_in_their_code():
    """`sync/` holds vendor-neutral decisions; `catalog/` knows no integration."""
    for path in (BASE / "sync").rglob("*.py"):
        imported = _imported_modules(path)
        assert not {name for name in imported if name.startswith("integrations")}, path
    for path in (BASE / "catalog").rglob("*.py"):
        imported = _imported_modules(path)
        assert not {name for name in imported if name.split(".")[0] in ("sync", "integrations", "console")}, path


def test_run_sync_worker_offers_the_registered_integrations_and_directions(capsys):
    with pytest.raises(SystemExit):
        call_command("run_sync_worker", "--help")
    shown = capsys.readouterr().out
    assert "--integration {stripe,webhooks}" in shown and "{outward,inward}" in shown
    with pytest.raises(CommandError):
        call_command("run_sync_worker", integration="stripe", direction="inward", catalog_types=["order"])


@pytest.mark.django_db(transaction=True)
def test_a_retry_of_another_task_on_the_same_topic_does_not_pause_this_workers_own(kafka):
    topic = unique("shared")
    mine: list[int] = []
    own = task(name=unique("own"), topic=topic, key="item_id")(lambda *, item_id: mine.append(item_id))
    other = task(name=unique("other"), topic=topic, key="item_id")(lambda *, item_id: None)
    not_due = TaskMessage(task=other.name, kwargs={"item_id": 1}, attempt=2, not_before=time.time() + 120)
    due = TaskMessage(task=own.name, kwargs={"item_id": 1}, attempt=2, not_before=time.time() - 1)
    # One key, so one partition: the other task's retry (due in two minutes) comes first.
    sync_kafka.ensure_topics([topic, retry_topic(topic), dead_letter_topic(topic)])
    sync_kafka.publish([(retry_topic(topic), "1", not_due.encode()), (retry_topic(topic), "1", due.encode())])
    started = time.monotonic()
    run_worker(Worker(tasks=[own], group_id=unique("g")), max_messages=2, timeout=30)
    assert mine == [1]
    assert time.monotonic() - started < 30


@pytest.mark.django_db(transaction=True)
def test_sync_move_topic_moves_outbox_rows_and_unconsumed_messages_to_each_tasks_topic(kafka):
    old, group = unique("legacy"), unique("old-group")
    moved = task(name=unique("moved"), topic=unique("new_topic"), key="item_id")(lambda *, item_id: None)
    consumed = TaskMessage(task=moved.name, kwargs={"item_id": 0})
    pending = [TaskMessage(task=moved.name, kwargs={"item_id": n}) for n in (1, 2)]
    retrying = TaskMessage(task=moved.name, kwargs={"item_id": 3}, attempt=2, not_before=time.time() + 30)
    sync_kafka.ensure_topics([old, retry_topic(old)])
    sync_kafka.publish([(old, "0", consumed.encode())])
    # The old group had consumed the first message: it must not be moved again.
    consumer = sync_kafka.make_consumer(group_id=group, topics=[old])
    deadline = time.monotonic() + 20
    while not consumer.poll(timeout_ms=500) and time.monotonic() < deadline:
        pass
    consumer.commit()
    consumer.close()
    sync_kafka.publish([(old, str(m.kwargs["item_id"]), m.encode()) for m in pending])
    sync_kafka.publish([(retry_topic(old), "3", retrying.encode())])
    OutboxMessage.objects.append(topic=old, key="4", payload=TaskMessage(task=moved.name, kwargs={"item_id": 4}).__dict__)
    out = io.StringIO()
    call_command("sync_move_topic", topic=old, group=group, idle_seconds=3, stdout=out)
    assert "1 unpublished outbox row(s)" in out.getvalue() and "3 message(s) moved" in out.getvalue()
    assert OutboxMessage.objects.get(key="4", published_at__isnull=True).topic == moved.topic
    arrived = [TaskMessage.decode(record.value) for record in read_topic(moved.topic, expected=2)]
    assert sorted(message.id for message in arrived) == sorted(message.id for message in pending)
    [retried] = [TaskMessage.decode(record.value) for record in read_topic(retry_topic(moved.topic), expected=1)]
    assert (retried.id, retried.attempt, retried.not_before) == (retrying.id, 2, retrying.not_before)


def test_customer_and_invoice_are_the_catalog_types_the_admin_lists():
    from django.contrib import admin

    from catalog.models import CatalogItem

    assert set(admin.site._registry[CatalogItem].get_child_models()) == {Customer, Invoice}
