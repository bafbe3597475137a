"""/health and /metrics."""

import pytest
from django.test import Client

from sync import kafka as sync_kafka
from sync.models import OutboxMessage

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


HEALTH_TOKEN = "health-token-for-tests"


@pytest.fixture
def health_token(settings) -> str:
    settings.HEALTH_TOKEN = HEALTH_TOKEN
    return HEALTH_TOKEN


def test_health_is_200_when_database_kafka_and_stripe_answer(kafka, stripe_sandbox, health_token):
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # anyone: the status only

    body = Client().get("/health", HTTP_AUTHORIZATION=f"Bearer {health_token}").json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "kafka", "stripe", "webhooks"}
    assert all(check["ok"] for check in body["checks"].values())


def test_health_is_503_without_details_for_anyone_when_the_broker_is_down(
    kafka, stripe_sandbox, settings, health_token, caplog
):
    settings.KAFKA_BOOTSTRAP_SERVERS = ["127.0.0.1:9"]
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
    with caplog.at_level("WARNING", logger="sync.views"):
        response = Client().get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    # The error (it names the broker's address) is logged instead.
    [record] = [r for r in caplog.records if r.name == "sync.views"]
    assert record.levelname == "WARNING" and record.getMessage().startswith("health check kafka failed: ")

    for headers in ({"HTTP_AUTHORIZATION": f"Bearer {health_token}"}, {"HTTP_X_HEALTH_TOKEN": health_token}):
        response = Client().get("/health", **headers)
        body = response.json()
        assert response.status_code == 503 and body["status"] == "unavailable"
        assert body["checks"]["kafka"]["ok"] is False and body["checks"]["kafka"]["error"]
        assert body["checks"]["database"]["ok"] is True and body["checks"]["stripe"]["ok"] is True

    for headers in ({"HTTP_AUTHORIZATION": "Bearer not-the-token"}, {"HTTP_X_HEALTH_TOKEN": health_token[:-1]}):
        assert Client().get("/health", **headers).json() == {"status": "unavailable"}


def test_health_details_for_staff_only(kafka, stripe_sandbox, settings, staff_user):
    from django.contrib.auth import get_user_model

    from integrations.stripe.client import stripe_client

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    stripe_client.cache_clear()
    staff = Client()
    staff.force_login(staff_user)
    response = staff.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["stripe"]["ok"] is False

    customer = Client()
    customer.force_login(get_user_model().objects.create_user("user", password="pw-user-123"))
    assert customer.get("/health").json() == {"status": "unavailable"}
    # Without a health token configured, no token opens the details.
    assert Client().get("/health", HTTP_AUTHORIZATION="Bearer ").json() == {"status": "unavailable"}


def test_metrics_expose_outbox_backlog_publishing_and_lag(kafka):
    CustomerFactory.create_batch(3)
    text = Client().get("/metrics").content.decode()
    assert "synchub_outbox_backlog 3.0" in text
    from sync.relay import relay_batch

    assert relay_batch() == 3
    text = Client().get("/metrics").content.decode()
    assert "synchub_outbox_backlog 0.0" in text
    assert 'synchub_events_published_total{topic="stripe_customer_outward"}' in text
    assert "# TYPE synchub_consumer_lag gauge" in text
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    sync_kafka.reset_producer()


def test_health_answers_503_when_the_database_is_down(tmp_path):
    """A real process whose database cannot be opened: /health still answers, with 503; a
    session cookie (whose lookup would need the database) changes nothing."""
    import os
    import subprocess
    import sys

    code = (
        "from django.test import Client\n"
        "client = Client()\n"
        "print(client.get('/health').status_code, client.get('/health').json())\n"
        "client.cookies['sessionid'] = 'a-session-the-database-would-know'\n"
        "print(client.get('/health').status_code, client.get('/health').json())\n"
        "details = client.get('/health', HTTP_X_HEALTH_TOKEN='db-down-token').json()\n"
        "print(details['checks']['database']['ok'])\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env={
            **os.environ,
            "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "SECURE_SSL_REDIRECT": "false",
            "HEALTH_CHECK_TIMEOUT_SECONDS": "1",
            "HEALTH_TOKEN": "db-down-token",
            "ALLOWED_HOSTS": "testserver",
            "LOG_FORMAT": "plain",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-3:] == [
        "503 {'status': 'unavailable'}",
        "503 {'status': 'unavailable'}",
        "False",
    ], result.stdout + result.stderr
    assert "health check database failed: OperationalError" in result.stderr


@pytest.mark.django_db(transaction=False)
def test_a_fresh_process_exports_every_external_request_outcome_at_zero():
    """Throttling and error alerts read rates of the 429 and 5xx series: a series born with its
    first 429 shows no rise, so a worker that has made no request yet exports them all at 0."""
    import os

    from sandbox.processes import run_manage

    metrics = run_manage(
        "shell",
        "-c",
        "import integrations.stripe.client, integrations.webhooks.delivery; "
        "from prometheus_client import REGISTRY, generate_latest; print(generate_latest(REGISTRY).decode())",
        env={key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"},
    )
    for integration, methods in {"stripe": ("GET", "POST", "DELETE"), "webhooks": ("POST",)}.items():
        for method in methods:
            for outcome in ("ok", "429", "4xx", "5xx", "network_error"):
                series = f'synchub_external_request_seconds_count{{integration="{integration}",method="{method}",outcome="{outcome}"}}'
                assert f"{series} 0.0" in metrics, series
