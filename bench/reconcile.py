"""Reconciliation time: `python -m bench.reconcile --customers 1000 --stripe localstripe`.

Fills a Stripe (localstripe, or the in-memory stand-in) and a fresh SQLite hub database with the
same N linked customers, makes a few of them drift, and times `manage.py sync_reconcile --dry-run`
(every Stripe page within the rate limit, every local customer, the comparison). Prints one JSON
line with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import stripe

from sandbox.processes import free_port, localstripe_command, start, stop, wait_for_port

BASE_DIR = Path(__file__).resolve().parent.parent

SEED = """
import json, os
from catalog.models import Customer
from catalog.services import integration_record_synced
from sync.outward import applying_remote_change
from django.db import transaction
rows = json.load(open(os.environ["BENCH_ROWS"]))
with transaction.atomic(), applying_remote_change("stripe"):
    for remote_id, name, email in rows:
        customer = Customer(name=name, email=email)
        customer.save()
        integration_record_synced(item_id=customer.pk, integration_type="stripe", integration_id=remote_id,
                                  agreed_fields={"name": name, "email": email})
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--stripe", choices=["localstripe", "standin"], default="localstripe")
    parser.add_argument("--rate-limit", type=float, default=25.0)
    args = parser.parse_args()

    port = free_port()
    command = (
        localstripe_command(port)
        if args.stripe == "localstripe"
        else [sys.executable, "-m", "bench.stripe_standin", "--port", str(port)]
    )
    with tempfile.TemporaryDirectory() as workdir:
        server = start(command, log_path=Path(workdir) / "stripe.log")
        try:
            wait_for_port(port)
            client = stripe.StripeClient("sk_test_bench", base_addresses={"api": f"http://127.0.0.1:{port}"})
            started = time.monotonic()
            rows = []
            for i in range(args.customers):
                email = f"rec{i}@example.com"
                remote = client.v1.customers.create(params={"name": f"Customer {i}", "email": email})
                rows.append((remote.id, f"Customer {i}", email))
            fill_seconds = time.monotonic() - started
            client.v1.customers.update(rows[0][0], params={"name": "drifted"})  # one field difference
            client.v1.customers.create(params={"name": "only remote", "email": "only@example.com"})

            env = {
                **os.environ,
                # A throwaway hub: the settings refuse to start without a key when DEBUG is off.
                "SECRET_KEY": secrets.token_urlsafe(32),
                "DATABASE_URL": f"sqlite:///{workdir}/hub.sqlite3",
                "STRIPE_API_KEY": "sk_test_bench",
                "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
                "LOG_FORMAT": "plain",
                "LOG_LEVEL": "WARNING",
            }
            manage = [sys.executable, "manage.py"]
            subprocess.run([*manage, "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
            (Path(workdir) / "rows.json").write_text(json.dumps(rows))
            subprocess.run([*manage, "shell", "-c", SEED], cwd=BASE_DIR, check=True, capture_output=True,
                           env={**env, "BENCH_ROWS": str(Path(workdir) / "rows.json")})
            started = time.monotonic()
            result = subprocess.run(
                [*manage, "sync_reconcile", "--dry-run", "--rate-limit", str(args.rate_limit)],
                cwd=BASE_DIR, env=env, capture_output=True, text=True,
            )
            seconds = time.monotonic() - started
        finally:
            stop(server)
    found = "field_diff               1" in result.stdout and "missing_local            1" in result.stdout
    print(json.dumps({
        "scenario": f"reconcile --dry-run, {args.customers} customers, {args.stripe}",
        "seconds": round(seconds, 2),
        "pages": args.customers // 100 + 1,
        "rate_limit_per_second": args.rate_limit,
        "found_the_planted_differences": found,
        "fill_seconds": round(fill_seconds, 1),
    }))
    return 0 if found and result.returncode == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
