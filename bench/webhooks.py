"""Scenario 1: webhook intake under gunicorn (verify, publish to Kafka, 2xx), driven by wrk with
pre-signed bodies. The same wrk drives dj-stripe in scenario 7."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from .common import Result, median, runs_text, say, settle
from .data import signed_update_bodies
from .hub import WEBHOOK_SECRET, Hub

BENCH_DIR = Path(__file__).resolve().parent
PREFIX = "wh"


def wrk_command(url: str, *, bodies_file: Path, threads: int, connections: int, seconds: int, once: bool = False) -> list[str]:
    """wrk sending the signed bodies of `bodies_file` in turn for `seconds` (`once`: each body
    once; wrk then waits for the end of `seconds` or a SIGINT)."""
    script = "webhook_once.lua" if once else "webhook_load.lua"
    return [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / script),
        url,
        "--",
        str(bodies_file),
        str(threads),
    ]


def wrk_stats(output: str) -> dict:
    """The figures wrk's script printed (`WRK_JSON` line), with the rate and error total."""
    line = next(line for line in output.splitlines() if line.startswith("WRK_JSON "))
    stats = json.loads(line.removeprefix("WRK_JSON "))
    stats["rate"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = sum(stats[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return stats


def wrk(url: str, *, bodies_file: Path, threads: int, connections: int, seconds: int) -> dict:
    command = wrk_command(url, bodies_file=bodies_file, threads=threads, connections=connections, seconds=seconds)
    return wrk_stats(subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout)


def write_bodies(path: Path, bodies) -> None:
    with open(path, "wb") as out:
        for signature, body in bodies:
            out.write(signature.encode() + b"\t" + body + b"\n")


def run(hub: Hub, *, customers: int, warmup: int, runs: int, seconds: int, connections: int) -> Result:
    """`hub` runs gunicorn (web) only; `customers + warmup` linked customers `cus_wh1`... exist.
    The peer, dj-stripe, is measured on the same load in scenario 7 (bench/inward_run.py)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench does it)")
    result = Result()
    ours = []
    for attempt in range(runs):
        tag = uuid.uuid4().hex[:6]
        # Signed now: signatures are accepted for 300 s, so each run signs its own bodies, every
        # one renaming a different customer.
        bodies_file = hub.workdir / f"webhooks-{tag}.txt"
        # Warm up (connections, imports, Kafka producer and topic) before measuring, on
        # customers of their own (`warmup` more are linked after the measured ones).
        write_bodies(
            bodies_file,
            signed_update_bodies(count=warmup, start=customers + 1, prefix=PREFIX, run=tag, secret=WEBHOOK_SECRET),
        )
        wrk(hub.base_url + "/webhooks/stripe", bodies_file=bodies_file, threads=1, connections=2, seconds=1)
        write_bodies(
            bodies_file, signed_update_bodies(count=customers, prefix=PREFIX, run=tag + "m", secret=WEBHOOK_SECRET)
        )
        settle(max_wait=20)
        stats = wrk(hub.base_url + "/webhooks/stripe", bodies_file=bodies_file, threads=2, connections=connections,
                    seconds=seconds)
        ours.append(stats)
        say(
            f"webhooks run {attempt + 1}: {stats['rate']:,.0f}/s p50 {stats['p50_us'] / 1000:.1f} ms "
            f"p99 {stats['p99_us'] / 1000:.1f} ms errors {stats['errors']}"
        )
        os.unlink(bodies_file)
    rate = median(s["rate"] for s in ours)
    p50 = median(s["p50_us"] for s in ours) / 1000
    p99 = median(s["p99_us"] for s in ours) / 1000
    errors = sum(s["errors"] for s in ours)
    result.row(
        "1. Webhook intake (verified, on Kafka)",
        f"{rate:,.0f}/s (runs: {runs_text(s['rate'] for s in ours)})",
        ">= 2,000/s",
        rate >= 2000 and errors == 0,
    )
    result.row("1. Webhook intake latency", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", "p99 <= 15 ms", p99 <= 15)
    result.data["intake"] = rate
    result.note(
        f"Webhook intake: wrk, 2 threads, {connections} connections, {seconds} s per measurement, {runs} runs, "
        f"each after the database's upkeep and on idle CPUs (`bench.common.settle`); "
        f"gunicorn as in the Procfile (threaded workers: WEB_CONCURRENCY={hub.env['WEB_CONCURRENCY']}, "
        f"WEB_THREADS={hub.env.get('WEB_THREADS', '4')}, access log {'on' if hub.env.get('WEB_ACCESS_LOG') else 'off, the default'}); every request a distinct signed "
        f"`customer.updated` renaming one of {customers:,} linked customers. Errors (non-2xx, socket): {errors}. "
        "Only gunicorn, Tansu and PostgreSQL run during it (no relay or workers), so the figure is intake alone: "
        "applying the events is the inward worker's job, measured in scenario 7."
    )
    return result
