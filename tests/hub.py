"""A whole hub on this machine for end-to-end tests: its own database, Tansu broker and
localstripe, and the Procfile's processes (gunicorn, relay, workers) as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import signal
import subprocess
import sys
from pathlib import Path

import requests
import stripe
from honcho.environ import parse_procfile

from integrations.stripe import INTEGRATION_TYPE as STRIPE
from sandbox.databases import ScratchDatabase
from sandbox.processes import (
    free_port,
    hub_environment,
    localstripe_command,
    register_localstripe_webhook,
    run_manage,
    start,
    stop,
    tansu_command,
    wait_for_port,
)

from .conftest import SESSION_SUFFIX
from .helpers import wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_e2e_secret"
HEALTH_TOKEN = "e2e-health-token"  # /health's details (README "Health and metrics")
# One collectstatic per test session (per parallel worker), shared by its hubs (each one's took 2 s
# of its start).
STATIC_ROOT = BASE_DIR / "test-artifacts" / f"static{SESSION_SUFFIX}"
_static_collected = False
CONSUMERS = ("stripe_worker", "inward_worker", "invoice_inward_worker", "webhooks_worker")  # the Procfile's Kafka consumers


class Hub:
    def __init__(
        self,
        workdir: Path,
        *,
        artifacts: Path,
        extra_env: dict[str, str] | None = None,
        kafka_proxy: bool = False,
        stripe_proxy: bool = False,
        webhook_proxy: bool = False,
        database_base_url: str | None = None,
        without: tuple[str, ...] = (),
    ) -> None:
        from .faults import StripeFaultProxy, TcpProxy, WebhookDelayProxy

        self.workdir = workdir
        self.artifacts = artifacts
        # `database_base_url`: "" for SQLite, a PostgreSQL URL, or None for DATABASE_URL's choice.
        self.db = ScratchDatabase(prefix="synchub_e2e", workdir=workdir, base_url=database_base_url)
        self.kafka_port = free_port()
        self.stripe_port = free_port()
        # Optional fault injectors between the hub and its broker / Stripe.
        self.kafka_proxy = TcpProxy(self.kafka_port) if kafka_proxy else None
        self.kafka_public_port = self.kafka_proxy.port if self.kafka_proxy else self.kafka_port
        self.stripe_proxy = StripeFaultProxy(f"http://127.0.0.1:{self.stripe_port}") if stripe_proxy else None
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        # Optional: webhooks from localstripe held back and delivered late, out of order.
        self.webhook_proxy = WebhookDelayProxy(f"{self.base_url}/webhooks/stripe") if webhook_proxy else None
        self.stripe_base = f"http://127.0.0.1:{self.stripe_port}"
        self.env = hub_environment(
            database_url=self.db.url,
            secret_key="e2e-secret-key",
            web_port=self.web_port,
            kafka_bootstrap=f"127.0.0.1:{self.kafka_public_port}",
            stripe_api_key="sk_test_e2e",
            stripe_api_base=self.stripe_proxy.base if self.stripe_proxy else self.stripe_base,
            webhook_secret=WEBHOOK_SECRET,
            static_root=STATIC_ROOT,
            extra={
                "SYNC_RETRY_BACKOFF_SECONDS": "0.2",
                "SYNC_RETRY_BACKOFF_MAX_SECONDS": "2",
                # Webhook endpoints: the tests' receivers are on 127.0.0.1; retries in seconds,
                # an endpoint disabled after 15 s of failures, no cache of "any endpoint?".
                "WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
                "WEBHOOKS_RETRY_SCHEDULE": "0.5,1,2,2,2,2,2,2,2,2",
                "WEBHOOKS_DISABLE_AFTER_SECONDS": "15",
                "WEBHOOKS_TIMEOUT_SECONDS": "2",
                "WEBHOOKS_ACTIVE_CACHE_SECONDS": "0",
                # Plain HTTP on this machine.
                "SESSION_COOKIE_SECURE": "false",
                "CSRF_COOKIE_SECURE": "false",
                "SECURE_HSTS_SECONDS": "0",
                "LOG_FORMAT": "plain",
                "STRIPE_CATCHUP_INTERVAL_SECONDS": "2",
                "HEALTH_TOKEN": HEALTH_TOKEN,
                **(extra_env or {}),
            },
        )
        self.commands = {
            name: command
            for name, command in parse_procfile((BASE_DIR / "Procfile").read_text()).processes.items()
            if name not in without
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.stripe = stripe.StripeClient("sk_test_e2e", base_addresses={"api": self.stripe_base})
        self.token = ""

    # --- lifecycle -------------------------------------------------------------------------

    def manage(self, *args: str) -> str:
        return run_manage(*args, env=self.env)

    def setup(self) -> None:
        self.processes["kafka"] = start(
            tansu_command(self.kafka_port, advertised_port=self.kafka_public_port), log_path=self.log("kafka")
        )
        self.processes["stripe"] = start(localstripe_command(self.stripe_port), log_path=self.log("stripe"))
        global _static_collected
        self.manage("migrate", "--noinput")
        if not _static_collected:
            self.manage("collectstatic", "--noinput", "--clear")
            _static_collected = True
        # The staff user and its API token in one process (a Django start each cost 1.5 s).
        self.token = self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
            "user = get_user_model().objects.create_superuser('e2e', 'e2e@example.com', 'e2e-password-123'); "
            "print(Token.objects.create(user=user).key)",
        ).strip().splitlines()[-1]
        wait_for_port(self.kafka_port)
        wait_for_port(self.stripe_port)
        self.set_webhooks(enabled=True)
        # Logs are appended to across hubs: only what this hub's workers write counts.
        log_start = {name: self.log(name).stat().st_size if self.log(name).exists() else 0 for name in CONSUMERS}
        for name in self.commands:
            self.start(name)
        wait_for_port(self.web_port)
        # Tests stop and restart workers: one stopped during its group's first join (Tansu holds
        # it for the rebalance timeout) can leave its successor without partitions.
        for name in CONSUMERS:
            wait_until(
                lambda name=name: b" assigned " in self.log(name).read_bytes()[log_start[name] :],
                timeout=60,
                message=f"{name} assigned its partitions",
            )

    def set_webhooks(self, *, enabled: bool) -> None:
        """Point localstripe's webhook at the hub, or at nowhere (webhooks lost)."""
        url = self.webhook_url if enabled else "http://127.0.0.1:9/nowhere"
        register_localstripe_webhook(stripe_port=self.stripe_port, url=url, secret=WEBHOOK_SECRET)

    @property
    def webhook_url(self) -> str:
        return self.webhook_proxy.url if self.webhook_proxy else f"{self.base_url}/webhooks/stripe"

    def manage_status(self, *args: str) -> tuple[int, str]:
        """Run a management command; (exit status, stdout + stderr)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True
        )
        return result.returncode, result.stdout + result.stderr

    def log(self, name: str) -> Path:
        # Per parallel worker: a hub's start reads its consumers' logs for their assignment, and
        # must never take another worker's hub's line for its own.
        return self.artifacts / f"e2e{SESSION_SUFFIX}-{name}.log"

    def start(self, name: str) -> None:
        self.processes[name] = start(["bash", "-c", f"exec {self.commands[name]}"], log_path=self.log(name),
                                     env=self.env)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        process = self.processes.pop(name)
        process.send_signal(sig)
        return process.wait(timeout=30)

    def teardown(self) -> dict[str, int]:
        codes = {name: stop(process) for name, process in reversed(list(self.processes.items()))}
        self.processes.clear()
        for proxy in (self.kafka_proxy, self.stripe_proxy, self.webhook_proxy):
            if proxy is not None:
                proxy.close()
        self.db.drop()
        return codes

    # --- the hub's API, as a client sees it ------------------------------------------------------

    def api(self, method: str, path: str, json: dict | None = None) -> requests.Response:
        return requests.request(
            method, f"{self.base_url}{path}", json=json, headers={"Authorization": f"Token {self.token}"}, timeout=30
        )

    def customers_with_email(self, email: str) -> list[dict]:
        results = self.api("GET", f"/api/customers?search={email}&page_size=100").json()["results"]
        return [c for c in results if (c["email"] or "").lower() == email.lower()]

    def integration_status(self, customer_id: int) -> dict:
        return self.api("GET", f"/api/customers/{customer_id}/integration-status").json()

    def stripe_customers_with_email(self, email: str) -> list:
        return list(self.stripe.v1.customers.list(params={"email": email, "limit": 100}).data)

    def inbox_count(self) -> int:
        return self.db.scalar("SELECT COUNT(*) FROM sync_inboxevent")

    def all_stripe_customers(self) -> list[dict]:
        """Every customer in the Stripe sandbox, read past any fault proxy."""
        return [c.to_dict(recursive=True) for c in self.stripe.v1.customers.list(params={"limit": 100}).auto_paging_iter()]

    def synced_count(self, item_ids: list[int]) -> int:
        """How many of the items Stripe holds as they are here. Stripe's mappings only: with a
        webhook endpoint, the fan-out's own mappings are synced too, and counted with Stripe's
        they passed the expected count between two polls."""
        placeholders = ",".join(str(int(i)) for i in item_ids) or "0"
        return self.db.scalar(
            "SELECT COUNT(*) FROM catalog_catalogintegration WHERE integration_type = %s AND status = 'synced' "
            f"AND integration_id IS NOT NULL AND catalog_item_id IN ({placeholders})",
            (STRIPE,),
        )

    def create_customers(self, emails: list[str], name: str = "Customer") -> list[int]:
        """Create through the REST API's bulk endpoint (one request per 1000 rows)."""
        return self.bulk([{"name": name, "email": email} for email in emails], expect="created")

    def rename_customers(self, ids: list[int], name: str) -> None:
        self.bulk([{"id": customer_id, "name": name} for customer_id in ids], expect="updated")

    def bulk(self, rows: list[dict], *, expect: str) -> list[int]:
        ids = []
        for start in range(0, len(rows), 1000):
            response = self.api("POST", "/api/customers/bulk", {"customers": rows[start : start + 1000]})
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert {r["status"] for r in results} == {expect}, results
            ids.extend(r["id"] for r in results)
        return ids


@contextmanager
def running_hub(workdir: Path, *, artifacts: Path, **options) -> Iterator[Hub]:
    """A hub for the duration of the block; on the way out every hub process must stop cleanly
    on SIGTERM (exit 0)."""
    hub = Hub(workdir, artifacts=artifacts, **options)
    try:
        hub.setup()
        yield hub
    finally:
        codes = hub.teardown()
    assert {name: code for name, code in codes.items() if name not in ("kafka", "stripe") and code != 0} == {}
