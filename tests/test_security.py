"""Who may do what (Django's model permissions, the two groups), login lockouts and throttles."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.models import Customer
from sync.groups import OPERATORS, VIEWERS

from .conftest import ARTIFACTS
from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "wrong_token", "plain", "viewer", "operator", "superuser"]


def make_user(role: str, **extra):
    User = get_user_model()
    if role == "superuser":
        return User.objects.create_superuser(f"su-{role}", password="pw-Secret-123")
    user = User.objects.create_user(f"user-{role}", password="pw-Secret-123", is_staff=role != "plain", **extra)
    if role in ("viewer", "operator"):
        user.groups.add(Group.objects.get(name=VIEWERS if role == "viewer" else OPERATORS))
    return user


def api_as(role: str) -> APIClient:
    client = APIClient()
    if role == "wrong_token":
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    elif role != "anonymous":
        token = Token.objects.create(user=make_user(role))
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")  # tokens act with their user's permissions
    return client


READ, WRITE = "read", "write"
# (method, path, body, kind); {id} is an existing customer.
API_CALLS = [
    ("get", "/api/customers", None, READ),
    ("get", "/api/customers/{id}", None, READ),
    ("get", "/api/customers/{id}/integration-status", None, READ),
    ("get", "/api/integrations", None, READ),
    ("get", "/api/sync-events", None, READ),
    ("post", "/api/customers", {"name": "New", "email": "new@example.com"}, WRITE),
    ("patch", "/api/customers/{id}", {"name": "Renamed"}, WRITE),
    ("put", "/api/customers/{id}", {"name": "Put", "email": "put@example.com"}, WRITE),
    ("post", "/api/customers/bulk", {"customers": [{"name": "Bulk"}]}, WRITE),
    ("post", "/api/customers/bulk", {"customers": [{"id": "{id}", "name": "Bulk update"}]}, WRITE),
    ("delete", "/api/customers/{id}", None, WRITE),
]
EXPECTED = {
    "anonymous": {READ: 401, WRITE: 401},
    "wrong_token": {READ: 401, WRITE: 401},
    "plain": {READ: 403, WRITE: 403},
    "viewer": {READ: 200, WRITE: 403},
    "operator": {READ: 200, WRITE: "ok"},
    "superuser": {READ: 200, WRITE: "ok"},
}


def call(client, method: str, path: str, body, customer_id: int):
    path = path.replace("{id}", str(customer_id))
    if body is not None:
        body = {
            k: [{**row, "id": customer_id} if row.get("id") else row for row in v] if k == "customers" else v
            for k, v in body.items()
        }
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("role", ROLES)
def test_api_permission_matrix(role):
    client = api_as(role)
    rows = []
    for method, path, body, kind in API_CALLS:
        customer = CustomerFactory()
        response = call(client, method, path, body, customer.pk)
        expected = EXPECTED[role][kind]
        rows.append(f"{role:12} {method.upper():6} {path:42} {response.status_code}")
        if expected == "ok":
            assert 200 <= response.status_code < 300, (method, path, response.status_code, response.content)
        else:
            assert response.status_code == expected, (method, path, response.status_code, response.content)
        if kind == WRITE and expected != "ok":
            customer.refresh_from_db()
            assert customer.name.startswith("Customer")  # nothing changed
    with open(ARTIFACTS / "permission-matrix.txt", "a") as out:
        out.write("\n".join(rows) + "\n")


def test_integrations_and_sync_events_are_read_only_even_for_operators():
    client = api_as("operator")
    assert client.post("/api/integrations", {}, format="json").status_code == 405
    assert client.post("/api/sync-events", {}, format="json").status_code == 405


def test_a_user_granted_only_view_customer_can_read_but_not_delete():
    user = make_user("plain")
    user.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client = APIClient()
    client.force_authenticate(user)
    customer = CustomerFactory()
    assert client.get(f"/api/customers/{customer.pk}").status_code == 200
    assert client.delete(f"/api/customers/{customer.pk}").status_code == 403
    assert client.get("/api/integrations").status_code == 403  # mappings need their own view permission
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_bulk_updates_need_the_change_permission_too():
    user = make_user("plain")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_customer", "view_customer"]))
    client = APIClient()
    client.force_authenticate(user)
    customer = CustomerFactory()
    assert client.post("/api/customers/bulk", {"customers": [{"name": "Only new"}]}, format="json").status_code == 200
    rows = {"customers": [{"name": "New"}, {"id": customer.pk, "name": "Changed"}]}
    assert client.post("/api/customers/bulk", rows, format="json").status_code == 403
    customer.refresh_from_db()
    assert customer.name != "Changed"


CONSOLE_PAGES = [
    ("get", "/", READ),
    ("get", "/console/stats.json", READ),
    ("get", "/customers/", READ),
    ("get", "/customers/statuses.json?ids={id}", READ),
    ("get", "/integrations/", READ),
    ("get", "/customers/new/", WRITE),
    ("get", "/customers/{id}/edit/", WRITE),
    ("post", "/customers/{id}/edit/", WRITE),
    ("get", "/customers/{id}/delete/", WRITE),
    ("post", "/customers/{id}/resync/", WRITE),
    ("post", "/customers/{id}/delete/", WRITE),
]
CONSOLE_EXPECTED = {
    "anonymous": {READ: "login", WRITE: "login"},
    "plain": {READ: "login", WRITE: "login"},  # not staff: the console is for staff
    "staff_without_permissions": {READ: 403, WRITE: 403},
    "viewer": {READ: 200, WRITE: 403},
    "operator": {READ: 200, WRITE: "ok"},
    "superuser": {READ: 200, WRITE: "ok"},
}


@pytest.mark.parametrize("role", list(CONSOLE_EXPECTED))
def test_console_permission_matrix(role):
    client = Client()
    if role == "staff_without_permissions":
        client.force_login(get_user_model().objects.create_user("bare", password="pw-Secret-123", is_staff=True))
    elif role != "anonymous":
        client.force_login(make_user(role))
    rows = []
    for method, path, kind in CONSOLE_PAGES:
        customer = CustomerFactory()
        url = path.replace("{id}", str(customer.pk))
        data = {"name": "Console edit", "email": customer.email} if url.endswith("/edit/") else {}
        response = getattr(client, method)(url, data)
        expected = CONSOLE_EXPECTED[role][kind]
        rows.append(f"console {role:26} {method.upper():5} {path:36} {response.status_code}")
        if expected == "login":
            assert response.status_code == 302 and "/login/" in response["Location"], (url, response.status_code)
        elif expected == "ok":
            assert response.status_code in (200, 302), (url, response.status_code)
        else:
            assert response.status_code == expected, (url, response.status_code)
    with open(ARTIFACTS / "permission-matrix.txt", "a") as out:
        out.write("\n".join(rows) + "\n")


def test_the_console_shows_only_the_actions_the_user_may_take():
    CustomerFactory(name="Shown")
    viewer, operator = Client(), Client()
    viewer.force_login(make_user("viewer"))
    operator.force_login(make_user("operator"))
    viewer_page = viewer.get("/customers/").content.decode()
    operator_page = operator.get("/customers/").content.decode()
    assert "Shown" in viewer_page
    for action in ("Add customer", "/edit/", "/delete/", "/resync/"):
        assert action not in viewer_page, action
        assert action in operator_page, action


def test_the_groups_hold_every_permission_and_the_view_ones():
    operators = set(Group.objects.get(name=OPERATORS).permissions.values_list("codename", flat=True))
    viewers = set(Group.objects.get(name=VIEWERS).permissions.values_list("codename", flat=True))
    assert {"add_customer", "delete_customer", "resync_catalogintegration", "replay_deadletter"} <= operators
    assert viewers == {codename for codename in operators if codename.startswith("view_")}
    assert "view_tombstone" in viewers and "view_syncevent" in viewers


# --- Logins and throttles -------------------------------------------------------------------------


@pytest.mark.parametrize("login_url", ["/login/", "/admin/login/", "/api-auth/login/"])
def test_repeated_wrong_passwords_lock_the_login_out_until_an_operator_unlocks_it(login_url, settings):
    from django.core.management import call_command

    user = make_user("operator")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(login_url, {"username": user.username, "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    assert client.post(login_url, {"username": user.username, "password": "wrong"}).status_code == 429
    locked = client.post(login_url, {"username": user.username, "password": "pw-Secret-123"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content and b"axes_reset_username" in locked.content
    assert "_auth_user_id" not in client.session

    call_command("axes_reset_username", user.username)
    unlocked = client.post(login_url, {"username": user.username, "password": "pw-Secret-123"})
    assert unlocked.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_api_requests_over_the_user_rate_get_429_with_retry_after(monkeypatch):
    from rest_framework.throttling import UserRateThrottle

    monkeypatch.setitem(UserRateThrottle.THROTTLE_RATES, "user", "5/min")
    client = api_as("viewer")
    statuses = [client.get("/api/customers").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    response = client.get("/api/customers")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_guessing_tokens_gets_429_with_retry_after(monkeypatch):
    from synchub.throttling import FailedAuthenticationThrottle

    monkeypatch.setitem(FailedAuthenticationThrottle.THROTTLE_RATES, "failed_auth", "10/min")
    statuses = []
    for attempt in range(12):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token guess-{attempt}")
        response = client.get("/api/customers")
        statuses.append(response.status_code)
    assert statuses == [401] * 10 + [429] * 2
    assert int(response["Retry-After"]) > 0
    # Even the right token waits: the address is throttled, not the token.
    client = api_as("viewer")
    assert client.get("/api/customers").status_code == 429


def test_the_webhook_is_not_throttled(kafka, webhook_secret, monkeypatch):
    from rest_framework.throttling import AnonRateThrottle

    from .helpers import stripe_event, stripe_signature

    monkeypatch.setitem(AnonRateThrottle.THROTTLE_RATES, "anon", "2/min")
    for index in range(5):
        body = stripe_event("customer.updated", {"id": f"cus_t{index}", "name": "T"})
        response = Client().post(
            "/webhooks/stripe",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=stripe_signature(body, webhook_secret),
        )
        assert response.status_code == 200
