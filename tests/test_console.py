"""The staff console, through Django's test client: access, validation, figures, query counts."""

from __future__ import annotations

import html as html_module
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from catalog.models import CatalogIntegration, Customer, SyncStatus, catalog_types
from catalog.services import integration_record_error, integration_record_synced
from integrations.stripe import INTEGRATION_TYPE
from sync.models import OutboxMessage

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
STAFF_PAGES = [
    "/",
    "/console/stats.json",
    "/customers/",
    "/customers/statuses.json?ids=1",
    "/customers/new/",
    "/customers/1/edit/",
    "/customers/1/delete/",
    "/integrations/",
]


@pytest.fixture
def staff(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


def synced(customer: Customer, external_id: str | None = None) -> None:
    integration_record_synced(
        item_id=customer.pk, integration_type=INTEGRATION_TYPE, integration_id=external_id or f"cus_{customer.pk}"
    )


def failed(customer: Customer, error: str = "Stripe said no") -> None:
    integration_record_error(item_id=customer.pk, integration_type=INTEGRATION_TYPE, error=error, final=True)


def pending(customer: Customer) -> None:
    CatalogIntegration.objects.update_or_create(
        catalog_item=customer, integration_type=INTEGRATION_TYPE, defaults={"status": SyncStatus.PENDING}
    )


def unsynced(customer: Customer) -> None:
    CatalogIntegration.objects.filter(catalog_item=customer).delete()


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_non_staff_users_are_sent_to_the_login_page_and_cannot_log_in(client):
    user = get_user_model().objects.create_user("visitor", password="pw-visitor-123")
    client.force_login(user)
    for url in STAFF_PAGES:
        assert client.get(url)["Location"].startswith("/login/"), url
    assert "not a staff account" in client.get("/login/").content.decode()

    client.logout()
    response = client.post("/login/", {"username": "visitor", "password": "pw-visitor-123"})
    assert response.status_code == 200
    assert "correct username and password for a staff account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_staff_log_in_reach_the_page_they_asked_for_and_log_out(client, staff_user):
    page = client.get("/login/?next=/customers/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'for="id_username"' in html and 'for="id_password"' in html

    response = client.post("/login/", {"username": "staff", "password": "pw-staff-123", "next": "/customers/"})
    assert response.status_code == 302 and response["Location"] == "/customers/"
    assert client.get("/customers/").status_code == 200
    assert client.post("/login/", {"username": "staff", "password": "wrong"}).status_code == 200

    assert client.get("/logout/").status_code == 405  # logging out is a POST, never a link a page can embed
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/customers/").status_code == 302


def test_the_api_and_the_webhook_keep_their_own_authentication(client, staff_user, webhook_secret):
    # No login redirects there: the API answers 401, the webhook checks Stripe's signature.
    assert client.get("/api/customers").status_code == 401
    assert client.post("/webhooks/stripe", b"{}", content_type="application/json").status_code == 400
    client.force_login(get_user_model().objects.create_user("visitor", password="pw-visitor-123"))
    assert client.get("/api/customers").status_code == 403  # logged in, but granted nothing


def test_the_admin_requires_a_staff_login(client):
    assert client.get("/admin/catalog/customer/")["Location"].startswith("/admin/login/")
    client.force_login(get_user_model().objects.create_user("visitor", password="pw-visitor-123"))
    assert client.get("/admin/catalog/customer/")["Location"].startswith("/admin/login/")


# --- Dashboard ----------------------------------------------------------------------------------


def make_mixed_catalog() -> dict[str, list[Customer]]:
    customers = {
        status: CustomerFactory.create_batch(n)
        for status, n in [("synced", 4), ("pending", 3), ("failed", 2), ("unsynced", 1)]
    }
    for customer in customers["synced"]:
        synced(customer)
    for customer in customers["pending"]:
        pending(customer)
    for customer in customers["failed"]:
        failed(customer)
    for customer in customers["unsynced"]:
        unsynced(customer)
    return customers


def test_stats_json_matches_the_database(staff):
    make_mixed_catalog()
    data = staff.get("/console/stats.json").json()
    stripe = CatalogIntegration.objects.filter(integration_type=INTEGRATION_TYPE)
    expected = {
        "customers": Customer.objects.count(),
        "synced": stripe.filter(status="synced").count(),
        "pending": stripe.filter(status="pending").count(),
        "failed": stripe.filter(status="failed").count(),
        "unsynced": Customer.objects.exclude(integrations__integration_type=INTEGRATION_TYPE).count(),
    }
    assert data["counts"] == expected == {"customers": 10, "synced": 4, "pending": 3, "failed": 2, "unsynced": 1}
    segments = dict(re.findall(r'data-status="(\w+)" data-count="(\d+)"', data["chart_html"]))
    assert segments == {"synced": "4", "pending": "3", "failed": "2", "unsynced": "1"}
    assert data["recent_html"].count("data-customer-id=") == 10
    # Per catalog type: every type, even one without items, with the same counts.
    rows = dict(re.findall(r'<tr data-catalog-type="(\w+)">(.*?)</tr>', data["by_type_html"], re.DOTALL))
    assert set(rows) == {model.catalog_type_name() for model in catalog_types()}
    assert dict(re.findall(r'data-count="(\w+)">(\d+)<', rows["customer"])) == {
        "total": "10", "synced": "4", "pending": "3", "failed": "2", "unsynced": "1"
    }


def test_dashboard_shows_totals_chart_and_recent_activity(staff, django_assert_max_num_queries):
    customers = make_mixed_catalog()
    extra = CustomerFactory.create_batch(5)
    # Savepoint, session, user, counts, recent activity, release: whatever the number of customers.
    # +1: the permission read; +5: the problems' two counts and the activity chart's audit rows
    # per minute, backlog per minute and latest backlog. The counts per catalog type include
    # the customers' totals.
    with django_assert_max_num_queries(12):
        html = staff.get("/").content.decode()
    assert re.search(r'data-stat="customers">15<', html) and re.search(r'data-stat="failed">2<', html)
    assert re.search(r'data-stat="unsynced">1<', html)
    # The five new customers are pending: their first push is queued.
    assert "<svg" in html and 'role="img"' in html and "4 synced, 8 pending, 2 failed, 1 unsynced" in html
    # The ten most recently updated customers, newest first.
    recent_ids = [int(pk) for pk in re.findall(r'<tr data-customer-id="(\d+)"', html)]
    assert len(recent_ids) == 10 and recent_ids[:5] == [c.pk for c in reversed(extra)]
    assert customers["synced"][0].pk not in recent_ids
    assert 'href="/customers/"' in html and 'href="/integrations/"' in html


def test_every_viewer_shares_the_dashboard_counts_for_a_few_seconds(staff, settings, django_assert_num_queries):
    """The counts read the whole catalog and each open dashboard refreshes every 3 s: they are
    counted once per CONSOLE_COUNTS_CACHE_SECONDS for everyone, then again."""
    from django.core.cache import cache

    settings.CONSOLE_COUNTS_CACHE_SECONDS = 60
    CustomerFactory.create_batch(3)
    with django_assert_num_queries(12) as first:
        staff.get("/console/stats.json")
    counting = [query["sql"] for query in first.captured_queries if 'LEFT OUTER JOIN "catalog_catalogintegration"' in query["sql"]]
    assert len(counting) == 1, counting
    CustomerFactory.create_batch(2)  # within the window: the shared figures stand
    with django_assert_num_queries(11) as cached:
        stats = staff.get("/console/stats.json").json()
    assert counting[0] not in [query["sql"] for query in cached.captured_queries]
    assert stats["counts"]["customers"] == 3

    cache.delete(f"console:catalog-counts:{INTEGRATION_TYPE}")  # the window is over
    assert staff.get("/console/stats.json").json()["counts"]["customers"] == 5
    settings.CONSOLE_COUNTS_CACHE_SECONDS = 0
    CustomerFactory.create_batch(1)
    assert staff.get("/console/stats.json").json()["counts"]["customers"] == 6


def test_chart_of_an_empty_catalog(staff):
    html = staff.get("/").content.decode()
    assert "No customers yet" in html and "chart-segment" not in html


# --- Customers ----------------------------------------------------------------------------------


def row_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-customer-id="(\d+)"', html)]


def test_customer_list_query_count_does_not_grow_with_the_rows(staff, django_assert_max_num_queries):
    for customer in CustomerFactory.create_batch(30):
        synced(customer)
    # Savepoint, session, user, count, page, release: whatever the number of rows shown.
    with django_assert_max_num_queries(7):  # +1: the permission read
        response = staff.get("/customers/")
    assert len(row_ids(response.content.decode())) == 20
    with django_assert_max_num_queries(7):  # +1: the permission read
        response = staff.get("/customers/?page=2&sort=name")
    assert len(row_ids(response.content.decode())) == 10


def test_customer_list_searches_filters_and_sorts(staff):
    ada = CustomerFactory(name="Ada Lovelace", email="ada@analytical.example")
    grace = CustomerFactory(name="Grace Hopper", email="grace@navy.example")
    alan = CustomerFactory(name="Alan Turing", email="alan@bletchley.example")
    synced(ada)
    failed(grace)

    assert row_ids(staff.get("/customers/?q=hopper").content.decode()) == [grace.pk]
    assert row_ids(staff.get("/customers/?q=BLETCHLEY").content.decode()) == [alan.pk]
    assert row_ids(staff.get("/customers/?status=failed").content.decode()) == [grace.pk]
    assert row_ids(staff.get("/customers/?status=unsynced").content.decode()) == []
    pending(alan)
    assert row_ids(staff.get("/customers/?status=pending").content.decode()) == [alan.pk]

    assert row_ids(staff.get("/customers/?sort=name").content.decode()) == [ada.pk, alan.pk, grace.pk]
    assert row_ids(staff.get("/customers/?sort=-name").content.decode()) == [grace.pk, alan.pk, ada.pk]
    assert row_ids(staff.get("/customers/?sort=email").content.decode()) == [ada.pk, alan.pk, grace.pk]
    html = staff.get("/customers/?sort=name").content.decode()
    assert re.search(r'aria-sort="ascending">\s*<a[^>]*href="\?sort=-name"', html)
    # Unknown sorts and filters fall back to the defaults (newest first, all) rather than failing.
    assert row_ids(staff.get("/customers/?sort=password&status=nonsense").content.decode()) == [
        alan.pk,
        grace.pk,
        ada.pk,
    ]

    # Failed rows show their resync button and error; synced ones neither (unsynced ones, deleted
    # in Stripe, show the button too: a staff resync recreates them there).
    html = staff.get("/customers/").content.decode()
    rows = dict(re.findall(r'<tr data-customer-id="(\d+)">(.*?)</tr>', html, re.DOTALL))
    assert "data-resync hidden" not in rows[str(grace.pk)] and "Stripe said no" in rows[str(grace.pk)]
    assert "data-resync hidden" in rows[str(ada.pk)]


def test_statuses_json_reports_the_visible_rows(staff):
    ada, grace, alan = CustomerFactory.create_batch(3)
    synced(ada)
    failed(grace, "card_declined")
    data = staff.get(f"/customers/statuses.json?ids={ada.pk},{grace.pk},{alan.pk},999999").json()["statuses"]
    assert data[str(ada.pk)] == {"status": "synced", "error": "", "label": "Synced", "badge_class": "text-bg-success"}
    assert data[str(grace.pk)]["status"] == "failed" and data[str(grace.pk)]["error"] == "card_declined"
    assert data[str(alan.pk)]["status"] == "pending"  # just created: its push is queued
    assert "999999" not in data
    assert staff.get("/customers/statuses.json?ids=1,x").status_code == 400


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"name": "A", "email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"name": "A" * 257, "email": "a@example.com"}, "name", "no more than 256 characters"),
        ({"name": "A", "phone": "+1 555 0100 0100 0100"}, "phone", "no more than 20 characters"),
        ({"name": "Copy", "email": "TAKEN@Example.com"}, "email", "A customer with this email already exists."),
    ],
)
def test_modal_form_returns_field_errors_beside_the_field(staff, payload, field, message):
    CustomerFactory(email="taken@example.com")
    before = (Customer.objects.count(), OutboxMessage.objects.count())
    response = staff.post("/customers/new/", payload, **FETCH)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<html" not in html  # a fragment for the modal
    # The message sits right after the field it is about, tied to it for screen readers.
    match = re.search(
        rf'<input[^>]*id="id_{field}"[^>]*is-invalid[^>]*aria-invalid="true" aria-describedby="id_{field}-error">\s*'
        rf'<div class="invalid-feedback" id="id_{field}-error">([^<]*)</div>',
        html.replace("\n", " "),
    )
    assert match, html
    assert message in match.group(1).replace("&#x27;", "'")
    assert (Customer.objects.count(), OutboxMessage.objects.count()) == before


def test_modal_form_creates_and_edits_through_the_services(staff):
    form = staff.get("/customers/new/", **FETCH).content.decode()
    assert 'id="customer-modal-title">Add customer<' in form and "<html" not in form
    assert "<html" in staff.get("/customers/new/").content.decode()  # without JavaScript: a page

    response = staff.post("/customers/new/", {"name": "Ada", "email": " Ada@Example.com "}, **FETCH)
    assert response.status_code == 201 and response["Content-Type"] == "application/json"
    ada = Customer.objects.get(pk=response.json()["id"])
    assert (ada.name, ada.email) == ("Ada", "Ada@Example.com")
    # Saved through the service: its outward sync is queued in the same transaction.
    assert OutboxMessage.objects.filter(key=str(ada.pk)).count() == 1

    grace = CustomerFactory(email="grace@example.com")
    taken = staff.post(f"/customers/{ada.pk}/edit/", {"name": "Ada", "email": "GRACE@example.com"}, **FETCH)
    assert taken["Content-Type"].startswith("text/html") and "already exists" in taken.content.decode()
    edit = staff.post(f"/customers/{ada.pk}/edit/", {"name": "Ada Lovelace", "email": "ada@example.com"}, **FETCH)
    assert edit.status_code == 200
    ada.refresh_from_db()
    assert (ada.name, ada.email) == ("Ada Lovelace", "ada@example.com")
    assert Customer.objects.get(pk=grace.pk).email == "grace@example.com"
    assert "Ada Lovelace" in staff.get("/customers/").content.decode()  # with the flash message
    assert staff.get("/customers/999999/edit/", **FETCH).status_code == 404


def test_form_without_javascript_redirects_back(staff):
    response = staff.post("/customers/new/", {"name": "Ada", "email": "", "next": "/customers/?q=ada"})
    assert response.status_code == 302 and response["Location"] == "/customers/?q=ada"
    assert Customer.objects.get(name="Ada").email is None
    # Never off-site.
    response = staff.post("/customers/new/", {"name": "Eve", "next": "https://evil.example/"})
    assert response["Location"] == "/customers/"


# --- Customers: every field ---------------------------------------------------------------------

FULL_CUSTOMER = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "phone": "+44 20 7946 0000",
    "description": "Countess; first programmer.",
    "address_line1": "12 St James's Square",
    "address_line2": "Flat 3",
    "address_city": "London",
    "address_state": "Greater London",
    "address_postal_code": "SW1Y 4JH",
    "address_country": "GB",
    "metadata": "plan=gold\r\n\r\n  tier = 2 \r\n",
    "preferred_locales": "en-GB, fr",
}


def field_error(html: str, field: str) -> str | None:
    """The error shown beside form field `field` (None if none), checked to be tied to its
    control for screen readers."""
    html = html.replace("\n", " ")
    match = re.search(rf'<div class="invalid-feedback" id="id_{field}-error">([^<]*)</div>', html)
    if match is None:
        return None
    control = re.search(rf'<(input|select|textarea)[^>]*id="id_{field}"[^>]*>', html)
    assert control, f"no control for {field}"
    assert "is-invalid" in control.group(0) and 'aria-invalid="true"' in control.group(0)
    assert re.search(rf'aria-describedby="id_{field}-error[^"]*"', control.group(0))
    # Right after its control (a select's options in between).
    assert html.index(f'id="id_{field}-error"') > control.start()
    between = html[control.end() : match.start()]
    assert "<input" not in between and "<label" not in between, between
    return match.group(1).replace("&#x27;", "'").replace("&quot;", '"')


def test_modal_form_creates_and_edits_every_field(staff):
    form = staff.get("/customers/new/", **FETCH).content.decode()
    for name in FULL_CUSTOMER:
        assert f'name="{name}"' in form and f'for="id_{name}"' in form, name
    # The address is one group; the country a list of ISO countries; limits come from the API.
    assert re.search(r"<fieldset[^>]*>\s*<legend[^>]*>Address</legend>", form)
    assert '<option value="DE">Germany</option>' in form and '<option value="" selected>' in form
    assert re.search(r'id="id_phone"[^>]*maxlength="20"', form.replace("\n", " "))
    assert re.search(r'<textarea[^>]*id="id_metadata"[^>]*aria-describedby="id_metadata-help"', form.replace("\n", " "))

    response = staff.post("/customers/new/", FULL_CUSTOMER, **FETCH)
    assert response.status_code == 201, response.content.decode()
    ada = Customer.objects.get(pk=response.json()["id"])
    assert (ada.name, ada.email, ada.phone, ada.description) == (
        "Ada Lovelace",
        "ada@example.com",
        "+44 20 7946 0000",
        "Countess; first programmer.",
    )
    assert ada.address == {
        "line1": "12 St James's Square",
        "line2": "Flat 3",
        "city": "London",
        "state": "Greater London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    }
    assert ada.metadata == {"plan": "gold", "tier": "2"}
    assert ada.preferred_locales == ["en-GB", "fr"]
    assert OutboxMessage.objects.filter(key=str(ada.pk)).count() == 1

    # The table shows the phone and the country.
    html = staff.get("/customers/").content.decode()
    row = dict(re.findall(r'<tr data-customer-id="(\d+)">(.*?)</tr>', html, re.DOTALL))[str(ada.pk)]
    assert re.search(r'data-col="phone">\+44 20 7946 0000<', row)
    assert re.search(r'data-col="country"><abbr title="United Kingdom">GB</abbr>', row)
    assert re.search(r'<th scope="col" aria-sort="none" class="d-none d-lg-table-cell">\s*<a[^>]*>\s*Phone', html)

    # The edit form shows every value.
    form = staff.get(f"/customers/{ada.pk}/edit/", **FETCH).content.decode()
    assert 'value="+44 20 7946 0000"' in form and 'value="SW1Y 4JH"' in form and 'value="en-GB, fr"' in form
    assert 'value="12 St James&#x27;s Square"' in form
    assert '<option value="GB" selected>United Kingdom</option>' in form
    assert re.search(r'<textarea[^>]*id="id_metadata"[^>]*>\s*plan=gold\ntier=2</textarea>', form)
    assert re.search(r'<textarea[^>]*id="id_description"[^>]*>\s*Countess; first programmer.</textarea>', form)

    # Edit: a key removed, one added, a part cleared, the country changed; a blank name is fine.
    edit = {
        **FULL_CUSTOMER,
        "name": "",
        "address_line2": "",
        "address_country": "fr",
        "metadata": "tier=3\nvip=yes",
        "preferred_locales": "",
    }
    response = staff.post(f"/customers/{ada.pk}/edit/", edit, **FETCH)
    assert response.status_code == 200 and response["Content-Type"] == "application/json", response.content.decode()
    ada.refresh_from_db()
    assert ada.name == "" and ada.address["line2"] == "" and ada.address["country"] == "FR"
    assert ada.metadata == {"tier": "3", "vip": "yes"} and ada.preferred_locales == []
    assert ada.address["city"] == "London"
    html = staff.get("/customers/").content.decode()
    assert '<abbr title="France">FR</abbr>' in html and "ada@example.com" in html

    # Saving it unchanged writes nothing (so queues no sync).
    queued = OutboxMessage.objects.filter(key=str(ada.pk)).count()
    form = staff.get(f"/customers/{ada.pk}/edit/", **FETCH).content.decode()
    assert '<option value="FR" selected>' in form
    assert staff.post(f"/customers/{ada.pk}/edit/", edit, **FETCH).status_code == 200
    assert OutboxMessage.objects.filter(key=str(ada.pk)).count() == queued


def test_a_customer_needs_no_name_nor_email(staff):
    response = staff.post("/customers/new/", {"name": "  ", "phone": "+1 555 0100"}, **FETCH)
    assert response.status_code == 201, response.content.decode()
    customer = Customer.objects.get(pk=response.json()["id"])
    assert (customer.name, customer.email, customer.phone) == ("", None, "+1 555 0100")


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"address_country": "XX"}, "address_country", '"XX" is not a valid choice.'),
        ({"phone": "0" * 21}, "phone", "Ensure this field has no more than 20 characters."),
        ({"metadata": "plan=gold\njust words"}, "metadata", "Line 2: “just words” is not key=value."),
        ({"metadata": "=gold"}, "metadata", "Line 1: “=gold” is not key=value."),
        ({"metadata": "plan=gold\nplan=silver"}, "metadata", "Line 2: the key “plan” is given twice."),
        ({"metadata": "local_id=42"}, "metadata", "Key 'local_id' is reserved for the hub."),
        ({"metadata": "a[b]=1"}, "metadata", "square brackets are not allowed"),
        ({"metadata": f"note={'x' * 501}"}, "metadata", "note: Ensure this field has no more than 500 characters."),
        ({"metadata": "\n".join(f"k{i}=v" for i in range(51))}, "metadata", "At most 50 keys."),
        ({"preferred_locales": "fr-FR, fr_FR"}, "preferred_locales", "'fr_FR' is not a language tag"),
        ({"preferred_locales": "en, en"}, "preferred_locales", "Each locale at most once."),
        ({"preferred_locales": f"en, {'x' * 21}"}, "preferred_locales", f"{'x' * 21}: Ensure this field has no more"),
        ({"description": "x" * 5001}, "description", "no more than 5000 characters"),
        ({"address_postal_code": "x" * 5001}, "address_postal_code", "no more than 5000 characters"),
    ],
)
def test_form_errors_of_the_new_fields_are_shown_beside_them(staff, changes, field, message):
    ada = CustomerFactory(name="Ada", email="ada@example.com", phone="+1 555 0100", metadata={"plan": "gold"})
    before = (Customer.objects.count(), OutboxMessage.objects.count())
    for url in ["/customers/new/", f"/customers/{ada.pk}/edit/"]:
        payload = {**FULL_CUSTOMER, "email": "" if url.endswith("new/") else "ada@example.com", **changes}
        response = staff.post(url, payload, **FETCH)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
        html = response.content.decode()
        error = field_error(html, field)
        assert error is not None and message in error, html
        # Only that field is in error, and what was typed is kept.
        others = [name for name in FULL_CUSTOMER if name != field and field_error(html, name)]
        assert others == []
        if field != "phone":
            assert 'value="+44 20 7946 0000"' in html
    assert (Customer.objects.count(), OutboxMessage.objects.count()) == before
    ada.refresh_from_db()
    assert (ada.phone, ada.metadata) == ("+1 555 0100", {"plan": "gold"})


def test_full_page_form_shows_the_new_fields_without_javascript(staff):
    ada = CustomerFactory(name="Ada", address_country="DE")
    page = staff.get(f"/customers/{ada.pk}/edit/").content.decode()
    assert "<html" in page and '<option value="DE" selected>Germany</option>' in page
    response = staff.post(f"/customers/{ada.pk}/edit/", {**FULL_CUSTOMER, "address_country": "XX"})
    assert response.status_code == 200 and "<html" in response.content.decode()
    assert field_error(response.content.decode(), "address_country") == '"XX" is not a valid choice.'
    response = staff.post(f"/customers/{ada.pk}/edit/", {**FULL_CUSTOMER, "next": "/customers/?q=ada"})
    assert response.status_code == 302 and response["Location"] == "/customers/?q=ada"
    ada.refresh_from_db()
    assert ada.address["country"] == "GB" and ada.metadata == {"plan": "gold", "tier": "2"}


def test_delete_asks_first_and_deletes_on_post(staff):
    ada = CustomerFactory(name="Ada")
    confirm = staff.get(f"/customers/{ada.pk}/delete/")
    assert confirm.status_code == 200 and "Delete <strong>Ada</strong>?" in confirm.content.decode()
    assert Customer.objects.filter(pk=ada.pk).exists()
    response = staff.post(f"/customers/{ada.pk}/delete/", {"next": "/customers/?page=1"})
    assert response["Location"] == "/customers/?page=1"
    assert not Customer.objects.filter(pk=ada.pk).exists()
    assert staff.post(f"/customers/{ada.pk}/delete/").status_code == 404


def test_resync_requeues_a_failed_customer(staff):
    grace = CustomerFactory()
    failed(grace)
    outbox_before = OutboxMessage.objects.filter(key=str(grace.pk)).count()
    assert staff.get(f"/customers/{grace.pk}/resync/").status_code == 405
    response = staff.post(f"/customers/{grace.pk}/resync/")
    assert response.status_code == 302
    assert CatalogIntegration.objects.get(catalog_item=grace).status == SyncStatus.PENDING
    assert OutboxMessage.objects.filter(key=str(grace.pk)).count() == outbox_before + 1


# --- Integrations -------------------------------------------------------------------------------


def test_integrations_page_lists_and_filters_mappings(staff, django_assert_max_num_queries):
    customers = make_mixed_catalog()
    CatalogIntegration.objects.create(
        catalog_item=customers["synced"][0],
        integration_type="salesforce",
        integration_id="003XYZ",
        status="failed",
        last_error="Salesforce is down",
    )
    # As above, plus the integration types of the filter.
    with django_assert_max_num_queries(8):
        html = staff.get("/integrations/").content.decode()
    assert html.count("data-mapping-id=") == 10
    assert "Salesforce is down" in html and "003XYZ" in html and customers["failed"][0].email in html
    assert '<option value="salesforce">' in html and '<option value="stripe">' in html

    assert staff.get("/integrations/?type=salesforce").content.decode().count("data-mapping-id=") == 1
    failed_stripe = staff.get("/integrations/?type=stripe&status=failed").content.decode()
    assert failed_stripe.count("data-mapping-id=") == 2 and "Salesforce is down" not in failed_stripe

    partial = staff.get("/integrations/?status=failed&partial=1").content.decode()
    assert "<html" not in partial and partial.count("data-mapping-id=") == 3


# --- Admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-123"))
    return client


def test_admin_customer_list_shows_and_filters_sync_status(admin_client_, django_assert_max_num_queries):
    customers = make_mixed_catalog()
    CustomerFactory.create_batch(20)
    with django_assert_max_num_queries(13):
        html = admin_client_.get("/admin/catalog/customer/").content.decode()
    assert "Sync status" in html and ">Failed</strong>" in html and ">Unsynced</strong>" in html
    failed_only = admin_client_.get("/admin/catalog/customer/?sync_status=failed").content.decode()
    assert failed_only.count(">Failed</strong>") == 2 and ">Synced</strong>" not in failed_only
    assert str(customers["failed"][0].email) in failed_only
    unsynced_only = admin_client_.get("/admin/catalog/customer/?sync_status=unsynced").content.decode()
    assert unsynced_only.count(">Unsynced</strong>") == 1
    # Sortable by status (the sixth column), and the integrations admin still browses.
    by_status = admin_client_.get("/admin/catalog/customer/?o=6").content.decode()
    shown = re.findall(r">(Synced|Pending|Failed|Unsynced)</strong>", by_status)
    assert len(shown) == 30 and shown == sorted(shown)
    assert admin_client_.get("/admin/catalog/catalogintegration/").status_code == 200


def test_admin_action_resyncs_the_selected_customers(admin_client_):
    customers = make_mixed_catalog()
    chosen = customers["failed"] + customers["unsynced"]
    outbox_before = OutboxMessage.objects.count()
    response = admin_client_.post(
        "/admin/catalog/customer/",
        {"action": "resync_selected", "_selected_action": [c.pk for c in chosen]},
        follow=True,
    )
    assert "Resync requested for 3 customers." in response.content.decode()
    for customer in chosen:
        assert CatalogIntegration.objects.get(catalog_item=customer).status == SyncStatus.PENDING
    assert OutboxMessage.objects.count() == outbox_before + 3


def test_admin_exports_and_imports_customers_as_csv(admin_client_):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import Customer

    existing = Customer.objects.create(name="Ada", email="ada@example.com")
    export = admin_client_.post(
        "/admin/catalog/customer/", {"action": "export_csv", "_selected_action": [existing.pk]}
    )
    assert export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0] == ",".join(EXPORT_COLUMNS) and lines[1].startswith(f"{existing.pk},Ada,ada@example.com,")

    upload = (
        "id,name,email\n"
        f"{existing.pk},Ada Lovelace,ada@example.com\n"
        ",Grace,grace@example.com\n"
        ",,not-an-email\n"
        ",Dup,GRACE@example.com\n"
    ).encode()
    page = admin_client_.get("/admin/catalog/customer/").content.decode()
    assert "/admin/catalog/customer/import-csv/" in page
    response = admin_client_.post(
        "/admin/catalog/customer/import-csv/", {"file": SimpleUploadedFile("c.csv", upload, "text/csv")}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 of 4 rows saved." in html and "Rows not saved" in html
    assert "not-an-email" not in html or "Enter a valid email address." in html
    existing.refresh_from_db()
    assert existing.name == "Ada Lovelace"
    assert sorted(Customer.objects.values_list("email", flat=True)) == ["ada@example.com", "grace@example.com"]

    bad = admin_client_.post(
        "/admin/catalog/customer/import-csv/", {"file": SimpleUploadedFile("c.csv", b"foo,bar\n1,2\n", "text/csv")}
    )
    assert "The first line must name the columns" in bad.content.decode()


EXPORT_COLUMNS = [
    "id",
    "name",
    "email",
    "phone",
    "description",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "metadata",
    "preferred_locales",
    "sync_status",
]


def read_csv(text: str) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def upload(client: Client, text: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        "/admin/catalog/customer/import-csv/", {"file": SimpleUploadedFile("c.csv", text.encode(), "text/csv")}
    )


def failed_rows(html: str) -> dict[int, str]:
    """Row number -> its errors, from the import page's table of rows not saved."""
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", html, re.DOTALL)
    def text(errors: str) -> str:  # one line per field: "column: messages"
        return "\n".join(html_module.unescape(re.sub(r"<[^>]+>", "", line)) for line in errors.split("</div>") if line)

    return {int(number): text(errors) for number, errors in rows}


def test_admin_exports_every_field_as_csv(admin_client_):
    ada = CustomerFactory(
        name="Ada",
        email="ada@example.com",
        phone="+44 20 7946 0000",
        description="Line one\nline two",
        address_line1="12 St James's Square",
        address_city="London",
        address_postal_code="SW1Y 4JH",
        address_country="GB",
        metadata={"plan": "gold", "note": "café, \"quoted\""},
        preferred_locales=["en-GB", "fr"],
    )
    bare = CustomerFactory(name="Bare", email=None)
    failed(ada)
    export = admin_client_.post(
        "/admin/catalog/customer/", {"action": "export_csv", "_selected_action": [ada.pk, bare.pk]}
    )
    text = export.content.decode()
    assert text.splitlines()[0] == ",".join(EXPORT_COLUMNS)
    first, second = read_csv(text)
    assert first == {
        "id": str(ada.pk),
        "name": "Ada",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "description": "Line one\nline two",
        "address_line1": "12 St James's Square",
        "address_line2": "",
        "address_city": "London",
        "address_state": "",
        "address_postal_code": "SW1Y 4JH",
        "address_country": "GB",
        "metadata": '{"note": "café, \\"quoted\\"", "plan": "gold"}',
        "preferred_locales": "en-GB,fr",
        "sync_status": "failed",
    }
    assert second["metadata"] == "{}" and second["preferred_locales"] == "" and second["address_country"] == ""

    # Imported back, the export changes nothing.
    queued = OutboxMessage.objects.count()
    html = upload(admin_client_, text).content.decode()
    assert "2 of 2 rows saved." in html
    assert OutboxMessage.objects.count() == queued
    ada.refresh_from_db()
    assert ada.metadata == {"plan": "gold", "note": 'café, "quoted"'} and ada.preferred_locales == ["en-GB", "fr"]


def test_admin_imports_every_field_from_csv(admin_client_):
    ada = CustomerFactory(
        name="Ada",
        email="ada@example.com",
        phone="+1 555 0100",
        address_city="London",
        address_country="GB",
        metadata={"plan": "gold"},
    )
    text = (
        "id,name,email,phone,address_line1,address_country,metadata,preferred_locales,colour\n"
        # Updates Ada: only the columns named (her city is kept), metadata replaced.
        f"{ada.pk},Ada Lovelace,ada@example.com,+44 20 7946 0000,12 St James's Square,gb,"
        '"{""tier"": ""2""}","en-GB, fr",red\n'
        # Creates Grace.
        ',Grace,grace@example.com,+1 555 0101,1 Navy Way,US,"{""rank"": ""admiral""}",en-US,blue\n'
        # Bad rows: each reported with its field's error, none saved.
        ",Bad country,bad1@example.com,,,XX,,,\n"
        ",Long phone,bad2@example.com,000000000000000000000,,,,,\n"
        ',Reserved key,bad3@example.com,,,,"{""local_id"": ""7""}",,\n'
        ",Not JSON,bad4@example.com,,,,{plan: gold},,\n"
        ',Bad locale,bad5@example.com,,,,"[""x""]",fr_FR,\n'
        "999999,Nobody,,,,,,,\n"
    )
    response = upload(admin_client_, text)
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 of 8 rows saved." in html and "Rows not saved" in html
    errors = failed_rows(html)
    assert sorted(errors) == [4, 5, 6, 7, 8, 9]
    assert errors[4] == 'address_country: "XX" is not a valid choice.'
    assert errors[5] == "phone: Ensure this field has no more than 20 characters."
    assert errors[6] == "metadata: Key 'local_id' is reserved for the hub."
    assert errors[7].startswith("metadata: Not JSON text")
    assert errors[8].splitlines() == [
        'metadata: Expected a dictionary of items but got type "list".',
        "preferred_locales: 'fr_FR' is not a language tag such as en or fr-FR.",
    ]
    assert errors[9] == "id: No such customer."

    ada.refresh_from_db()
    assert (ada.name, ada.phone, ada.metadata, ada.preferred_locales) == (
        "Ada Lovelace",
        "+44 20 7946 0000",
        {"tier": "2"},
        ["en-GB", "fr"],
    )
    assert ada.address == {
        "line1": "12 St James's Square",
        "line2": "",
        "city": "London",
        "state": "",
        "postal_code": "",
        "country": "GB",
    }
    grace = Customer.objects.get(email="grace@example.com")
    assert (grace.name, grace.phone, grace.address["line1"], grace.address["country"]) == (
        "Grace",
        "+1 555 0101",
        "1 Navy Way",
        "US",
    )
    assert grace.metadata == {"rank": "admiral"} and grace.preferred_locales == ["en-US"]
    assert not Customer.objects.filter(email__startswith="bad").exists()
    # Saved through the services: each queued its sync.
    assert OutboxMessage.objects.filter(key=str(grace.pk)).exists()

    # A file with only unknown columns is refused as a whole.
    refused = upload(admin_client_, "colour,size\nred,9\n").content.decode()
    assert "The first line must name the columns" in refused and "address_country" in refused


def test_admin_lists_searches_and_edits_the_new_fields(admin_client_):
    ada = CustomerFactory(name="Ada", phone="+44 20 7946 0000", address_country="GB")
    CustomerFactory(name="Grace", phone="+1 555 0101", address_country="US")
    html = admin_client_.get("/admin/catalog/customer/").content.decode()
    assert "column-phone" in html and "column-address_country" in html
    assert "+44 20 7946 0000" in html and "United Kingdom" in html
    found = admin_client_.get("/admin/catalog/customer/?q=7946").content.decode()
    assert "+44 20 7946 0000" in found and "+1 555 0101" not in found

    page = admin_client_.get(f"/admin/catalog/customer/{ada.pk}/change/").content.decode()
    assert "<h2" in page and ">Address<" in page and 'name="address_line1"' in page and 'name="metadata"' in page
    base = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "description": "",
        "address_line1": "12 St James's Square",
        "address_line2": "",
        "address_city": "London",
        "address_state": "",
        "address_postal_code": "",
        "address_country": "GB",
        "metadata": "plan=gold",
        "preferred_locales": "en-GB, fr",
        "integrations-TOTAL_FORMS": "0",
        "integrations-INITIAL_FORMS": "0",
    }
    # The API's rules: the same errors as the console's form.
    for changes, message in [
        ({"phone": "0" * 21}, "Ensure this field has no more than 20 characters."),
        ({"metadata": "local_id=1"}, "Key &#x27;local_id&#x27; is reserved for the hub."),
        ({"metadata": "nonsense"}, "is not key=value."),
        ({"preferred_locales": "fr_FR"}, "is not a language tag"),
    ]:
        response = admin_client_.post(f"/admin/catalog/customer/{ada.pk}/change/", {**base, **changes})
        assert response.status_code == 200 and message in response.content.decode(), changes
    queued = OutboxMessage.objects.filter(key=str(ada.pk)).count()
    response = admin_client_.post(f"/admin/catalog/customer/{ada.pk}/change/", base)
    assert response.status_code == 302, response.content.decode()
    ada.refresh_from_db()
    assert (ada.name, ada.address["line1"], ada.metadata, ada.preferred_locales) == (
        "Ada Lovelace",
        "12 St James's Square",
        {"plan": "gold"},
        ["en-GB", "fr"],
    )
    assert OutboxMessage.objects.filter(key=str(ada.pk)).count() == queued + 1

    response = admin_client_.post("/admin/catalog/customer/add/", {**base, "email": "new@example.com"})
    assert response.status_code == 302, response.content.decode()
    new = Customer.objects.get(email="new@example.com")
    assert new.metadata == {"plan": "gold"} and new.address["country"] == "GB"
    # The admin's object took the saved row's id: its history names the new customer.
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.filter(object_id=str(new.pk), action_flag=1).exists()
    duplicate = admin_client_.post("/admin/catalog/customer/add/", {**base, "email": "NEW@example.com"})
    assert duplicate.status_code == 200 and "A customer with this email already exists." in duplicate.content.decode()
    assert "customer_email_key_unique" not in duplicate.content.decode()
