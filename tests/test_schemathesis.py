"""Schemathesis against the hub over real HTTP: no generated input may get a 5xx, and every
answer must be one the OpenAPI schema documents, with the body shape it documents.

The hub runs in a live server (Django's LiveServerThread through pytest-django: a real HTTP
server in a thread of this process, on the test database), so this is no end-to-end test: it
starts no process. Schemathesis' own engine (what `schemathesis run` drives) runs its coverage
phase (boundary values: huge integers, odd date-times, wrong types...) and its fuzzing phase,
positive and negative, over every operation of the schema the live server serves, authenticated
as a superuser, with a fixed seed and no cache, so every run sends the same requests. Figures of
the last run land in test-artifacts/schemathesis.txt.
"""

from __future__ import annotations

import socket
import time
from collections import Counter, defaultdict

import pytest
import requests
import schemathesis
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connection
from schemathesis.engine import events, from_schema

from catalog.models import CatalogIntegration, CatalogItem, Customer, Invoice, InvoiceStatus
from catalog.services import integration_record_synced
from sync.models import SyncEvent

from .conftest import ARTIFACTS

# Fuzzing examples per operation; the coverage phase adds its own (~2,000 requests in all).
MAX_EXAMPLES = 30
SEED = 20261201
CHECKS = ["not_a_server_error", "response_schema_conformance", "status_code_conformance"]
# Needs a Stripe signature, which generated requests cannot have (tests/test_webhook.py covers it).
EXCLUDED_OPERATIONS = ["webhooks_stripe_create"]


class _TestWSGIServer(ThreadedWSGIServer):
    """Django's test server, with Nagle's algorithm off: it writes the headers and the body of a
    response apart, and the second write waited for the client's delayed ACK, 40 ms a request.

    When it stops, it ends the connections still open (schemathesis keeps them alive) and joins
    their threads, so that none still holds a database connection when the test database is
    dropped.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[socket.socket] = set()

    def get_request(self):
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.open_connections.add(client)
        return client, address

    def shutdown_request(self, request) -> None:
        self.open_connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        for client in list(self.open_connections):
            try:
                client.shutdown(socket.SHUT_RDWR)  # its thread reads the end and finishes
            except OSError:
                pass
        super().server_close()


@pytest.fixture
def hub_url(transactional_db, settings) -> str:
    """The hub in a live server of this test's own (not pytest-django's session-wide
    `live_server`): its middleware must be built after the test settings (plain HTTP) apply."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("127.0.0.1", start=False)
    server.thread.server_class = _TestWSGIServer
    server.start()
    with server._live_server_modified_settings:
        yield server.url
    server.stop()


@pytest.fixture
def superuser_token(transactional_db) -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("fuzz", password="pw-fuzz-123")
    return Token.objects.create(user=user).key


@pytest.fixture
def some_rows(transactional_db) -> None:
    """A few of everything, so that ids in paths and filters sometimes hit a row."""
    for number in range(1, 6):
        customer = Customer.objects.create(name=f"Customer {number}", email=f"c{number}@example.com")
        integration_record_synced(item_id=customer.pk, integration_type="stripe", integration_id=f"cus_{number}")
        SyncEvent.objects.create(
            direction="outward",
            integration="stripe",
            task="stripe.push_customer",
            item_id=customer.pk,
            action="upsert",
            outcome="succeeded",
            external_id=f"cus_{number}",
        )
    # Mappings whose customer has no email, and whose item is no customer: null customer fields.
    without_email = Customer.objects.create(name="No email", email=None)
    CatalogIntegration.objects.create(catalog_item=without_email, integration_type="other")
    CatalogIntegration.objects.create(catalog_item=CatalogItem.objects.create(), integration_type="other")
    # Invoices in every status, twice over: edits, deletes and lifecycle actions meet drafts and
    # finalized invoices alike (their 409s included), and customers with invoices (a 409 to delete).
    for customer in Customer.objects.filter(name__in=["Customer 1", "Customer 2"]):
        for status in InvoiceStatus.values:
            line = {"description": "x", "quantity": 1, "unit_amount": 100}
            Invoice.objects.create(customer=customer, currency="eur", status=status, lines=[line])


@pytest.fixture
def unthrottled(monkeypatch) -> None:
    """The user throttle lifted (API_THROTTLE_USER): thousands of requests in a minute would
    otherwise be mostly 429s, which the schema documents but which test nothing else.
    tests/test_security.py tests the throttles."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "user": None})


def _run(schema) -> tuple[list[str], Counter, dict[str, Counter], list[str]]:
    """Run the engine; returns the operations, failed checks by name, the statuses seen per
    operation, and the failures' reports."""
    statuses: dict[str, Counter] = defaultdict(Counter)
    failures: list[str] = []
    failed_checks: Counter = Counter()

    @schema.hook
    def after_call(context, case, response) -> None:
        statuses[case.operation.label][response.status_code] += 1

    schema = schema.exclude(operation_id=EXCLUDED_OPERATIONS)
    operations = [result.ok().label for result in schema.get_all_operations()]
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failed_checks[check.name] += 1
                    failure = check.failure_info.failure
                    failures.append(
                        f"{event.recorder.label} [{check.name}] {failure.title}\n{failure.message}\n"
                        f"    {check.failure_info.code_sample}"
                    )
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error {event.info.title}: {event.info.message}")
    return operations, failed_checks, statuses, failures


def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(hub_url, superuser_token, some_rows, unthrottled):
    headers = {"Authorization": f"Token {superuser_token}"}
    # The schema is what the live server serves, not a copy: what it says is what is checked.
    assert requests.get(f"{hub_url}/api/schema?format=json", headers=headers, timeout=30).ok
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "continue-on-failure": True,
            # No state carried between runs (schemathesis' cache, Hypothesis' example database):
            # a run must not depend on the ones before it.
            "cache": {"enabled": False},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            # The schema has no examples to replay; links between operations are not declared.
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    schema = schemathesis.openapi.from_url(
        f"{hub_url}/api/schema?format=json", config=config, headers=headers, timeout=30
    )

    started = time.monotonic()
    operations, failed_checks, statuses, failures = _run(schema)
    elapsed = time.monotonic() - started

    requests_sent = sum(sum(counter.values()) for counter in statuses.values())
    server_errors = sum(n for counter in statuses.values() for status, n in counter.items() if status >= 500)
    mismatches = failed_checks["response_schema_conformance"] + failed_checks["status_code_conformance"]
    lines = [
        f"schemathesis {schemathesis.__version__} on {connection.vendor}, seed {SEED}, coverage and fuzzing phases, "
        f"positive and negative, max examples {MAX_EXAMPLES} per operation; {elapsed:.0f} s",
        f"checks: {', '.join(CHECKS)}",
        f"operations: {len(operations)} (excluded: {', '.join(EXCLUDED_OPERATIONS)})",
        f"requests: {requests_sent}",
        f"5xx: {server_errors}",
        f"schema mismatches: {mismatches} "
        f"(response schema {failed_checks['response_schema_conformance']}, "
        f"undocumented status {failed_checks['status_code_conformance']})",
        "",
        "per operation (status: count):",
        *(
            f"  {label}: " + ", ".join(f"{status}: {n}" for status, n in sorted(statuses[label].items()))
            for label in sorted(statuses)
        ),
        "",
        f"failures: {len(failures)}",
        *failures,
    ]
    (ARTIFACTS / "schemathesis.txt").write_text("\n".join(lines) + "\n")

    assert len(operations) == len(statuses) >= 9  # every operation was called
    assert requests_sent > len(operations) * MAX_EXAMPLES
    assert not any(429 in counter for counter in statuses.values()), "throttled: the run tested less than it says"
    assert server_errors == 0 and not failures, "\n".join(lines[:6] + failures[:10])
