"""Production settings: no start without a SECRET_KEY, `check --deploy`, JSON logs without secrets;
the web server as the Procfile starts it."""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.secret_key import PLACEHOLDERS, dotenv_secret_key, ensure_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DEBUG": "false", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_debug_off(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="hub.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("secret_key", PLACEHOLDERS, ids=["empty", "old-development-default", "change-me"])
def test_refuses_to_start_with_debug_off_and_no_secret_key_of_its_own(tmp_path, secret_key):
    # Set, even when empty: the environment wins over a .env a developer may have beside manage.py.
    database = f"sqlite:///{tmp_path / 'check.sqlite3'}"
    result = manage("check", SECRET_KEY=secret_key, DATABASE_URL=database)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set (or is a published placeholder)" in result.stderr
    assert "secrets.token_urlsafe(64)" in result.stderr  # how to make one

    working = manage("check", SECRET_KEY=secrets.token_urlsafe(64), DATABASE_URL=database)
    assert working.returncode == 0, working.stdout + working.stderr
    assert "System check identified no issues" in working.stdout


def test_refuses_to_start_with_debug_off_and_secret_key_unset(tmp_path):
    if dotenv_secret_key() not in (None, *PLACEHOLDERS):
        pytest.skip("the .env beside manage.py sets a SECRET_KEY (`make run` writes one)")
    environment = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env={**environment, "DEBUG": "false", "DATABASE_URL": f"sqlite:///{tmp_path / 'unset.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_mode_still_starts_without_a_secret_key(tmp_path):
    result = manage("check", DEBUG="true", SECRET_KEY="", DATABASE_URL=f"sqlite:///{tmp_path / 'debug.sqlite3'}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_run_writes_a_secret_key_into_dotenv_once(tmp_path):
    env_file = tmp_path / ".env"
    assert ensure_secret_key(env_file, environ={}) is True
    assert env_file.stat().st_mode & 0o077 == 0  # a secret: its owner's only
    key = dotenv_secret_key(env_file)
    assert len(key) > 50
    assert ensure_secret_key(env_file, environ={}) is False and dotenv_secret_key(env_file) == key  # kept

    # A .env copied from .env.example: its empty line is filled in, the rest kept.
    env_file.write_text("DEBUG=false\nSECRET_KEY=\nLOG_LEVEL=INFO\n")
    assert ensure_secret_key(env_file, environ={}) is True
    lines = env_file.read_text().splitlines()
    assert lines[0] == "DEBUG=false" and lines[2] == "LOG_LEVEL=INFO"
    assert dotenv_secret_key(env_file) not in PLACEHOLDERS

    # A key in the environment wins over .env: nothing is written.
    other = tmp_path / "other.env"
    assert ensure_secret_key(other, environ={"SECRET_KEY": "from-the-environment"}) is False
    assert not other.exists()


def test_logs_are_json_lines_and_never_carry_secrets(tmp_path):
    key, webhook_secret = "sk_test_" + secrets.token_hex(12), "whsec_" + secrets.token_hex(12)
    result = manage(
        "shell",
        "-c",
        "import logging; from django.conf import settings\n"
        "log = logging.getLogger('synchub.test')\n"
        "log.warning('calling Stripe with %s and %s', settings.STRIPE_API_KEY, settings.STRIPE_WEBHOOK_SECRET)\n"
        "log.warning('a key we do not even know: sk_live_abcdefghijklmnop')\n"
        "try:\n"
        "    raise RuntimeError('failed with ' + settings.STRIPE_API_KEY)\n"
        "except RuntimeError:\n"
        "    log.exception('boom')\n",
        STRIPE_API_KEY=key,
        STRIPE_WEBHOOK_SECRET=webhook_secret,
        LOG_FORMAT="json",
        DATABASE_URL=f"sqlite:///{tmp_path / 'logs.sqlite3'}",
    )
    assert result.returncode == 0, result.stderr
    assert key not in result.stderr and webhook_secret not in result.stderr and "sk_live_abc" not in result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    messages = [r["message"] for r in records if r["logger"] == "synchub.test"]
    assert messages == [
        "calling Stripe with [redacted] and [redacted]",
        "a key we do not even know: [redacted]",
        "boom",
    ]
    assert all({"time", "level", "logger", "pid"} <= set(r) for r in records)
    assert "RuntimeError: failed with [redacted]" in records[-1]["exc_info"]


@contextlib.contextmanager
def web_server(tmp_path: Path, name: str, *, kafka_bootstrap: str = "127.0.0.1:9", **env: str):
    """The Procfile's web server, on a free port, in the environment of the test hubs (by default
    with no broker to reach); yields (base URL, its log file)."""
    from honcho.environ import parse_procfile

    from sandbox.processes import free_port, hub_environment, start, stop, wait_for_port

    command = parse_procfile((BASE_DIR / "Procfile").read_text()).processes["web"]
    port = free_port()
    log = tmp_path / f"{name}.log"
    environment = hub_environment(
        database_url=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        secret_key=secrets.token_urlsafe(32),
        web_port=port,
        kafka_bootstrap=kafka_bootstrap,
        stripe_api_key="sk_test_web",
        stripe_api_base="",
        webhook_secret="whsec_" + secrets.token_hex(8),
        static_root=tmp_path / "static",
        extra={"KAFKA_REQUEST_TIMEOUT_MS": "2000"},
    )
    environment.pop("WEB_ACCESS_LOG", None)  # the default unless a test asks for it
    server = start(["bash", "-c", f"exec {command}"], log_path=log, env={**environment, **env})
    try:
        wait_for_port(port, timeout=60, process=server)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(server)


def serve_once(tmp_path: Path, name: str, **env: str) -> str:
    """Post one unsigned webhook (a 400) to the web server; its log."""
    import requests

    with web_server(tmp_path, name, **env) as (base_url, log):
        answer = requests.post(f"{base_url}/webhooks/stripe", data=b"{}", timeout=10)
        assert answer.status_code == 400 and answer.json() == {"detail": "Missing Stripe-Signature header."}
    return log.read_text()


def test_the_web_server_logs_errors_always_and_each_request_only_when_asked(tmp_path):
    quiet = serve_once(tmp_path, "quiet")
    assert "Bad Request: /webhooks/stripe" in quiet  # Django's own warning for a 4xx
    assert '"POST /webhooks/stripe HTTP/1.1" 400' not in quiet

    logged = serve_once(tmp_path, "logged", WEB_ACCESS_LOG="-")
    assert '"POST /webhooks/stripe HTTP/1.1" 400' in logged


def test_web_workers_connect_to_kafka_as_they_start(tmp_path):
    """Not on their first webhook, which would wait for it; nothing is posted here."""
    from kafka import KafkaConsumer

    from sandbox.processes import free_port, start, stop, tansu_command, wait_for_port

    kafka_port = free_port()
    broker = start(tansu_command(kafka_port), log_path=tmp_path / "tansu.log")
    try:
        wait_for_port(kafka_port)
        bootstrap = f"127.0.0.1:{kafka_port}"
        with web_server(tmp_path, "kafka", kafka_bootstrap=bootstrap):
            client = KafkaConsumer(bootstrap_servers=bootstrap, api_version=(2, 5, 0))
            try:
                deadline = time.monotonic() + 30
                while "stripe_customer_inward" not in client.topics():
                    assert time.monotonic() < deadline, "the web workers never created their topics"
                    time.sleep(0.1)
            finally:
                client.close()
    finally:
        stop(broker)
