"""Fixtures on real parts: a Tansu broker and localstripe, started once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.processes import free_port, localstripe_command, start, stop, tansu_command, wait_for_port

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).resolve().parent.parent / "test-artifacts"))
ARTIFACTS.mkdir(parents=True, exist_ok=True)
# pytest-xdist's worker ("gw0", "gw1", ...) when `make test` runs the suite in parallel: files one
# process writes for the whole session are its own.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
SESSION_SUFFIX = f"-{XDIST_WORKER}" if XDIST_WORKER else ""

# Tansu holds a consumer group's first join for the whole rebalance timeout (max_poll_interval).
TEST_MAX_POLL_INTERVAL_MS = 3000


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    port = free_port()
    process = start(tansu_command(port), log_path=ARTIFACTS / f"tansu-unit{SESSION_SUFFIX}.log")
    wait_for_port(port)
    yield f"127.0.0.1:{port}"
    stop(process)


@pytest.fixture(scope="session")
def stripe_base() -> str:
    port = free_port()
    process = start(localstripe_command(port), log_path=ARTIFACTS / f"localstripe-unit{SESSION_SUFFIX}.log")
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture
def kafka(kafka_bootstrap, settings):
    """Point the hub's Kafka clients at the session's broker."""
    from sync import kafka as sync_kafka

    settings.KAFKA_BOOTSTRAP_SERVERS = [kafka_bootstrap]
    settings.KAFKA_API_VERSION = "2.5.0"
    settings.KAFKA_MAX_POLL_INTERVAL_MS = TEST_MAX_POLL_INTERVAL_MS
    settings.KAFKA_SESSION_TIMEOUT_MS = 6000
    settings.KAFKA_HEARTBEAT_INTERVAL_MS = 1000
    settings.SYNC_RETRY_BACKOFF_SECONDS = 0.05
    settings.SYNC_RETRY_BACKOFF_MAX_SECONDS = 0.2
    sync_kafka.reset_producer()
    yield kafka_bootstrap
    sync_kafka.reset_producer()


@pytest.fixture
def stripe_sandbox(stripe_base, settings):
    """Point the hub's Stripe client at the session's localstripe, wiped before each test."""
    import urllib.request

    from integrations.stripe.client import stripe_client

    urllib.request.urlopen(urllib.request.Request(f"{stripe_base}/_config/data", method="DELETE")).read()
    settings.STRIPE_API_KEY = "sk_test_unit"
    settings.STRIPE_API_BASE = stripe_base
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    stripe_client.cache_clear()
    yield stripe_client()
    stripe_client.cache_clear()


@pytest.fixture
def webhook_secret(settings) -> str:
    settings.STRIPE_WEBHOOK_SECRET = "whsec_unit_test"
    return settings.STRIPE_WEBHOOK_SECRET


@pytest.fixture
def staff_user(db):
    """An operator: staff, in the "Sync operators" group (every permission of the hub)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from sync.groups import OPERATORS

    user = get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))
    return user


@pytest.fixture
def api_client(staff_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(staff_user)
    return client


def pytest_collection_modifyitems(items):
    if XDIST_WORKER:
        # In parallel (`make test`: one test file at a time per worker, in this order) the longest
        # files start first, so that no fault scenario is left to run alone at the end.
        items.sort(key=lambda item: ("faults" not in item.keywords, "e2e" not in item.keywords))
    else:
        # In one process the slow end-to-end tests come last, so a quick failure shows first.
        items.sort(key=lambda item: "e2e" in item.keywords)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle and lockout counts live in the cache: each test starts from none."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _plain_http_test_client(settings):
    # DEBUG is off, so production's HTTPS redirect is on; the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is True


@pytest.fixture(autouse=True)
def _no_webhook_endpoint_yet():
    """Each test starts without webhook endpoints (its database is empty), and the process
    knows it without a query: statement counts stay those of the code under test. A test that
    saves an endpoint makes the process ask again (integrations/webhooks/apps.py)."""
    import time

    from integrations.webhooks import services

    services._active = (time.monotonic(), False)
    yield
