"""Issue #16 in a real browser against a whole hub (gunicorn, relay, workers, Tansu, localstripe,
a Stripe fault proxy): an item's story told by its page, a conflict resolved from the problems
page and watched reaching Stripe, a dead letter replayed and watched succeeding, and the
dashboard's problem counts against the API's.

The faults are real: the proxy between the hub and localstripe answers 500 to every call while
a test wants pushes to fail, and changes "made in Stripe" go straight to localstripe, which
sends the hub its signed webhooks. The fixtures (browser, staff session, console-error watch)
are test_browser.py's; each test fails on any browser console error or CSP breach.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS
from .faults import FAULTS
from .helpers import wait_until
from .hub import Hub, running_hub
from .test_browser import (  # noqa: F401 - fixtures, used by name
    SYNC_TIMEOUT,
    USERNAME,  # Hub.setup()'s staff user, whom the console names as the author of changes
    browser,
    console_errors,
    create_customer,
    customer_row,
    mark_document,
    page,
    same_document,
    screenshot,
    staff_session,
    stripe_mapping,
    wait_synced,
)

pytestmark = [pytest.mark.e2e]

# A push fails for good after this many attempts (each answered 500 at once by the proxy: the
# Stripe client makes no retries of its own here), so a dead letter takes about a second.
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[Hub]:
    artifacts = ARTIFACTS / "browser-story"
    artifacts.mkdir(parents=True, exist_ok=True)
    extra_env = {
        "SYNC_TASK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "SYNC_RETRY_BACKOFF_MAX_SECONDS": "1",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    with running_hub(
        tmp_path_factory.mktemp("browser-story-hub"), artifacts=artifacts, stripe_proxy=True, extra_env=extra_env
    ) as hub:
        yield hub


# --- Helpers ---------------------------------------------------------------------------------------


def token() -> str:
    return uuid.uuid4().hex[:8]


def stripe_news_heard(hub: Hub) -> None:
    """Until the hub has handled every event Stripe sent it (each webhook goes out about a second
    after its change)."""

    def heard() -> bool:
        sent = [event.id for event in hub.stripe.v1.events.list(params={"limit": 100}).auto_paging_iter()]
        placeholders = ",".join(["%s"] * len(sent))
        return not sent or hub.db.scalar(
            f"SELECT COUNT(*) FROM sync_inboxevent WHERE event_id IN ({placeholders})", tuple(sent)
        ) == len(sent)

    wait_until(heard, timeout=SYNC_TIMEOUT, interval=0.3, message="every Stripe webhook handled")


@contextmanager
def stripe_failing(hub: Hub) -> Iterator[None]:
    """Within the block, every call of the hub to Stripe is answered 500 and none is applied.

    Once the hub heard all Stripe had to say: the echo of its own last write, of the same whole
    second as that write, may predate it, so the hub reads the customer back from Stripe, which
    would fail here until that webhook is dead-lettered (an incidental dead letter)."""
    stripe_news_heard(hub)
    proxy = hub.stripe_proxy
    proxy.faults, proxy.fault_rate = ("500",), 1.0
    try:
        yield
    finally:
        proxy.fault_rate, proxy.faults = 0.0, FAULTS


def edit_in_stripe(hub: Hub, mapping: dict, params: dict) -> None:
    """Change the customer in Stripe directly (localstripe then sends the hub its webhook).

    Stripe's event times are whole seconds: an event of the same second as the hub's last write
    there may predate that write, so the hub reads the customer back from Stripe instead, which
    fails while `stripe_failing`. Changed from the next second on, the webhook is applied as sent.
    """
    last_write = datetime.fromisoformat(mapping["last_synced_at"]).timestamp()
    wait_until(lambda: time.time() >= math.floor(last_write) + 1.05, timeout=5, interval=0.02, message="next second")
    hub.stripe.v1.customers.update(mapping["external_id"], params=params)


def pending_letters(hub: Hub, customer_id: int) -> list[dict]:
    return hub.api("GET", f"/api/dead-letters?status=pending&item={customer_id}").json()["results"]


def open_conflicts(hub: Hub, customer_id: int) -> list[dict]:
    return hub.api("GET", f"/api/conflicts?status=open&item={customer_id}").json()["results"]


def api_problems(hub: Hub) -> dict[str, int]:
    return {
        "dead_letters": hub.api("GET", "/api/dead-letters?status=pending&page_size=1").json()["count"],
        "conflicts": hub.api("GET", "/api/conflicts?status=open&page_size=1").json()["count"],
    }


def dashboard_problems(page: Page) -> dict[str, int]:
    return {key: int(page.locator(f"[data-stat={key}]").inner_text()) for key in ("dead_letters", "conflicts")}


def stripe_name(hub: Hub, remote_id: str) -> str:
    return hub.stripe.v1.customers.retrieve(remote_id).name


def stripe_catches_up(hub: Hub, customer_id: int, remote_id: str, name: str) -> None:
    """Once Stripe answers again: until Stripe holds `name` and the mapping is synced, replaying
    whatever push of the customer gave up meanwhile (the hub does not retry a dead letter)."""

    def caught_up() -> bool:
        for letter in pending_letters(hub, customer_id):
            assert hub.api("POST", f"/api/dead-letters/{letter['id']}/replay").status_code == 200
        synced = stripe_mapping(hub, customer_id)["status"] == "synced"
        return synced and stripe_name(hub, remote_id) == name and not pending_letters(hub, customer_id)

    wait_until(caught_up, timeout=SYNC_TIMEOUT, interval=0.3, message=f"Stripe holds {name!r}")


def make_conflict(hub: Hub, customer_id: int, mapping: dict, *, edit_here: Callable[[], None], name_there: str) -> dict:
    """A real conflict on `name`: edited here (`edit_here`) while Stripe fails every call, so the
    push keeps failing, and meanwhile in Stripe, whose webhook brings the other name. The hub
    keeps its own; once Stripe answers again, Stripe gets it too. Returns the open conflict."""
    with stripe_failing(hub):
        edit_here()
        edit_in_stripe(hub, mapping, {"name": name_there})
        conflicts = wait_until(lambda: open_conflicts(hub, customer_id), timeout=SYNC_TIMEOUT, message="conflict")
    [conflict] = conflicts
    assert (conflict["field"], conflict["remote_value"], conflict["kept"]) == ("name", name_there, "local"), conflict
    stripe_catches_up(hub, customer_id, mapping["external_id"], conflict["local_value"])
    return conflict


def edit_name_in_console(page: Page, customer_id: int, name: str) -> None:
    """From the customer's page: Edit, a new name, Save, back on the page."""
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))
    expect(page.locator("h1")).to_have_text(name)
    expect(page.get_by_role("status").filter(has_text=name)).to_contain_text("saved; syncing")


# Each timeline entry as data, newest first.
READ_TIMELINE = """items => items.map((li) => ({
  entry: li.dataset.entry,
  direction: li.querySelector("[data-direction]")?.dataset.direction ?? "",
  action: li.querySelector("[data-action]")?.textContent.trim() ?? "",
  outcome: li.querySelector("[data-outcome]")?.dataset.outcome ?? "",
  fields: Array.from(li.querySelectorAll("code[data-field]"), (code) => code.textContent.trim()),
  origin: li.querySelector("[data-origin]")?.textContent.trim() ?? "",
  replay: li.querySelectorAll("[data-sync-action=replay]").length,
  text: li.innerText,
}))"""


def timeline(page: Page) -> list[dict]:
    return page.locator("ol[data-timeline] > li[data-entry]").evaluate_all(READ_TIMELINE)


def first(entries: list[dict], **wanted) -> tuple[int, dict] | None:
    """The newest entry (index, entry) with the `wanted` values; `field` is one of its fields,
    `origin` a part of its origin."""

    def matches(entry: dict, key: str, value: str) -> bool:
        if key == "field":
            return value in entry["fields"]
        if key == "origin":
            return value in entry["origin"]
        return entry[key] == value

    for index, entry in enumerate(entries):
        if all(matches(entry, key, value) for key, value in wanted.items()):
            return index, entry
    return None


def reload_until(page: Page, condition: Callable[[], object], message: str) -> object:
    """Reload the page until `condition` holds (the item page does not refresh itself)."""

    def check() -> object:
        page.reload()
        return condition()

    return wait_until(check, timeout=SYNC_TIMEOUT, interval=0.3, message=message)


def stripe_badge(page: Page):
    return page.locator("tr[data-mapping=stripe] [data-sync-badge]")


# --- Scenarios -------------------------------------------------------------------------------------


def test_the_item_page_tells_a_change_made_here_and_one_made_in_stripe(page, hub):
    run = token()
    email, name, renamed, phone = f"story-{run}@example.com", f"Ada {run}", f"Ada Lovelace {run}", "+442079460018"
    customer_id = create_customer(hub, name, email)
    created = wait_synced(hub, customer_id)
    remote_id = created["external_id"]

    # From the customers table to the customer's page, then a rename in the console.
    page.goto(f"/customers/?q={email}")
    customer_row(page, email).get_by_role("link", name=name, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))
    expect(page.locator("h1")).to_have_text(name)
    edit_name_in_console(page, customer_id, renamed)
    wait_synced(hub, customer_id, after=created["last_synced_at"])
    wait_until(lambda: stripe_name(hub, remote_id) == renamed, timeout=SYNC_TIMEOUT, message="renamed in Stripe")

    # Then a change in Stripe: its signed webhook brings the phone here.
    hub.stripe.v1.customers.update(remote_id, params={"phone": phone})
    reload_until(page, lambda: first(timeline(page), direction="inward", field="phone"), "the phone came in")
    expect(page.locator("dd[data-field=phone]")).to_have_text(phone)
    expect(page.locator("dd[data-field=name]")).to_have_text(renamed)

    entries = timeline(page)
    inward_at, inward = first(entries, direction="inward", field="phone")
    outward_at, outward = first(entries, direction="outward", field="name")
    assert inward_at < outward_at, "newest first"
    assert (outward["action"], outward["outcome"], outward["fields"]) == ("updated", "succeeded", ["name"])
    assert outward["origin"] == f"console · {USERNAME}"
    assert (inward["action"], inward["outcome"], inward["fields"]) == ("applied", "succeeded", ["phone"])
    assert remote_id in inward["text"] and "From Stripe" in inward["text"]
    # The oldest: the create that linked it, by the API.
    assert entries[-1]["direction"] == "outward" and entries[-1]["action"] == "created"
    assert entries[-1]["origin"] == f"API · {USERNAME}"

    expect(stripe_badge(page)).to_have_text("Synced")
    link = page.locator("tr[data-mapping=stripe] a[data-external-link]")
    expect(link).to_have_text(remote_id)
    expect(link).to_have_attribute("href", f"https://dashboard.stripe.com/test/customers/{remote_id}")
    expect(page.get_by_role("button", name="Resync now")).to_be_visible()

    # The same page from anywhere: the navbar search by Stripe id, and /items/<id>/.
    page.goto("/integrations/")
    search = page.get_by_label("Find an item")
    search.fill(remote_id)
    search.press("Enter")
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))
    page.goto(f"/items/{customer_id}/")
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))


def test_a_conflict_resolved_with_stripes_value_reaches_stripe(page, hub):
    run = token()
    email = f"conflict-{run}@example.com"
    name_here, name_there = f"Grace Here {run}", f"Grace There {run}"
    customer_id = create_customer(hub, f"Grace {run}", email)
    mapping = wait_synced(hub, customer_id)
    remote_id = mapping["external_id"]

    page.goto("/")
    search = page.get_by_label("Find an item")
    search.fill(email)
    search.press("Enter")
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))

    conflict = make_conflict(
        hub,
        customer_id,
        mapping,
        edit_here=lambda: edit_name_in_console(page, customer_id, name_here),
        name_there=name_there,
    )
    assert conflict["local_value"] == name_here
    assert stripe_name(hub, remote_id) == name_here  # the hub's kept value was sent

    # The item page shows it open, with its values.
    page.reload()
    story_conflict = page.locator("li[data-entry=conflict]")
    expect(story_conflict).to_contain_text("open")
    expect(story_conflict.locator("[data-remote-value]")).to_have_text(name_there)
    expect(page.get_by_role("heading", name=re.compile("Open conflicts"))).to_be_visible()

    # Resolved on the problems page: take Stripe's.
    page.goto("/problems/conflicts/")
    row = page.locator(f"tr[data-conflict-id='{conflict['id']}']")
    expect(row.locator("[data-local-value]")).to_have_text(name_here)
    expect(row.locator("[data-remote-value]")).to_have_text(name_there)
    expect(row.get_by_role("link", name=name_here)).to_have_attribute("href", f"/items/{customer_id}/")
    screenshot(page, "conflicts")
    take_stripes = row.locator("button[data-keep=remote]")
    expect(take_stripes).to_have_text("Take Stripe's")
    take_stripes.click()
    expect(page.get_by_role("status").filter(has_text="name: kept")).to_contain_text("the other system's value")
    expect(row).to_have_count(0)  # no longer open

    wait_until(lambda: stripe_name(hub, remote_id) == name_there, timeout=SYNC_TIMEOUT, message="Stripe's value back")
    [resolved] = hub.api("GET", f"/api/conflicts?item={customer_id}").json()["results"]
    assert resolved["resolved_at"] and (resolved["resolution"], resolved["resolved_by"]) == ("remote", USERNAME)
    page.goto("/problems/conflicts/?status=resolved")
    expect(row.locator("[data-resolution=remote]")).to_contain_text(USERNAME)

    # The item page: Stripe's name, the conflict resolved, and the push the resolution made.
    page.goto(f"/customers/{customer_id}/")
    expect(page.locator("h1")).to_have_text(name_there)
    reload_until(
        page,
        lambda: first(timeline(page), direction="outward", outcome="succeeded", origin="conflict resolved")
        and stripe_badge(page).inner_text() == "Synced",
        "the resolution sent",
    )
    expect(page.locator("li[data-entry=conflict]")).to_contain_text(f"resolved: kept remote by {USERNAME}")
    expect(page.get_by_role("heading", name=re.compile("Open conflicts"))).to_have_count(0)
    _, push = first(timeline(page), direction="outward", outcome="succeeded", origin="conflict resolved")
    assert push["origin"] == f"conflict resolved · {USERNAME}" and push["fields"] == ["name"]


def test_a_dead_letter_replayed_from_the_problems_page_succeeds(page, hub):
    run = token()
    email, renamed = f"dead-{run}@example.com", f"Alan Renamed {run}"
    customer_id = create_customer(hub, f"Alan {run}", email)
    mapping = wait_synced(hub, customer_id)
    remote_id = mapping["external_id"]

    # Reached from its row on the integrations page (the latest updated first); renamed while
    # Stripe fails every call.
    page.goto("/integrations/?type=stripe")
    page.locator(f"tr[data-item-id='{customer_id}']").get_by_role("link", name=f"Alan {run}", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}/$"))
    with stripe_failing(hub):
        edit_name_in_console(page, customer_id, renamed)
        [letter] = wait_until(lambda: pending_letters(hub, customer_id), timeout=SYNC_TIMEOUT, message="dead-lettered")
        wait_until(lambda: stripe_mapping(hub, customer_id)["status"] == "failed", timeout=SYNC_TIMEOUT, message="fail")
    assert letter["attempts"] == MAX_ATTEMPTS and "Injected failure" in letter["error"], letter
    assert stripe_name(hub, remote_id) == f"Alan {run}"

    # The item page: failed, each attempt on the timeline, the last one with its dead letter.
    page.reload()
    expect(stripe_badge(page)).to_have_text("Failed")
    attempts = [e for e in timeline(page) if e["direction"] == "outward" and e["outcome"] != "succeeded"]
    assert [e["outcome"] for e in attempts] == ["dead_lettered"] + ["retrying"] * (MAX_ATTEMPTS - 1)
    assert attempts[0]["replay"] == 1 and f"Dead letter #{letter['id']}" in attempts[0]["text"]

    # Replayed from the dead letters page.
    page.goto("/problems/dead-letters/")
    row = page.locator(f"tr[data-dead-letter-id='{letter['id']}']")
    expect(row).to_contain_text(f"#{customer_id}")
    expect(row).to_contain_text("Injected failure")
    expect(row).to_contain_text("pending")
    screenshot(page, "dead-letters")
    row.get_by_role("checkbox").check()
    page.locator("button[data-action=replay-selected]").click()
    status = page.get_by_role("status").filter(has_text="replayed")
    expect(status).to_contain_text("1 dead letter replayed: queued again.")
    expect(row).to_have_count(0)  # the list shows pending letters

    wait_synced(hub, customer_id, after=mapping["last_synced_at"])
    wait_until(lambda: stripe_name(hub, remote_id) == renamed, timeout=SYNC_TIMEOUT, message="renamed in Stripe")
    assert hub.api("GET", f"/api/dead-letters/{letter['id']}").json()["replayed_at"]
    page.goto(f"/problems/dead-letters/{letter['id']}/")
    expect(page.locator("h1")).to_contain_text("replayed")
    expect(page.locator("button[data-action=replay]")).to_have_count(0)
    page.goto("/problems/dead-letters/?status=replayed")
    expect(row).to_contain_text("replayed")
    expect(row.get_by_role("checkbox")).to_have_count(0)

    # The item page: synced again, by the replay; the dead letter says it was replayed.
    page.goto(f"/customers/{customer_id}/")
    reload_until(page, lambda: stripe_badge(page).inner_text() == "Synced", "synced on the page")
    stripe_news_heard(hub)  # the echoes of its pushes too, for a steady screenshot
    page.reload()
    entries = timeline(page)
    _, replayed = first(entries, direction="outward", outcome="succeeded", field="name")
    assert replayed["origin"] == f"replay · {USERNAME}" and replayed["action"] == "updated"
    _, dead = first(entries, outcome="dead_lettered")
    assert dead["replay"] == 0 and "replayed" in dead["text"]
    screenshot(page, "item-page")


def test_dashboard_problem_counts_match_the_api_and_follow_changes(page, hub):
    run = token()
    # An open conflict (settled otherwise: Stripe holds the hub's value) ...
    conflicted_id = create_customer(hub, f"Barbara {run}", f"counts-conflict-{run}@example.com")
    conflicted = wait_synced(hub, conflicted_id)
    make_conflict(
        hub,
        conflicted_id,
        conflicted,
        edit_here=lambda: hub.api("PATCH", f"/api/customers/{conflicted_id}", {"name": f"Barbara Here {run}"}),
        name_there=f"Barbara There {run}",
    )
    # ... and a dead letter.
    dead_id = create_customer(hub, f"Edsger {run}", f"counts-dead-{run}@example.com")
    wait_synced(hub, dead_id)
    with stripe_failing(hub):
        hub.api("PATCH", f"/api/customers/{dead_id}", {"name": f"Edsger Renamed {run}"})
        [letter] = wait_until(lambda: pending_letters(hub, dead_id), timeout=SYNC_TIMEOUT, message="dead-lettered")
        wait_until(lambda: stripe_mapping(hub, dead_id)["status"] == "failed", timeout=SYNC_TIMEOUT, message="failed")

    page.goto("/")
    # Nothing is under way any more; the page's own refresh (every 3 s) is polled, not reloaded.
    before = wait_until(
        lambda: dashboard_problems(page) == (counts := api_problems(hub)) and counts,
        timeout=SYNC_TIMEOUT,
        message="the dashboard's counts are the API's",
    )
    assert before["dead_letters"] >= 1 and before["conflicts"] >= 1
    for key, path in (("dead_letters", "/problems/dead-letters/"), ("conflicts", "/problems/conflicts/")):
        expect(page.locator(f"a[data-problem={key}]")).to_have_attribute("href", path)
    # Traffic of the hour on the chart: lines in and out, and the failures just made.
    activity = page.locator("[data-activity]")
    for series in ("outward", "inward", "failures", "waiting"):
        expect(activity.locator(f"polyline[data-series={series}]")).to_have_count(1)
    totals = {
        key: int(activity.locator(f"[data-activity-total={key}]").inner_text())
        for key in ("outward", "inward", "failures")
    }
    assert all(totals.values()), totals
    expect(activity.locator("[data-backlogs]")).to_be_visible()
    screenshot(page, "dashboard-activity")

    # Fixed: the letter replayed, the conflict settled (the hub's value kept). The page follows
    # without a reload: the counts, and the chart's outward total once the replay's push is sent.
    mark_document(page)
    assert hub.api("POST", f"/api/dead-letters/{letter['id']}/replay").status_code == 200
    [conflict] = open_conflicts(hub, conflicted_id)
    assert hub.api("POST", f"/api/conflicts/{conflict['id']}/resolve", {"keep": "local"}).status_code == 200
    expected = {"dead_letters": before["dead_letters"] - 1, "conflicts": before["conflicts"] - 1}
    assert api_problems(hub) == expected
    expect(page.locator("[data-stat=dead_letters]")).to_have_text(str(expected["dead_letters"]))
    expect(page.locator("[data-stat=conflicts]")).to_have_text(str(expected["conflicts"]))
    wait_synced(hub, dead_id)
    wait_until(
        lambda: int(activity.locator("[data-activity-total=outward]").inner_text()) > totals["outward"],
        timeout=SYNC_TIMEOUT,
        message="the chart counted the replay's push",
    )
    assert same_document(page)
    assert dashboard_problems(page) == api_problems(hub)
