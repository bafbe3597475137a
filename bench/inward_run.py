"""Scenario 7 (issue #13): the inward path end to end, beside dj-stripe, and how its cost grows.

Runs first, on the empty bench database (the customer counts of its scaling runs are then the
counts named), and empties the tables it filled at the end, so the later scenarios find the
database as before.
"""

from __future__ import annotations

import os
import time

import psycopg

from .common import Result, median, percentile, runs_text, say, settle
from .data import insert_customers
from .djstripe import DjStripePeer
from .hub import Hub
from .inward import (
    PREFIX,
    EventClock,
    apply_rate,
    per_second,
    send_at_rate,
    storm,
    storm_bodies,
    sustained_latencies,
    start_worker_assigned,
)
from .webhooks import wrk, write_bodies

E2E_TARGET_POSTGRESQL = 2000  # the bench runs on PostgreSQL only (bench/hub.py)
TABLES = "catalog_catalogintegration, catalog_customer, catalog_catalogitem, sync_inboxevent, sync_syncevent"


def run(hub: Hub, *, quick: bool, runs: int) -> Result:
    """`hub` runs gunicorn and one inward worker on an empty database."""
    result = Result()
    customers = 200 if quick else 1_000
    rounds = 5 if quick else 10
    numbers = list(range(1, customers + 1))
    insert_customers(count=customers, linked=customers, prefix=PREFIX)
    settle(max_wait=30)
    clock = EventClock()
    apply_rate(hub, numbers, rounds=2, tag="warm", clock=clock)  # connections, topics, group join

    # The storm, ours: signed webhooks through gunicorn, applied by one inward worker.
    storms = []
    for attempt in range(runs):
        bodies = storm_bodies(numbers, rounds=rounds, tag=f"storm{attempt}", clock=clock)
        path = hub.workdir / "storm.txt"
        write_bodies(path, bodies)
        settle(max_wait=20)
        stats = storm(hub, hub.base_url + "/webhooks/stripe", path, events=len(bodies))
        storms.append(stats)
        say(f"storm {attempt + 1}: {stats['applied_rate']:,.0f}/s applied, wrk errors {stats['errors']}")
    ours = median(s["applied_rate"] for s in storms)

    # dj-stripe on the same bodies, load generator and server shape; it applies in the request.
    peer_runs = []
    with DjStripePeer(
        stripe_base=hub.stripe_base,
        workdir=hub.workdir,
        customers=customers,
        prefix=PREFIX,
        workers=int(hub.env["WEB_CONCURRENCY"]),
        threads=int(hub.env.get("WEB_THREADS", "4")),
    ) as peer:
        for attempt in range(runs):
            tag = f"peer{attempt}"
            bodies = storm_bodies(numbers, rounds=rounds, tag=tag, clock=clock)
            peer.stage(bodies[-customers:])  # Stripe's state after the storm: what dj-stripe re-reads
            path = hub.workdir / "peer.txt"
            write_bodies(path, bodies)
            peer.upkeep()
            settle(max_wait=20)
            before = peer.triggers()
            stats = wrk(peer.webhook_url, bodies_file=path, threads=2, connections=8, seconds=3 if quick else 8)
            after = peer.wait_idle()
            stats["processed"] = after["processed"] - before["processed"]
            stats["failed"] = after["failed"] - before["failed"]
            peer_runs.append(stats)
            say(f"dj-stripe {attempt + 1}: {stats['rate']:,.0f}/s p99 {stats['p99_us'] / 1000:.0f} ms, "
                f"processed {stats['processed']}, failed {stats['failed']}")
    peer_rate = median(s["rate"] for s in peer_runs)
    target = E2E_TARGET_POSTGRESQL
    result.row(
        "7. Storm end to end: signed webhook -> local row, 1 inward worker",
        f"{ours:,.0f} events/s (runs: {runs_text(s['applied_rate'] for s in storms)}; "
        f"{len(numbers) * rounds:,} events over {customers:,} customers)",
        f">= {target:,}/s on PostgreSQL",
        ours >= target,
    )
    result.row(
        "7. dj-stripe 2.11 (applies in the request)",
        f"{peer_rate:,.0f} events/s accepted and applied (runs: {runs_text(s['rate'] for s in peer_runs)}), "
        f"p99 {median(s['p99_us'] for s in peer_runs) / 1000:.0f} ms; failed: {sum(s['failed'] for s in peer_runs)}",
    )
    result.row("7. Ours vs dj-stripe, end to end", f"{ours / peer_rate:.1f}x", ">= 20x", ours >= 20 * peer_rate)
    result.data["e2e"] = {"ours": ours, "djstripe": peer_rate}
    middle = sorted(storms, key=lambda s: s["applied_rate"])[len(storms) // 2]
    cpu = middle["cpu_ms"]
    cores = os.cpu_count() or 1
    result.row(
        "7. (diagnostic) CPU per event in the storm, by process",
        ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items())
        + f"; {sum(cpu.values()):.2f} ms in all: at most {1000 * cores / sum(cpu.values()):,.0f} events/s on "
        f"{cores} cores",
    )

    # Sustained: a fixed rate for a minute, latency per second.
    rate, seconds = (300, 10) if quick else (500, 60)
    settle(max_wait=20)
    sent = send_at_rate(hub, numbers, rate=rate, seconds=seconds, tag="steady", clock=clock)
    latencies = sustained_latencies(hub, sent)
    values = [ms for _, ms in latencies]
    seconds_rows = per_second(latencies)
    tail = [p99 for s, _, p99, _ in seconds_rows if s >= seconds - 10]
    head = [p99 for s, _, p99, _ in seconds_rows if s < 10]
    p99 = percentile(values, 99)
    growing = median(tail) > 1.5 * median(head) and median(tail) > 50
    result.row(
        f"7. Sustained {rate}/s for {seconds} s: webhook -> row",
        f"p50 {percentile(values, 50):.0f} ms, p99 {p99:.0f} ms, max {max(values):.0f} ms (n={len(values):,}, "
        f"send errors {sent.errors}); p99 of the first 10 s {median(head):.0f} ms, of the last 10 s {median(tail):.0f} ms",
        "p99 <= 100 ms, no growing lag",
        p99 <= 100 and not growing and sent.errors == 0,
    )
    result.data["sustained"] = {"rate": rate, "per_second": seconds_rows}

    # Apply rate of the worker alone: 1, 2, 3 workers on these customers.
    by_workers = []
    for workers in (1, 2, 3):
        if workers > 1:
            start_worker_assigned(hub, f"inward_worker{workers}")
        apply_rate(hub, numbers, rounds=2, tag=f"w{workers}warm", clock=clock)
        settle(max_wait=20)
        by_workers.append((workers, apply_rate(hub, numbers, rounds=rounds, tag=f"w{workers}", clock=clock)))
        say(f"inward apply, {workers} worker(s): {by_workers[-1][1]:,.0f} events/s")
    for extra in (2, 3):
        hub.stop(f"inward_worker{extra}")
    result.row(
        "7. Inward apply rate by workers (events on Kafka -> rows; 3 partitions)",
        ", ".join(f"{w} worker{'s' if w > 1 else ''} {r:,.0f}/s" for w, r in by_workers),
        "grows with workers",
        by_workers[1][1] > by_workers[0][1] and by_workers[2][1] > by_workers[0][1],
    )

    # And with the customer table grown: the same 1,000 customers' events among 1k/100k/1M.
    sizes = (customers, 10_000, 50_000) if quick else (1_000, 100_000, 1_000_000)
    by_size = [(sizes[0], by_workers[0][1])]
    for size in sizes[1:]:
        grown = time.monotonic()
        insert_customers(count=size - by_size[-1][0], linked=size - by_size[-1][0], prefix=f"grow{size}")
        say(f"customers grown to {size:,} in {time.monotonic() - grown:.0f} s")
        settle(max_wait=60)
        apply_rate(hub, numbers, rounds=1, tag=f"s{size}warm", clock=clock)
        by_size.append((size, apply_rate(hub, numbers, rounds=rounds, tag=f"s{size}", clock=clock)))
        say(f"inward apply with {size:,} customers: {by_size[-1][1]:,.0f} events/s")
    ratio = by_size[-1][1] / by_size[0][1]
    result.row(
        "7. Inward apply rate by customers in the database (1 worker)",
        ", ".join(f"{size:,}: {rate_:,.0f}/s" for size, rate_ in by_size) + f" ({ratio:.0%} of the first)",
        "largest within 20 % of the smallest",
        ratio >= 0.8,
    )
    result.data["scaling"] = {"workers": by_workers, "customers": by_size}
    result.note(
        f"Inward end to end (scenario 7, on an empty database first): {customers:,} linked customers; the storm is "
        f"{len(numbers) * rounds:,} distinct signed `customer.updated` webhooks ({rounds} changes per customer, a "
        "second apart in Stripe's `created`, each round after the last), each sent once by wrk (2 threads, 8 "
        "connections, `bench/webhook_once.lua`) to gunicorn as in the Procfile, timed from the first request "
        "until the inward worker has recorded the last event in its inbox (the transaction that changed the "
        f"row); {runs} runs, median. dj-stripe 2.11.0 (its own venv, database and webhook view, "
        "`bench/djstripe.py`) gets the same bodies from the same wrk for 8 s per run; it re-reads every customer "
        "from the Stripe stand-in (one API call per event) and applies inside the request, so what it accepts "
        f"it has applied (checked against its own table of processed webhooks). Sustained: {rate}/s for "
        f"{seconds} s from 4 keep-alive connections on an open-loop schedule (event i at start + i/{rate} s, "
        "late sends go at once), latency from just before each send to its inbox row's time. Apply rates: "
        "events published straight to Kafka as the webhook view publishes them, timed until the last is in the "
        "inbox; more workers join the same consumer group; the customer table is grown with linked customers "
        "before the same 1,000 customers' events are measured again."
    )
    with psycopg.connect(hub.db.dsn, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} CASCADE")
    return result
