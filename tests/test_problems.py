"""Issue #16: an item's whole story, the problems pages (dead letters, conflicts) and their API,
the dashboard's activity chart, and who made each change. Views through Django's test client;
the browser and the real processes are in tests/test_browser_story.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from catalog.models import Customer
from catalog.services import customer_update, integration_record_synced
from integrations.stripe import INTEGRATION_TYPE
from integrations.stripe.tasks import push_customer_to_stripe
from sync.activity import sync_activity
from sync.backlog import backlog_sample, backlogs_latest
from sync.conflicts import conflicts_record
from sync.groups import VIEWERS
from sync.merge import Conflict
from sync.models import BacklogSample, DeadLetter, OutboxMessage, SyncConflict, SyncEvent, Tombstone
from sync.timeline import TIMELINE_LIMIT
from sync.tombstones import tombstone_record

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


@pytest.fixture
def viewer(db) -> Client:
    user = get_user_model().objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    user.groups.add(Group.objects.get(name=VIEWERS))
    client = Client()
    client.force_login(user)
    return client


def linked_customer(**fields) -> Customer:
    customer = CustomerFactory(**fields)
    integration_record_synced(
        item_id=customer.pk,
        integration_type=INTEGRATION_TYPE,
        integration_id=f"cus_story{customer.pk}",
        agreed_fields={"name": customer.name},
    )
    return customer


def audit(item_id: int, *, direction: str, action: str, outcome: str = "succeeded", minutes_ago: float = 0, **extra):
    event = SyncEvent.objects.create(
        item_id=item_id,
        direction=direction,
        integration=INTEGRATION_TYPE,
        task=push_customer_to_stripe.name,
        action=action,
        outcome=outcome,
        **extra,
    )
    if minutes_ago:
        SyncEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return event


def outbox_origins() -> list[str]:
    return [row.payload.get("origin", "") for row in OutboxMessage.objects.order_by("id")]


# --- The item page ------------------------------------------------------------------------------


def test_customer_page_tells_its_story_newest_first(staff, settings):
    settings.STRIPE_API_KEY = "sk_test_story"  # test mode: the dashboard's test pages
    customer = linked_customer(name="Ada")
    audit(customer.pk, direction="outward", action="created", fields=["email", "name"], origin="console · staff", minutes_ago=3)
    audit(customer.pk, direction="inward", action="applied", fields=["phone"], origin="", minutes_ago=2,
          external_event_id="evt_1")
    conflicts_record(item_id=customer.pk, integration_type=INTEGRATION_TYPE,
                     conflicts=[Conflict("name", "Ada", "Ada L.")], kept="local")
    audit(customer.pk, direction="outward", action="", outcome="dead_lettered", error="APIError: boom",
          message_id="m-dead")
    DeadLetter.objects.create(message_id="m-dead", task=push_customer_to_stripe.name, topic="t", kwargs={"item_id": customer.pk},
                              attempts=5, error="APIError: boom")

    html = staff.get(f"/customers/{customer.pk}/").content.decode()

    entries = re.findall(r'data-entry="(\w+)"', html)
    assert entries[0] == "operation" and "conflict" in entries and entries[-1] == "operation"
    assert entries.count("operation") == 3
    assert html.index("APIError: boom") < html.index("evt_1") < html.index("console · staff")  # newest first
    assert re.search(r'data-field>phone<', html) and re.search(r'data-field>email<', html)
    assert 'data-sync-action="replay"' in html  # the dead letter can be replayed from here
    assert "Keep this hub" in html and "Ada L." in html  # the open conflict, with its actions
    assert f'href="https://dashboard.stripe.com/test/customers/cus_story{customer.pk}"' in html
    assert 'data-sync-action="resync"' in html


def test_item_page_queries_do_not_grow_with_its_history(staff, django_assert_max_num_queries):
    customer = linked_customer()
    # One entry of each kind first: every query the page can make is made.
    audit(customer.pk, direction="outward", action="created", outcome="dead_lettered", message_id="first")
    conflicts_record(item_id=customer.pk, integration_type=INTEGRATION_TYPE,
                     conflicts=[Conflict("name", "a", "b")], kept="local")
    with django_assert_max_num_queries(40) as few:
        staff.get(f"/customers/{customer.pk}/")
    for index in range(60):
        audit(customer.pk, direction="outward" if index % 2 else "inward", action="updated",
              outcome="dead_lettered" if index % 10 == 0 else "succeeded", message_id=f"m{index}")
        if index % 7 == 0:
            conflicts_record(item_id=customer.pk, integration_type=INTEGRATION_TYPE,
                             conflicts=[Conflict(f"metadata.k{index}", "a", "b")], kept="local")
    tombstone_record(integration_type="webhooks:1", deleted_by="remote", item_id=customer.pk, external_id="x1")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = staff.get(f"/customers/{customer.pk}/")
    assert response.content.decode().count('data-entry="') == 61 + 10 + 1


def test_a_deleted_item_keeps_its_story_and_search_finds_items(staff):
    customer = linked_customer(name="Grace Hopper", email="grace@example.com")
    audit(customer.pk, direction="outward", action="created")
    assert staff.get("/search/?q=cus_story%d" % customer.pk)["Location"] == f"/customers/{customer.pk}/"
    assert staff.get("/search/?q=grace@EXAMPLE")["Location"] == f"/customers/{customer.pk}/"
    assert staff.get(f"/items/{customer.pk}/")["Location"] == f"/customers/{customer.pk}/"
    CustomerFactory(name="Grace Kelly")
    listing = staff.get("/search/?q=grace").content.decode()
    assert listing.count("list-group-item") == 2
    assert "Nothing matches" in staff.get("/search/?q=nobody-here").content.decode()

    pk = customer.pk
    customer.delete()
    page = staff.get(f"/items/{pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and "deleted" in html
    assert 'data-entry="tombstone"' in html and "Deleted locally" in html
    assert staff.get("/items/999999/").status_code == 404


def test_rows_of_every_table_open_the_item_page(staff):
    customer = linked_customer(name="Linked Lou")
    assert f'href="/customers/{customer.pk}/"' in staff.get("/customers/").content.decode()
    assert f'href="/items/{customer.pk}/"' in staff.get("/integrations/").content.decode()
    assert f'href="/customers/{customer.pk}/"' in staff.get("/").content.decode()


# --- Who changed what ---------------------------------------------------------------------------


def test_each_change_records_who_made_it_and_through_which_door(staff, api_client):
    customer = linked_customer(name="Before", email="who@example.com")
    OutboxMessage.objects.all().delete()
    staff.post(f"/customers/{customer.pk}/edit/", {"name": "From console", "email": "who@example.com"})
    api_client.patch(f"/api/customers/{customer.pk}", {"name": "From API"}, format="json")
    customer_update(customer=Customer.objects.get(pk=customer.pk), name="From a shell")
    assert outbox_origins() == ["console · staff", "API · staff", ""]


# --- Conflicts ----------------------------------------------------------------------------------


def conflicted(name_here: str = "Here", name_there: str = "There") -> tuple[Customer, SyncConflict]:
    customer = linked_customer(name=name_here)
    conflicts_record(item_id=customer.pk, integration_type=INTEGRATION_TYPE,
                     conflicts=[Conflict("name", name_here, name_there)], kept="local", remote_event_id="evt_c")
    return customer, SyncConflict.objects.get(catalog_item_id=customer.pk)


def test_resolving_a_conflict_with_the_remote_value_writes_it_and_sends_it(staff):
    customer, conflict = conflicted()
    OutboxMessage.objects.all().delete()
    response = staff.post(f"/problems/conflicts/{conflict.pk}/resolve/", {"keep": "remote"})
    assert response.status_code == 302
    customer.refresh_from_db()
    conflict.refresh_from_db()
    assert customer.name == "There"
    assert (conflict.resolution, conflict.resolved_by) == ("remote", "staff") and conflict.resolved_at
    pushes = [row.payload for row in OutboxMessage.objects.all()]
    assert [push["task"] for push in pushes if push["kwargs"]["item_id"] == customer.pk] == [push_customer_to_stripe.name]
    assert pushes[0]["origin"] == "conflict resolved · staff"
    # Resolved once: a second decision is refused, with a reason.
    again = staff.post(f"/problems/conflicts/{conflict.pk}/resolve/", {"keep": "local"}, follow=True)
    assert "already resolved" in again.content.decode()


def test_keeping_the_local_value_sends_it_again_and_settles_older_conflicts_of_the_field(api_client):
    customer, older = conflicted()
    conflicts_record(item_id=customer.pk, integration_type=INTEGRATION_TYPE,
                     conflicts=[Conflict("name", "Here", "Elsewhere")], kept="local")
    newer = SyncConflict.objects.filter(catalog_item_id=customer.pk).order_by("-id").first()
    OutboxMessage.objects.all().delete()
    response = api_client.post(f"/api/conflicts/{newer.pk}/resolve", {"keep": "local"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["resolution"] == "local"
    assert Customer.objects.get(pk=customer.pk).name == "Here"
    assert OutboxMessage.objects.count() == 1  # unchanged here, but sent: Stripe may hold "There"
    assert SyncConflict.objects.filter(catalog_item_id=customer.pk, resolved_at__isnull=True).count() == 0
    assert older.pk != newer.pk


def test_conflicts_api_filters_and_refuses_bad_requests(api_client, viewer):
    customer, conflict = conflicted()
    other, _ = conflicted("A", "B")
    conflicts_record(item_id=other.pk, integration_type="webhooks:7",
                     conflicts=[Conflict("metadata.plan", "gold", "silver")], kept="local")
    assert api_client.get("/api/conflicts").json()["count"] == 3
    assert api_client.get("/api/conflicts?integration=webhooks:7").json()["results"][0]["field"] == "metadata.plan"
    assert api_client.get(f"/api/conflicts?item={customer.pk}").json()["count"] == 1
    assert api_client.get("/api/conflicts?item_type=invoice").json()["count"] == 0
    assert api_client.get("/api/conflicts?status=nope").status_code == 400
    bad = api_client.post(f"/api/conflicts/{conflict.pk}/resolve", {"keep": "both"}, format="json")
    assert bad.status_code == 400 and "keep" in bad.json()
    assert api_client.post("/api/conflicts/99999999/resolve", {"keep": "local"}, format="json").status_code == 404
    assert api_client.post(f"/api/conflicts/{conflict.pk}/resolve", {"keep": "remote"}, format="json").status_code == 200
    assert api_client.post(f"/api/conflicts/{conflict.pk}/resolve", {"keep": "remote"}, format="json").status_code == 409
    assert api_client.get("/api/conflicts?status=open").json()["count"] == 2
    # Viewers see, never decide.
    assert viewer.get("/problems/conflicts/").status_code == 200
    assert viewer.post(f"/problems/conflicts/{conflict.pk}/resolve/", {"keep": "local"}).status_code == 403
    assert "Keep this hub" not in viewer.get("/problems/conflicts/?status=").content.decode()


def test_conflict_of_a_field_that_cannot_be_written_is_refused_not_a_500(api_client):
    customer = linked_customer()
    conflicts_record(item_id=customer.pk, integration_type=INTEGRATION_TYPE,
                     conflicts=[Conflict("no_such_field", 1, 2)], kept="local")
    conflict = SyncConflict.objects.get(catalog_item_id=customer.pk)
    response = api_client.post(f"/api/conflicts/{conflict.pk}/resolve", {"keep": "remote"}, format="json")
    assert response.status_code == 409 and "no_such_field" in response.json()["detail"]
    assert SyncConflict.objects.get(pk=conflict.pk).resolved_at is None


# --- Dead letters -------------------------------------------------------------------------------


def letters(count: int, *, error: str = "APIError: Stripe 500", task: str | None = None) -> list[DeadLetter]:
    made = []
    for _ in range(count):
        customer = linked_customer()
        made.append(DeadLetter.objects.create(
            message_id=f"dl-{customer.pk}", task=task or push_customer_to_stripe.name, topic="stripe_customer_outward",
            kwargs={"item_id": customer.pk, "action": "upsert", "event_id": "e", "full": False},
            attempts=5, error=error,
        ))
    return made


def test_dead_letters_filter_inspect_and_replay_one_several_or_all_matching(staff):
    timeouts = letters(3, error="APITimeout: read timed out")
    refused = letters(2, error="InvalidRequestError: bad email")
    page = staff.get("/problems/dead-letters/?error=timed+out").content.decode()
    assert page.count("data-dead-letter-id=") == 3
    assert staff.get("/problems/dead-letters/?integration=webhooks").content.decode().count("data-dead-letter-id=") == 0
    detail = staff.get(f"/problems/dead-letters/{refused[0].pk}/").content.decode()
    assert "bad email" in detail and "&quot;action&quot;: &quot;upsert&quot;" in detail

    OutboxMessage.objects.all().delete()
    staff.post("/problems/dead-letters/replay/", {"ids": [refused[0].pk]})
    assert DeadLetter.objects.filter(replayed_at__isnull=False).count() == 1
    staff.post("/problems/dead-letters/replay/", {"all": "1", "error": "timed out", "status": "pending"})
    assert set(DeadLetter.objects.filter(replayed_at__isnull=False).values_list("pk", flat=True)) == {
        refused[0].pk, *(letter.pk for letter in timeouts)
    }
    assert OutboxMessage.objects.count() == 4
    assert set(outbox_origins()) == {"replay · staff"}
    assert staff.get("/problems/dead-letters/").content.decode().count("data-dead-letter-id=") == 1


def test_dead_letters_api_lists_and_replays(api_client, viewer):
    made = letters(3)
    assert api_client.get("/api/dead-letters?status=pending").json()["count"] == 3
    assert api_client.get(f"/api/dead-letters?item={made[0].kwargs['item_id']}").json()["count"] == 1
    assert api_client.get(f"/api/dead-letters/{made[0].pk}").json()["error"] == "APIError: Stripe 500"
    assert api_client.post(f"/api/dead-letters/{made[0].pk}/replay").json() == {"replayed": 1}
    assert api_client.post(f"/api/dead-letters/{made[0].pk}/replay").json() == {"replayed": 0}
    assert api_client.post("/api/dead-letters/replay", {}, format="json").status_code == 400
    assert api_client.post("/api/dead-letters/replay", {"all": True, "error": "500"}, format="json").json() == {"replayed": 2}
    assert api_client.post("/api/dead-letters/999999/replay").status_code == 404
    assert viewer.post("/problems/dead-letters/replay/", {"all": "1"}).status_code == 403


# --- Dashboard: problems and activity -----------------------------------------------------------


def test_dashboard_problem_counts_match_the_api_and_link_to_the_pages(staff, api_client):
    letters(2)
    conflicted()
    html = staff.get("/").content.decode()
    stats = staff.get("/console/stats.json").json()
    api_letters = api_client.get("/api/dead-letters?status=pending").json()["count"]
    api_conflicts = api_client.get("/api/conflicts?status=open").json()["count"]
    assert stats["problems"] == {"dead_letters": api_letters, "conflicts": api_conflicts} == {"dead_letters": 2, "conflicts": 1}
    assert re.search(r'href="/problems/dead-letters/" data-problem="dead_letters">.*?data-stat="dead_letters">2<', html, re.S)
    assert re.search(r'href="/problems/conflicts/" data-problem="conflicts">.*?data-stat="conflicts">1<', html, re.S)


def test_activity_counts_changes_in_and_out_and_failures_per_minute(staff):
    customer = linked_customer()
    for minutes_ago, direction, outcome in [
        (0, "outward", "succeeded"), (0, "outward", "succeeded"), (0, "inward", "succeeded"),
        (5, "outward", "retrying"), (5, "inward", "dead_lettered"), (30, "inward", "succeeded"),
        (90, "outward", "succeeded"),  # outside the hour
    ]:
        audit(customer.pk, direction=direction, action="x", outcome=outcome, minutes_ago=minutes_ago)
    activity = sync_activity()
    assert len(activity.minutes) == 60
    assert (activity.minutes[-1].outward, activity.minutes[-1].inward) == (2, 1)
    assert activity.minutes[-6].failures == 2
    assert activity.totals == {"outward": 2, "inward": 2, "failures": 2}
    stats = staff.get("/console/stats.json").json()
    assert 'data-activity-total="outward">2<' in stats["activity_html"]
    assert 'data-activity-total="failures">2<' in stats["activity_html"]


def test_backlog_samples_record_the_outbox_even_without_a_broker(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"  # nothing listens: lag is unknown, not fatal
    settings.KAFKA_REQUEST_TIMEOUT_MS = 1000
    OutboxMessage.objects.append(topic="t", key="k", payload={"task": "x"})
    samples = backlog_sample()
    assert [(sample.source, sample.size) for sample in samples] == [(BacklogSample.OUTBOX, OutboxMessage.objects.filter(published_at__isnull=True).count())]
    sampled_at, rows = backlogs_latest()
    assert sampled_at == samples[0].measured_at and rows[0].source == BacklogSample.OUTBOX


def test_tombstone_rows_read_well(staff):
    customer = linked_customer()
    Tombstone.objects.create(integration_type=INTEGRATION_TYPE, item_id=customer.pk, external_id="cus_gone",
                             deleted_by="remote")
    html = staff.get(f"/customers/{customer.pk}/").content.decode()
    assert "Deleted in the external system" in html and "cus_gone" in html


def test_an_event_that_failed_before_naming_its_item_shows_on_the_item_page(staff):
    customer = linked_customer()
    SyncEvent.objects.create(
        item_id=None, direction="inward", integration=INTEGRATION_TYPE, task="stripe.apply_event", action="customer.updated",
        outcome="dead_lettered", error="OperationalError: database is locked", external_id=f"cus_story{customer.pk}",
    )
    SyncEvent.objects.create(
        item_id=None, direction="inward", integration=INTEGRATION_TYPE, task="stripe.apply_event", action="customer.updated",
        outcome="dead_lettered", error="about someone else", external_id="cus_other",
    )
    html = staff.get(f"/customers/{customer.pk}/").content.decode()
    assert "database is locked" in html and "about someone else" not in html


def test_an_open_conflict_older_than_the_timeline_still_offers_its_resolution(staff):
    customer, conflict = conflicted()
    for index in range(TIMELINE_LIMIT + 5):
        audit(customer.pk, direction="outward", action="updated", message_id=f"later-{index}")
    html = staff.get(f"/customers/{customer.pk}/").content.decode()
    assert 'data-entry="conflict"' not in html  # out of the timeline's window
    assert f'data-conflict-id="{conflict.pk}"' in html and "Keep this hub" in html
