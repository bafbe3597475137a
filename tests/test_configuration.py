"""Configuration stays documented: every variable the code reads is in .env.example."""

import re
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def variables_read_by(path: Path) -> set[str]:
    text = path.read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', text)) | set(
        re.findall(r'env\.get\("([A-Z][A-Z0-9_]+)"', text)
    )


def test_env_example_lists_every_setting():
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    read = (
        variables_read_by(BASE_DIR / "synchub" / "settings.py")
        | variables_read_by(BASE_DIR / "synchub" / "gunicorn.py")
        | variables_read_by(BASE_DIR / "sandbox" / "run.py")
    )
    assert {"WEB_HOST", "WEB_ACCESS_LOG"} <= read
    assert len(read) > 30
    assert read - documented == set()


def test_sandbox_environment_starts_only_what_is_not_configured():
    from sandbox.run import sandbox_environment

    env, services = sandbox_environment({})
    assert [name for name, _ in services] == ["kafka", "stripe"]
    assert env["KAFKA_API_VERSION"] == "2.5.0" and env["STRIPE_API_BASE"].startswith("http://127.0.0.1:")
    assert "tansu" in services[0][1] and "--webhook-url http://127.0.0.1:8000/webhooks/stripe" in services[1][1]

    env, services = sandbox_environment({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "STRIPE_API_KEY": "sk_test_x"})
    assert services == []
    assert env.get("KAFKA_API_VERSION", "") == "" and env.get("STRIPE_API_BASE", "") == ""


def test_docker_compose_runs_the_hub_on_kafka_kraft_and_postgres():
    import yaml
    from django.core.management import get_commands

    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres", "kafka", "migrate", "web", "relay", "stripe_worker", "inward_worker", "stripe_catchup",
        "invoice_inward_worker", "webhooks_worker", "webhook_sender",
    }
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert not any("zookeeper" in str(value).lower() for value in services["kafka"].values())
    assert "gunicorn" in services["web"]["command"]

    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    commands = get_commands()
    for name in (
        "migrate", "relay", "stripe_worker", "inward_worker", "invoice_inward_worker", "stripe_catchup",
        "webhooks_worker", "webhook_sender",
    ):
        command = services[name]["command"]
        assert command[:2] == ["python", "manage.py"] and command[2] in commands, command
        assert set(services[name]["environment"]) <= documented
    procfile = (BASE_DIR / "Procfile").read_text()
    for name in (
        "run_outbox_relay", "run_stripe_worker", "run_inward_sync_worker", "run_stripe_catchup", "run_sync_worker",
        "run_webhook_deliveries",
    ):
        assert name in procfile


def test_sandbox_localstripe_stops_promptly_on_ctrl_c():
    """`make run`'s Ctrl-C reaches the localstripe wrapper as SIGINT: it must stop its child and
    exit, not hang until the process manager kills it."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    from sandbox.processes import free_port, wait_for_port

    port = free_port()
    wrapper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.localstripe",
            "--port",
            str(port),
            "--webhook-url",
            "http://127.0.0.1:9/webhooks/stripe",
            "--webhook-secret",
            "whsec_test",
        ],
        cwd=BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        started = time.monotonic()
        wrapper.send_signal(signal.SIGINT)
        wrapper.wait(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "localstripe still listening"
