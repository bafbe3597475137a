"""`python -m sandbox.run`: the hub and everything it needs on this machine, stopped by Ctrl-C.

Runs the Procfile (web server, outbox relay, both workers) under honcho. Unless
`KAFKA_BOOTSTRAP_SERVERS` is set it adds a local Tansu broker, and unless `STRIPE_API_KEY` is
set it adds the sandbox's Stripe (localstripe behind the invoice front) with its webhook
registered back to the hub.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import environ
from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

from .processes import tansu_command
from .secret_key import ensure_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
SANDBOX_KAFKA_PORT = 9092
SANDBOX_STRIPE_PORT = 8420
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_local_only"


def sandbox_environment(env: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The environment for the hub's processes, and the sandbox services to run beside them."""
    env = dict(env)
    services: list[tuple[str, str]] = []
    port = env.setdefault("PORT", "8000")
    env.setdefault("WEB_ACCESS_LOG", "-")  # a developer watches the requests go by
    # A developer's webhook receivers run on this machine too.
    env.setdefault("WEBHOOKS_ALLOW_PRIVATE_URLS", "true")
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka_port = int(env.get("SANDBOX_KAFKA_PORT", SANDBOX_KAFKA_PORT))
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{kafka_port}"
        env["KAFKA_API_VERSION"] = env.get("KAFKA_API_VERSION") or "2.5.0"
        # Tansu holds a group's first join for the whole rebalance timeout: keep it short here.
        env["KAFKA_MAX_POLL_INTERVAL_MS"] = env.get("KAFKA_MAX_POLL_INTERVAL_MS") or "10000"
        services.append(("kafka", " ".join(tansu_command(kafka_port))))
    if not env.get("STRIPE_API_KEY"):
        stripe_port = int(env.get("SANDBOX_STRIPE_PORT", SANDBOX_STRIPE_PORT))
        env["STRIPE_API_KEY"] = "sk_test_sandbox"
        env["STRIPE_API_BASE"] = f"http://127.0.0.1:{stripe_port}"
        env["STRIPE_WEBHOOK_SECRET"] = env.get("STRIPE_WEBHOOK_SECRET") or SANDBOX_WEBHOOK_SECRET
        services.append(
            (
                "stripe",
                f"{sys.executable} -m sandbox.localstripe --port {stripe_port} "
                f"--webhook-url http://127.0.0.1:{port}/webhooks/stripe "
                f"--webhook-secret {env['STRIPE_WEBHOOK_SECRET']}",
            )
        )
    return env, services


def main() -> int:
    # `make run` did this already; here for `python -m sandbox.run` on a fresh clone.
    ensure_secret_key()
    # The same .env the settings read, so "is Kafka/Stripe configured?" sees it too.
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
    env, services = sandbox_environment(dict(os.environ))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach honcho as they happen
    # The sandbox serves plain HTTP on this machine and shows logs in a terminal.
    for name, value in (("SECURE_SSL_REDIRECT", "false"), ("SESSION_COOKIE_SECURE", "false"),
                        ("CSRF_COOKIE_SECURE", "false"), ("SECURE_HSTS_SECONDS", "0"), ("LOG_FORMAT", "plain")):
        env[name] = env.get(name) or value
    # One metrics directory for all processes, emptied at start (prometheus_client multiprocess mode).
    metrics_dir = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or BASE_DIR / ".sandbox" / "prometheus")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    procfile = parse_procfile((BASE_DIR / "Procfile").read_text())
    manager = Manager(Printer(sys.stdout))
    for name, command in services:
        manager.add_process(name, command, env=env, cwd=str(BASE_DIR))
    for name, command in procfile.processes.items():
        manager.add_process(name, command, env=env, cwd=str(BASE_DIR))
    print(f"Customer Sync Hub on http://127.0.0.1:{env['PORT']}/  (Ctrl-C stops everything)", flush=True)
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
