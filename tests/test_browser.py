"""The staff console in a real browser (Debian's chromium, driven by Playwright) against a whole
hub: gunicorn, relay and workers from the Procfile, with their own Tansu, localstripe and database.

Each page is checked as staff meet it (login, modals, live badges, the admin action) and saved
as a screenshot under test-artifacts/screenshots/. Any browser console error, and any breach of
the Content-Security-Policy (README "Safe defaults"), fails the test.
"""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect, sync_playwright

from .conftest import ARTIFACTS
from .helpers import wait_until
from .hub import Hub, running_hub

pytestmark = [pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"  # Debian's; `make test` installs it. Playwright never downloads one here.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
USERNAME, PASSWORD = "e2e", "e2e-password-123"  # created by Hub.setup()
SYNC_TIMEOUT_MS = 60_000
SYNC_TIMEOUT = SYNC_TIMEOUT_MS / 1000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[Hub]:
    artifacts = ARTIFACTS / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)
    with running_hub(tmp_path_factory.mktemp("browser-hub"), artifacts=artifacts) as hub:
        yield hub


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(page: Page) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture(scope="module")
def staff_session(hub: Hub, browser: Browser) -> dict:
    """One login through the login page; the tests reuse its session cookie."""
    context = browser.new_context(base_url=hub.base_url)
    page = context.new_page()
    page.goto("/")
    log_in(page)
    expect(page.get_by_role("heading", name="Sync dashboard")).to_be_visible()
    state = context.storage_state()
    context.close()
    return state


# Reports each `securitypolicyviolation` event of a document to the test (the browser also logs
# each violation to the console; the event says which directive, what was blocked, and where).
# Playwright adds it through the DevTools protocol, which the page's policy does not restrict.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => window.reportCspViolation({
  directive: event.effectiveDirective, blocked: event.blockedURI, source: event.sourceFile,
  line: event.lineNumber, sample: event.sample, page: document.location.href,
}));
"""


class ConsoleErrors(list):
    """Error messages the page logged (console.error, failed loads) or threw; and, apart, every
    Content-Security-Policy violation (`csp_violations`)."""

    def __init__(self) -> None:
        super().__init__()
        self.csp_violations: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.append(f"uncaught: {error}"))

    def watch_csp(self, context: BrowserContext) -> None:
        context.expose_binding("reportCspViolation", self._on_csp_violation)
        context.add_init_script(REPORT_CSP_VIOLATIONS)

    def _on_csp_violation(self, source: dict, event: dict) -> None:
        where = f"{event['source'] or event['page']}:{event['line']}"
        self.csp_violations.append(f"{event['directive']} blocked {event['blocked']} in {where} {event['sample']!r}")

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            entry = f"{message.text} ({message.location.get('url', '')})"
            (self.csp_violations if "Content Security Policy" in message.text else self).append(entry)

    def assert_none(self) -> None:
        assert self.csp_violations == [], "the Content-Security-Policy blocked something"
        assert self == [], "the browser logged errors"


def open_page(browser: Browser, hub: Hub, staff_session: dict | None, errors: ConsoleErrors, **options) -> Page:
    # Bootstrap ignores a modal's Cancel clicked while the modal still fades in; a loaded machine
    # lets Playwright click in that window. Reduced motion (which Bootstrap honours) closes it.
    options.setdefault("reduced_motion", "reduce")
    context = browser.new_context(base_url=hub.base_url, storage_state=staff_session, **options)
    context.set_default_timeout(15_000)
    errors.watch_csp(context)
    page = context.new_page()
    errors.watch(page)
    return page


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(hub: Hub, browser: Browser, staff_session: dict, console_errors: ConsoleErrors) -> Iterator[Page]:
    page = open_page(browser, hub, staff_session, console_errors, viewport=DESKTOP)
    yield page
    page.context.close()
    console_errors.assert_none()


def screenshot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_customer(hub: Hub, name: str, email: str) -> int:
    response = hub.api("POST", "/api/customers", {"name": name, "email": email})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stripe_mapping(hub: Hub, customer_id: int) -> dict | None:
    mappings = [m for m in hub.integration_status(customer_id)["integrations"] if m["type"] == "stripe"]
    return mappings[0] if mappings else None


def wait_synced(hub: Hub, customer_id: int, *, after: str | None = None) -> dict:
    """The Stripe mapping once synced (and, with `after`, synced again since that time)."""

    def synced() -> dict | None:
        mapping = stripe_mapping(hub, customer_id)
        if (
            mapping
            and mapping["status"] == "synced"
            and (after is None or datetime.fromisoformat(mapping["last_synced_at"]) > datetime.fromisoformat(after))
        ):
            return mapping
        return None

    return wait_until(synced, timeout=SYNC_TIMEOUT, message=f"customer {customer_id} synced")


def fail_mapping(hub: Hub, customer_id: int, error: str) -> None:
    """Mark the Stripe mapping failed, as a dead-lettered push leaves it."""
    hub.db.scalar(
        "UPDATE catalog_catalogintegration SET status = 'failed', last_error = %s"
        " WHERE catalog_item_id = %s AND integration_type = 'stripe' RETURNING id",
        (error, customer_id),
    )


def customer_row(page: Page, text: str):
    return page.locator("tr[data-customer-id]").filter(has_text=text)


def mark_document(page: Page) -> None:
    """Tag the loaded document: the tag survives updates in place, not a reload."""
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


# --- Scenarios ------------------------------------------------------------------------------------


def test_staff_log_in_and_out(hub, browser, console_errors):
    page = open_page(browser, hub, None, console_errors, viewport=DESKTOP)
    page.goto("/customers/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/customers/$"))
    expect(page.get_by_role("heading", name="Staff login")).to_be_visible()
    screenshot(page, "login")

    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password for a staff account")

    log_in(page)
    expect(page).to_have_url(re.compile(r"/customers/$"))
    expect(page.get_by_role("heading", name="Customers")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.context.close()
    console_errors.assert_none()


def test_a_customer_added_in_the_modal_turns_synced(page, hub):
    email = f"{unique('modal')}@example.com"
    page.goto("/customers/")
    page.get_by_role("link", name="Add customer").click()
    modal = page.get_by_role("dialog", name="Add customer")
    expect(modal).to_be_visible()
    expect(modal.get_by_label("Name")).to_be_focused()
    modal.get_by_label("Name").fill("Ada Lovelace")
    modal.get_by_label("Email").fill(email)

    # Hold the push to Stripe, so that the badge is seen to change in place.
    assert hub.kill("stripe_worker", signal.SIGTERM) == 0
    try:
        modal.get_by_role("button", name="Save").click()
        # The page reloads once, with the new row first and the server's message.
        row = customer_row(page, email)
        expect(row.locator("[data-sync-badge]")).to_have_text("Pending")
        expect(page.get_by_role("status").filter(has_text="Ada Lovelace")).to_contain_text("created")
        mark_document(page)
    finally:
        hub.start("stripe_worker")
    expect(row.locator("[data-sync-badge]")).to_have_text("Synced", timeout=SYNC_TIMEOUT_MS)
    assert same_document(page)

    [customer] = hub.customers_with_email(email)
    mapping = stripe_mapping(hub, customer["id"])
    assert mapping["status"] == "synced" and mapping["external_id"].startswith("cus_")
    assert len(hub.stripe_customers_with_email(email)) == 1


def test_an_invalid_email_is_reported_beside_the_field(page, hub):
    page.goto("/customers/")
    page.get_by_role("link", name="Add customer").click()
    modal = page.get_by_role("dialog", name="Add customer")
    modal.get_by_label("Name").fill("Not Saved")
    modal.get_by_label("Email").fill("not-an-email")
    modal.get_by_role("button", name="Save").click()

    email = modal.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    error = modal.locator("#id_email-error")
    expect(error).to_have_text("Enter a valid email address.")
    expect(email).to_have_attribute("aria-describedby", "id_email-error")
    # Beside the field: right under it, left-aligned with it.
    field_box, error_box = email.bounding_box(), error.bounding_box()
    assert 0 <= error_box["y"] - (field_box["y"] + field_box["height"]) < 12
    assert abs(error_box["x"] - field_box["x"]) < 2
    expect(modal.get_by_label("Name")).not_to_have_attribute("aria-invalid", "true")
    screenshot(page, "customer-modal-error")

    # The hub's own metadata key, too; then Escape closes the modal and nothing was saved.
    modal.get_by_label("Email").fill("fine@example.com")
    modal.get_by_label("Metadata").fill("local_id=1")
    modal.get_by_role("button", name="Save").click()
    expect(modal.locator("#id_metadata-error")).to_contain_text("reserved for the hub")
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    assert hub.api("GET", "/api/customers?search=Not%20Saved").json()["count"] == 0
    assert hub.customers_with_email("fine@example.com") == []


def test_search_and_sort(page, hub):
    token = unique("sort")
    for name in ["Bravo", "Charlie", "Alpha"]:
        create_customer(hub, f"{name} {token}", f"{name.lower()}.{token}@example.com")
    create_customer(hub, "Someone Else", f"{unique('other')}@example.com")

    page.goto("/customers/")
    search = page.get_by_label("Search", exact=True)
    search.fill(token)
    search.press("Enter")
    names = page.locator("tr[data-customer-id] td[data-col=name] .fw-semibold")
    # Only the matches, most recently updated first (created Bravo, Charlie, then Alpha).
    expect(names).to_have_text([f"Alpha {token}", f"Charlie {token}", f"Bravo {token}"])

    page.get_by_role("link", name="Name", exact=True).click()
    expect(names).to_have_text([f"Alpha {token}", f"Bravo {token}", f"Charlie {token}"])
    expect(page.get_by_role("columnheader", name="Name")).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("link", name="Name", exact=True).click()
    expect(names).to_have_text([f"Charlie {token}", f"Bravo {token}", f"Alpha {token}"])
    expect(page.get_by_role("columnheader", name="Name")).to_have_attribute("aria-sort", "descending")
    # The search survives sorting, and the email column sorts too.
    expect(search).to_have_value(token)
    page.get_by_role("link", name="Email", exact=True).click()
    expect(names).to_have_text([f"Alpha {token}", f"Bravo {token}", f"Charlie {token}"])


def test_delete_asks_for_confirmation(page, hub):
    email = f"{unique('delete')}@example.com"
    customer_id = create_customer(hub, "Doomed", email)
    page.goto(f"/customers/?q={email}")
    row = customer_row(page, email)

    row.get_by_role("link", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete customer")
    expect(dialog).to_contain_text("Delete Doomed?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(row).to_be_visible()
    assert hub.api("GET", f"/api/customers/{customer_id}").status_code == 200

    row.get_by_role("link", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").filter(has_text="Doomed")).to_contain_text("deleted")
    expect(row).to_have_count(0)
    assert hub.api("GET", f"/api/customers/{customer_id}").status_code == 404


def test_a_failed_customer_is_resynced_from_its_row(page, hub):
    email = f"{unique('failed')}@example.com"
    customer_id = create_customer(hub, "Grace Hopper", email)
    before = wait_synced(hub, customer_id)["last_synced_at"]
    fail_mapping(hub, customer_id, "StripeError: rate limited for too long")

    page.goto(f"/customers/?q={email}")
    row = customer_row(page, email)
    expect(row.locator("[data-sync-badge]")).to_have_text("Failed")
    expect(row.locator("[data-sync-error]")).to_have_text("StripeError: rate limited for too long")
    row.get_by_role("button", name="Resync").click()

    expect(page.get_by_role("status").filter(has_text="Grace Hopper")).to_contain_text("Resync")
    expect(row.locator("[data-sync-badge]")).to_have_text("Synced", timeout=SYNC_TIMEOUT_MS)
    expect(row.get_by_role("button", name="Resync")).to_be_hidden()
    wait_synced(hub, customer_id, after=before)


def dashboard_figures(page: Page) -> dict[str, int]:
    return {
        key: int(page.locator(f"[data-stat={key}]").inner_text())
        for key in ("customers", "synced", "pending", "failed", "unsynced")
    }


def api_figures(hub: Hub) -> dict[str, int]:
    def count(path: str) -> int:
        return hub.api("GET", f"{path}&page_size=1" if "?" in path else f"{path}?page_size=1").json()["count"]

    mappings = {
        status: count(f"/api/integrations?integration_type=stripe&status={status}")
        for status in ("synced", "pending", "failed")
    }
    customers = count("/api/customers")
    return {
        "customers": customers,
        **mappings,
        "unsynced": customers - count("/api/integrations?integration_type=stripe"),
    }


def test_dashboard_matches_the_api_and_updates_live(page, hub):
    # Customers in every final state: a push that failed for good, and one deleted in Stripe
    # (the hub then keeps the customer, unsynced). They stay for the pages tested after this.
    failed_id = create_customer(hub, "Edsger Dijkstra", f"{unique('failed')}@example.com")
    unlinked_id = create_customer(hub, "Barbara Liskov", f"{unique('unlinked')}@example.com")
    wait_synced(hub, failed_id)
    fail_mapping(hub, failed_id, "StripeError: No such customer (HTTP 404), gave up after 6 attempts")
    hub.stripe.v1.customers.delete(wait_synced(hub, unlinked_id)["external_id"])
    wait_until(lambda: stripe_mapping(hub, unlinked_id) is None, timeout=SYNC_TIMEOUT, message="unlinked")

    # Figures settle once every push has been applied.
    expected = wait_until(
        lambda: (figures := api_figures(hub))["pending"] == 0 and figures, timeout=SYNC_TIMEOUT, message="settled"
    )
    assert expected["failed"] >= 1 and expected["unsynced"] >= 1
    page.goto("/")
    assert dashboard_figures(page) == expected
    for status in ("synced", "pending", "failed", "unsynced"):
        segment = page.locator(f"svg.status-chart circle[data-status={status}]")
        if expected[status]:
            expect(segment).to_have_attribute("data-count", str(expected[status]))
        else:
            expect(segment).to_have_count(0)
        expect(page.locator(f"[data-legend={status}] [data-count]")).to_have_text(str(expected[status]))
    expect(page.locator("[data-recent] tr[data-customer-id]")).to_have_count(min(10, expected["customers"]))
    screenshot(page, "dashboard")

    # A new customer shows up in the figures and the activity list without a reload.
    mark_document(page)
    email = f"{unique('live')}@example.com"
    customer_id = create_customer(hub, "Margaret Hamilton", email)
    expect(page.locator("[data-stat=customers]")).to_have_text(str(expected["customers"] + 1))
    expect(page.locator("[data-recent] tr[data-customer-id]").first).to_contain_text(email)
    wait_synced(hub, customer_id)
    expect(page.locator("[data-stat=synced]")).to_have_text(str(expected["synced"] + 1))
    assert same_document(page)


def test_customers_filter_by_sync_status(page, hub):
    page.goto("/customers/")
    screenshot(page, "customers")
    page.get_by_label("Sync status", exact=True).select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    rows = page.locator("tr[data-customer-id]")
    failed = hub.api("GET", "/api/integrations?integration_type=stripe&status=failed").json()["count"]
    expect(rows).to_have_count(failed)
    expect(rows.locator("[data-sync-badge]")).to_have_text(["Failed"] * failed)
    expect(rows.get_by_role("button", name="Resync")).to_have_count(failed)


def test_the_admin_action_resyncs_selected_customers(page, hub):
    email = f"{unique('admin')}@example.com"
    customer_id = create_customer(hub, "Alan Turing", email)
    before = wait_synced(hub, customer_id)["last_synced_at"]
    fail_mapping(hub, customer_id, "StripeError: card_declined")
    outbox = "SELECT COUNT(*) FROM sync_outboxmessage WHERE key = %s"
    queued_before = hub.db.scalar(outbox, (str(customer_id),))

    page.goto("/admin/catalog/customer/")
    row = page.locator("#result_list tbody tr").filter(has_text=email)
    expect(row).to_contain_text("Failed")
    row.get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Resync selected customers")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Resync requested for 1 customer.")
    # Marked pending with the push queued, and once the worker ran, synced again.
    assert hub.db.scalar(outbox, (str(customer_id),)) == queued_before + 1
    expect(row).not_to_contain_text("Failed")
    wait_synced(hub, customer_id, after=before)
    page.locator("#changelist-filter").get_by_role("link", name="Synced", exact=True).click()
    expect(page.locator("#result_list tbody tr").filter(has_text=email)).to_contain_text("Synced")
    page.set_viewport_size({"width": 1440, "height": 900})  # the admin's sidebar takes room
    page.goto("/admin/catalog/customer/")
    screenshot(page, "admin-customers")


def test_integrations_page_filters_and_refreshes_in_place(page, hub):
    page.goto("/integrations/")
    rows = page.locator("tr[data-mapping-id]")
    expect(rows.first).to_be_visible()
    page.get_by_label("Status", exact=True).select_option("synced")
    page.get_by_label("Integration", exact=True).select_option("stripe")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"type=stripe"))
    for badge in rows.locator("[data-sync-badge]").all():
        expect(badge).to_have_text("Synced")

    mark_document(page)
    email = f"{unique('mapping')}@example.com"
    customer_id = create_customer(hub, "Katherine Johnson", email)
    wait_synced(hub, customer_id)
    page.get_by_role("link", name="Refresh").click()
    expect(rows.filter(has_text=email)).to_contain_text("Synced")
    assert same_document(page)
    page.goto("/integrations/")
    screenshot(page, "integrations")


def test_an_invoice_drafted_in_the_console_reaches_stripe_and_is_finalized_there(page, hub):
    customer_id = create_customer(hub, "Ada Invoiced", f"{unique('invoice')}@example.com")
    page.goto("/invoices/")
    page.get_by_role("link", name="New invoice").click()
    page.get_by_label("Customer").fill(str(customer_id))
    page.get_by_label("Currency").fill("EUR")
    page.get_by_label("Description").fill("Consulting, December")
    page.get_by_label("Lines").fill("Consulting | 3 | 12500\nTravel | 1 | 4000")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("tr[data-line]")).to_have_count(2)
    invoice_id = int(re.search(r"/invoices/(\d+)/", page.url).group(1))

    def synced_here() -> bool:
        page.reload()
        return "Synced" in page.locator("[data-mapping=stripe]").inner_text()

    wait_until(synced_here, timeout=SYNC_TIMEOUT, message="invoice synced with Stripe")
    link = page.locator("[data-mapping=stripe] a")
    expect(link).to_have_attribute("href", re.compile(r"^https://dashboard\.stripe\.com/test/invoices/in_"))
    remote_id = link.inner_text()
    assert hub.stripe.v1.invoices.retrieve(remote_id).total == 41500
    screenshot(page, "invoice-draft")

    page.locator("button[data-action=finalize]").click()
    expect(page.locator("h1")).to_contain_text("Open")
    wait_until(lambda: hub.stripe.v1.invoices.retrieve(remote_id).status == "open", timeout=SYNC_TIMEOUT)
    number = hub.stripe.v1.invoices.retrieve(remote_id).number

    def numbered_here() -> bool:
        page.reload()
        return number in page.locator("h1").inner_text()

    wait_until(numbered_here, timeout=SYNC_TIMEOUT, message="Stripe's number shown")
    page.goto(f"/invoices/?q={number}")
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot(page, "invoice-list")
    assert hub.api("GET", f"/api/invoices/{invoice_id}").json()["status"] == "open"


def test_phone_width_has_no_horizontal_overflow(hub, browser, staff_session, console_errors):
    page = open_page(browser, hub, staff_session, console_errors, viewport=PHONE, is_mobile=True, has_touch=True)
    for path in ["/", "/customers/", "/integrations/"]:
        page.goto(path)
        expect(page.get_by_role("button", name="Toggle navigation")).to_be_visible()
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{path} is {width[0]} px wide on a {width[1]} px screen"
        if path == "/":
            screenshot(page, "dashboard-phone")
    page.get_by_role("button", name="Toggle navigation").click()
    expect(page.get_by_role("link", name="Customers", exact=True)).to_be_visible()
    page.context.close()
    console_errors.assert_none()


def test_swagger_ui_works_under_the_policy(page):
    """/docs: Swagger UI renders the schema and a request tried from it succeeds (session login)."""
    page.goto("/docs")
    operation = page.locator('.opblock-get:has(.opblock-summary-path[data-path="/api/customers"])')
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")


def test_the_browsable_api_logs_in_and_out_without_inline_script(hub, browser, console_errors):
    # A session of its own: logging out ends it, and the other tests share theirs.
    page = open_page(browser, hub, None, console_errors, viewport=DESKTOP)
    page.goto("/api-auth/login/?next=/api/customers")
    log_in(page)
    expect(page.get_by_role("heading", name="Customer List")).to_be_visible()
    page.locator(".navbar .dropdown-toggle").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".navbar")).to_contain_text("Log in")
    page.context.close()
    # Signed out, the API page it returns to answers 401, which the browser logs; nothing else.
    assert [error for error in console_errors if "status of 401" not in error] == []
    assert console_errors.csp_violations == []


def test_the_watch_sees_a_policy_breach(hub, browser, console_errors):
    """The watch itself: a page breaking the hub's policy (an inline script, a style attribute),
    served with the hub's own header, is seen through both the console and the DOM event."""
    page = open_page(browser, hub, None, console_errors)
    policy = page.request.get("/login/").headers["content-security-policy"]
    probe = '<!doctype html><p style="color: red">probe</p><script>document.title = "ran"</script>'
    page.route(
        "**/csp-probe",
        lambda route: route.fulfill(body=probe, content_type="text/html", headers={"Content-Security-Policy": policy}),
    )
    page.goto("/csp-probe")
    # Playwright hands console messages and binding calls to Python only while one of its calls
    # runs: each poll makes one (reading the title), or reports that came after goto returned
    # would never arrive, however long the wait.
    wait_until(
        lambda: page.title() is not None and len(console_errors.csp_violations) >= 4,
        timeout=10,
        message="violations reported",
    )
    assert page.title() == ""  # the inline script never ran
    seen = "\n".join(console_errors.csp_violations)
    assert "style-src-attr blocked inline" in seen and "script-src-elem blocked inline" in seen
    assert "Content Security Policy directive 'script-src 'self''" in seen
    assert console_errors == []
    page.context.close()


def test_no_console_errors_on_any_page(page, hub):
    # The `page` fixture fails a test on any error the browser logged and on any breach of the
    # Content-Security-Policy, so every scenario above (the live refreshes of each page included)
    # was watched; this adds the pages none visited: the rest of the console, the admin, the
    # browsable API and its login, and /docs.
    customer_id = create_customer(hub, "Ada Pages", f"{unique('pages')}@example.com")
    for path in [
        "/",
        "/customers/?status=unsynced",
        "/customers/new/",
        f"/customers/{customer_id}/edit/",
        f"/customers/{customer_id}/delete/",
        "/integrations/?status=failed",
        "/invoices/",
        "/invoices/new/",
        "/admin/catalog/invoice/",
        "/admin/catalog/invoice/add/",
        "/api/invoices",
        "/integrations/webhooks/",
        "/api/webhook-endpoints",
        "/admin/webhooks_integration/webhookendpoint/",
        "/admin/webhooks_integration/webhookdelivery/",
        "/admin/",
        "/admin/catalog/customer/",
        "/admin/catalog/customer/add/",
        f"/admin/catalog/customer/{customer_id}/change/",
        "/admin/catalog/customer/import-csv/",
        "/admin/catalog/catalogintegration/",
        "/admin/catalog/catalogitem/",
        "/admin/sync/deadletter/",
        "/admin/sync/outboxmessage/",
        "/admin/sync/syncevent/",
        "/admin/sync/syncconflict/",
        "/admin/auth/user/",
        "/api/customers",
        f"/api/customers/{customer_id}",
        "/api/integrations",
        "/api/sync-events",
        "/docs",
    ]:
        page.goto(path)
        expect(page.locator("body")).not_to_be_empty()
    expect(page.locator(".opblock").first).to_be_visible()  # Swagger UI drew the schema

    # And the login pages, signed out.
    page.context.clear_cookies()
    for path in ["/login/", "/admin/login/", "/api-auth/login/"]:
        page.goto(path)
        expect(page.get_by_label(re.compile("Username"))).to_be_visible()
