"""The Content-Security-Policy on every kind of page: the console, the admin, the API and /docs.

The browser tests (tests/test_browser.py) show that no page breaks it; these show that each page
sends it, and that the rendered HTML has no inline script or style for it to block.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

STRICT = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
HTML = {"HTTP_ACCEPT": "text/html"}


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


def inline_code(html: str) -> list[str]:
    """Inline scripts, event handlers, javascript: links, <style> elements and style attributes."""
    found = [m.group(0) for m in re.finditer(r"<script\b(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html)]
    found += re.findall(r"<[a-z][^>]*\son[a-z]+=[^>]*>", html)
    found += re.findall(r"javascript:", html)
    found += re.findall(r"<style\b[^>]*>", html)
    found += re.findall(r"<[a-z][^>]*\sstyle=[^>]*>", html)
    return found


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123"))
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/customers/",
        "/customers/new/",
        "/customers/1/edit/",
        "/integrations/",
        "/admin/",
        "/admin/catalog/customer/",
        "/admin/catalog/customer/1/change/",
        "/admin/catalog/customer/add/",
        "/admin/catalog/customer/import-csv/",
        "/admin/catalog/catalogintegration/",
        "/admin/sync/syncevent/",
        "/docs",
    ],
)
def test_console_admin_and_docs_pages_run_only_our_own_files(admin_client, path):
    CustomerFactory(pk=1)
    response = admin_client.get(path)
    assert response.status_code == 200, path
    assert policy(response) == STRICT
    assert inline_code(response.content.decode()) == []


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_login_pages_too(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert policy(response) == STRICT
    assert inline_code(response.content.decode()) == []


def test_swagger_ui_start_up_script_is_a_file_of_its_own(admin_client):
    page = admin_client.get("/docs").content.decode()
    [script_url] = re.findall(r'<script src="(/docs\?[^"]*)"', page)
    script = admin_client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()
    assert "/static/console/api-docs.css" in page  # its page rules, instead of an inline <style>


@pytest.mark.parametrize("path", ["/api/customers", "/api/customers/1", "/api/sync-events", "/api-auth/login/"])
def test_drf_pages_may_use_style_attributes_only(admin_client, path):
    """DRF's templates put style attributes everywhere (synchub/csp.py); nothing else is allowed."""
    CustomerFactory(pk=1)
    response = admin_client.get(path, **HTML)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert policy(response) == {**STRICT, "style-src-attr": ["'unsafe-inline'"]}
    html = response.content.decode()
    assert [code for code in inline_code(html) if " style=" not in code] == []


def test_the_json_api_sends_the_policy_too(admin_client):
    response = admin_client.get("/api/customers", HTTP_ACCEPT="application/json")
    assert response["Content-Type"] == "application/json"
    assert policy(response) == STRICT


def test_the_browsable_api_logs_out_with_a_form_not_an_onclick(admin_client):
    html = admin_client.get("/api/customers", **HTML).content.decode()
    assert "onclick" not in html
    [form] = re.findall(r'<form method="post" action="/api-auth/logout/[^"]*">', html)
    assert "next=/api/customers" in form
    response = admin_client.post("/api-auth/logout/?next=/api/customers")
    assert response.status_code == 302
    assert admin_client.get("/api/customers", HTTP_ACCEPT="application/json").status_code in (401, 403)


def test_webhook_answers_carry_no_policy_they_are_never_rendered(client, settings):
    """Stripe's servers read them: the policy is neither built nor sent (synchub/csp.py)."""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_unit_test"
    response = client.post("/webhooks/stripe", b"{}", content_type="application/json")
    assert response.status_code == 400
    assert "Content-Security-Policy" not in response.headers
    assert policy(client.get("/login/")) == STRICT  # the pages keep theirs
