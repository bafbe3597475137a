"""/health and /metrics."""

import pytest
from django.test import Client

from sync import kafka as sync_kafka
from sync.models import OutboxMessage

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_is_200_when_database_kafka_and_stripe_answer(kafka, stripe_sandbox):
    response = Client().get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "kafka", "stripe"}
    assert all(check["ok"] for check in body["checks"].values())


def test_health_is_503_with_details_when_the_broker_is_down(kafka, stripe_sandbox, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ["127.0.0.1:9"]
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
    response = Client().get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["kafka"]["ok"] is False and body["checks"]["kafka"]["error"]
    assert body["checks"]["database"]["ok"] is True and body["checks"]["stripe"]["ok"] is True


def test_health_is_503_when_stripe_is_unreachable(kafka, stripe_sandbox, settings):
    from integrations.stripe.client import stripe_client

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    stripe_client.cache_clear()
    response = Client().get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["stripe"]["ok"] is False


def test_metrics_expose_outbox_backlog_publishing_and_lag(kafka):
    CustomerFactory.create_batch(3)
    text = Client().get("/metrics").content.decode()
    assert "synchub_outbox_backlog 3.0" in text
    from sync.relay import relay_batch

    assert relay_batch() == 3
    text = Client().get("/metrics").content.decode()
    assert "synchub_outbox_backlog 0.0" in text
    assert 'synchub_events_published_total{topic="customer_outward_sync"}' in text
    assert "# TYPE synchub_consumer_lag gauge" in text
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    sync_kafka.reset_producer()


def test_health_answers_503_when_the_database_is_down(tmp_path):
    """A real process whose database cannot be opened: /health still answers, with 503."""
    import os
    import subprocess
    import sys

    code = (
        "from django.test import Client\n"
        "response = Client().get('/health')\n"
        "print(response.status_code, response.json()['checks']['database']['ok'])\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env={
            **os.environ,
            "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "SECURE_SSL_REDIRECT": "false",
            "HEALTH_CHECK_TIMEOUT_SECONDS": "1",
            "ALLOWED_HOSTS": "testserver",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip().splitlines()[-1] == "503 False", result.stdout + result.stderr
