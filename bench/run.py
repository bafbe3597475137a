"""`python -m bench.run` (what `make bench` runs): every scenario, then docs/benchmarks.md.

    python -m bench.run [--only 1,2,...] [--quick] [--output docs/benchmarks.md]

Starts its own services on 127.0.0.1 and free ports (Tansu, the Stripe stand-in, gunicorn, the
relay and the workers, Celery for scenario 4, dj-stripe in its own venv for scenario 7) and a
PostgreSQL database of its own on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432), and stops and drops them all at the end, also on failure or
Ctrl-C. Charts go next to the report, in docs/benchmarks/. A run of some scenarios only
(`--only`) keeps the rest of the report and writes its rows in a section of their own
(`write_partial_report`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .common import Result, say, settle
from .hub import BASE_DIR, BenchDatabase, Hub

SCENARIOS = ("1", "2", "3", "4", "5", "6", "7", "8", "9")


def setup_django(db: BenchDatabase, hub: Hub) -> None:
    """This process talks to the bench database (bulk data, checks) with the hub's settings."""
    for key in (
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_API_VERSION",
        "STRIPE_API_KEY",
        "STRIPE_API_BASE",
        "STRIPE_WEBHOOK_SECRET",
        "SECRET_KEY",
        "LOG_LEVEL",
    ):
        os.environ[key] = hub.env[key]
    import django

    django.setup()


def machine() -> str:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu or platform.machine()}), {memory_gb:.0f} GB, Python {platform.python_version()}"


def postgres_version(db: BenchDatabase) -> str:
    import psycopg

    with psycopg.connect(db.dsn) as connection:
        return connection.execute("SHOW server_version").fetchone()[0].split()[0]


def use_hub(hub: Hub) -> None:
    """Point this process's Kafka and Stripe clients at `hub` (its settings were read at setup)."""
    from django.conf import settings

    from integrations.stripe.client import stripe_client
    from sync import kafka

    settings.KAFKA_BOOTSTRAP_SERVERS = [f"127.0.0.1:{hub.kafka_port}"]
    settings.STRIPE_API_BASE = hub.stripe_base
    kafka.reset_producer()
    kafka._known_topics.clear()
    stripe_client.cache_clear()
    hub.on_close.append(kafka.reset_producer)


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def compare_intake(result: Result) -> None:
    """Our intake (scenario 1) against dj-stripe's on the same wrk load (scenario 7), one run."""
    intake, e2e = result.data.get("intake"), result.data.get("e2e")
    if intake and e2e:
        result.row("1. Intake vs dj-stripe 2.11 (scenario 7)", f"{intake / e2e['djstripe']:.0f}x (dj-stripe "
                   f"{e2e['djstripe']:,.0f}/s)")


def draw_charts(result: Result, directory: Path) -> list[tuple[str, Path]]:
    """The run's charts (SVG, bench/charts.py), as (caption, path)."""
    from .charts import bar_chart, line_chart

    charts = []
    e2e, tasks = result.data.get("e2e"), result.data.get("tasks")
    if e2e:
        bars = [("hub: accepted (scenario 1)", result.data["intake"], True)] if result.data.get("intake") else []
        bars += [("hub: applied end to end, 1 worker", e2e["ours"], True),
                 ("dj-stripe 2.11: accepted = applied", e2e["djstripe"], False)]
        charts.append(("Signed webhooks per second, ours vs dj-stripe", bar_chart(
            directory / "throughput-webhooks.svg", title="Signed customer.updated webhooks per second",
            unit="events/s (log scale)", bars=bars, log=True)))
    if tasks:
        bars = [(name, rate, not name.startswith("Celery")) for name, rate in tasks.items()]
        charts.append(("Task layer vs Celery", bar_chart(
            directory / "throughput-tasks.svg", title="No-op tasks enqueued and run per second", unit="tasks/s",
            bars=bars)))
    sustained = result.data.get("sustained")
    if sustained:
        rows = sustained["per_second"]
        charts.append(("Latency over the sustained run", line_chart(
            directory / "latency-sustained.svg",
            title=f"Webhook -> row latency at {sustained['rate']}/s, per second of the run",
            x_label="second of the run", y_label="ms",
            series={"p50": [(s, p50) for s, p50, _, _ in rows], "p99": [(s, p99) for s, _, p99, _ in rows],
                    "max": [(s, top) for s, _, _, top in rows]},
            target=100, target_label="p99 target")))
    scaling = result.data.get("scaling")
    if scaling:
        charts.append(("Apply rate by customers in the database", line_chart(
            directory / "scaling-customers.svg", title="Inward apply rate, 1 worker, by customers in the database",
            x_label="customers", y_label="events/s", series={"applied": scaling["customers"]}, log_x=True)))
        charts.append(("Apply rate by inward workers", line_chart(
            directory / "scaling-workers.svg", title="Inward apply rate by workers (3 partitions)",
            x_label="inward workers", y_label="events/s", series={"applied": scaling["workers"]})))
    staff = result.data.get("staff_pages")
    if staff:
        charts.append(("Staff pages at scale: p50 per page, ours and the Django admin's", bar_chart(
            directory / "staff-pages.svg", title="Staff pages at scale, p50 (the admin's in brown)",
            unit="ms (log scale)", bars=list(staff), log=True)))
    return charts


NOTES_HEADING = "## How each figure was measured"


def table_lines(rows: list, *, machine_text: str, date: str, quick: bool) -> list[str]:
    """The report's table of `rows` (after the smoke-run warning of a `--quick` run)."""
    lines = ["**Smoke run (`--quick`): one run each on small data; not figures to quote.**", ""] if quick else []
    lines += ["| scenario | figure | target | met? | machine | date |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.scenario} | {row.figure} | {row.target} | {met} | {machine_text} | {date} |")
    return lines


def write_report(
    path: Path,
    result: Result,
    *,
    machine_text: str,
    date: str,
    elapsed: float,
    quick: bool,
    charts: list[tuple[str, Path]] = (),
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`, see `bench/`); do not edit by hand: the analysis",
        "below the table comes from `bench/analysis.md`.",
        "",
    ]
    rows = sorted(result.rows, key=lambda row: row.scenario.split(".")[0])
    lines += table_lines(rows, machine_text=machine_text, date=date, quick=quick)
    lines += ["", f"Whole run: {elapsed / 60:.1f} min. Medians of the runs listed; the machine is shared and noisy.", ""]
    if charts:
        lines += ["## Charts", ""]
        for caption, chart in charts:
            lines += [f"![{caption}]({chart.relative_to(path.parent).as_posix()})", ""]
    lines += [NOTES_HEADING, ""]
    lines += [f"- {note}" for note in result.notes]
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")



def write_partial_report(
    path: Path,
    result: Result,
    *,
    scenarios: list[str],
    machine_text: str,
    date: str,
    elapsed: float,
    quick: bool,
    charts: list[tuple[str, Path]] = (),
) -> None:
    """A run of some scenarios only (`--only`) keeps what the last full run wrote (its table with
    every other scenario's rows, its charts and notes): its own rows, charts and notes go in a
    section of their own, between markers, after the table (where an earlier run of the same
    scenarios put it, replacing that one). The analysis at the end is refreshed from
    bench/analysis.md, as a full run would. A full run (`make bench`) rewrites the whole file,
    these sections included."""
    key = ",".join(scenarios)
    begin, end = f"<!-- bench.run --only {key}: begin -->", f"<!-- bench.run --only {key}: end -->"
    plural = "s" if len(scenarios) > 1 else ""
    lines = [
        begin,
        f"## Scenario{plural} {', '.join(scenarios)}, from a partial run (`python -m bench.run --only {key}`)",
        "",
        (
            f"Written by `python -m bench.run --only {key}` on {date} ({elapsed / 60:.1f} min); the table above is "
            "the last full run's, and the next full run (`make bench`) puts these rows in it."
        ),
        "",
    ]
    lines += table_lines(result.rows, machine_text=machine_text, date=date, quick=quick)
    lines.append("")
    for caption, chart in charts:
        lines += [f"![{caption}]({chart.relative_to(path.parent).as_posix()})", ""]
    lines += ["How these figures were measured:", ""]
    lines += [f"- {note}" for note in result.notes]
    lines.append(end)
    section = "\n".join(lines)
    text = path.read_text()
    if begin in text and end in text.split(begin, 1)[1]:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        headings = (f"\n{heading}\n" for heading in ("## Charts", NOTES_HEADING))
        anchor = next((heading for heading in headings if heading in text), None)
        if anchor is None:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        else:
            at = text.index(anchor) + 1
            text = text[:at] + section + "\n\n" + text[at:]
    path.write_text(refresh_analysis(text))


def refresh_analysis(text: str) -> str:
    """`text` (a report) with what follows its notes list replaced by bench/analysis.md. Left
    as it is when the notes heading is missing or a partial run's section follows it."""
    analysis = Path(__file__).with_name("analysis.md")
    heading = f"\n{NOTES_HEADING}\n"
    if not analysis.exists() or heading not in text:
        return text
    at = text.index(heading) + len(heading)
    if "<!-- bench.run --only" in text[at:]:
        return text
    lines = text[at:].split("\n")
    index = 0
    while index < len(lines) and (not lines[index].strip() or lines[index].startswith("- ")):
        index += 1
    notes = "\n".join(lines[:index]).rstrip("\n")
    return text[:at] + notes + "\n\n" + analysis.read_text().rstrip() + "\n"


@contextlib.contextmanager
def guarded(result: Result, scenarios: str, failures: list[str]):
    """A scenario that crashes is reported as such and the others still run."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - reported in the table and by the exit status
        say(f"scenario {scenarios} FAILED: {exc!r}")
        traceback.print_exc()
        failures.append(scenarios)
        result.row(f"{scenarios}. (scenario failed)", f"`{type(exc).__name__}: {str(exc)[:200]}`", "runs", False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenario numbers")
    parser.add_argument("--quick", action="store_true", help="1 run each, smaller data: a smoke test, not figures")
    parser.add_argument("--output", default=str(BASE_DIR / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every service started is stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set(args.only.split(","))
    quick = args.quick
    runs = 1 if quick else 3
    started = time.monotonic()
    date = time.strftime("%Y-%m-%d")
    workdir = Path(tempfile.mkdtemp(prefix="synchub-bench-"))
    say(f"logs in {workdir}; load average {load()}")
    db = BenchDatabase()
    result = Result()
    loads: list[tuple[str, str]] = []
    failures: list[str] = []
    try:
        first = Hub(db=db, workdir=workdir, name="setup")
        first.manage("migrate", "--noinput")
        setup_django(db, first)
        from . import api, drain, inward_run, relay_backlog, staff_pages, tasks_vs_celery, webhooks
        from .data import insert_customers

        # First, on the empty database: its scaling runs count the customers they insert.
        if "7" in only:
            with guarded(result, "7", failures), Hub(db=db, workdir=workdir, name="inward") as hub:
                hub.start_services()
                hub.start("web")
                hub.start("inward_worker")
                use_hub(hub)
                say("scenario 7: inward end to end, beside dj-stripe; how its cost grows")
                loads.append(("7", load()))
                result.extend(inward_run.run(hub, quick=quick, runs=runs))
        if "8" in only:
            with guarded(result, "8", failures), Hub(db=db, workdir=workdir, name="backlog") as hub:
                hub.start_services()
                use_hub(hub)
                say("scenario 8: outbox relay, a backlog of 100,000 rows")
                loads.append(("8", load()))
                result.extend(relay_backlog.run(hub, rows=20_000 if quick else 100_000))
        if only & {"1", "5"}:
            with guarded(result, "1/5", failures), Hub(db=db, workdir=workdir, name="web") as hub:
                hub.start_services()
                hub.start("web")
                use_hub(hub)
                if "1" in only:
                    say("scenario 1: webhook intake")
                    loads.append(("1", load()))
                    customers = 4_000 if quick else 30_000
                    insert_customers(count=customers + 3_000, linked=customers + 3_000, prefix=webhooks.PREFIX)
                    settle()
                    # Five shorter runs: the machine's speed moves between runs (bench/analysis.md).
                    result.extend(
                        webhooks.run(
                            hub,
                            customers=customers,
                            warmup=3_000,
                            runs=1 if quick else 5,
                            seconds=3 if quick else 8,
                            connections=8,
                        )
                    )
                if "5" in only:
                    say("scenario 5: API list")
                    loads.append(("5", load()))
                    result.extend(
                        api.run(
                            hub, total=10_000 if quick else 100_000, runs=runs, requests_per_run=50 if quick else 200
                        )
                    )
        if only & {"2", "3", "6"}:
            with guarded(result, "2/3/6", failures), Hub(db=db, workdir=workdir, name="sync") as hub:
                hub.start_services()
                for name in ("web", "relay", "stripe_worker", "inward_worker"):
                    hub.start(name)
                use_hub(hub)
                say("scenarios 2, 3, 6: drain, latency, memory")
                settle()
                loads.append(("2", load()))
                # Two drains of 10,000 and an inward drain of 20,000: each worker's memory figure
                # after 20,000 events.
                result.extend(
                    drain.run(
                        hub,
                        runs=1 if quick else 2,
                        changes=2_000 if quick else 10_000,
                        scale_changes=2_000 if quick else 5_000,
                        rate_limit=25,
                        latency_samples=20 if quick else 100,
                        inward_events=500 if quick else 20_000,
                    )
                )
        if "4" in only:
            with guarded(result, "4", failures), Hub(db=db, workdir=workdir, name="tasks") as hub:
                hub.start_services()
                hub.start("relay")
                use_hub(hub)
                say("scenario 4: task layer vs Celery")
                settle()
                loads.append(("4", load()))
                result.extend(tasks_vs_celery.run(hub, runs=runs, count=1_000 if quick else 5_000))
        if "9" in only:
            # A database and hub of its own (bench/staff_pages.py): the customer table of the
            # shared one has grown to a million rows by now, and its million audit rows would
            # slow the other scenarios.
            with guarded(result, "9", failures):
                say("scenario 9: staff pages at scale")
                loads.append(("9", load()))
                result.extend(staff_pages.run(workdir=workdir, quick=quick))
    finally:
        from django.db import connections

        connections.close_all()
        db.drop()
    elapsed = time.monotonic() - started
    result.note(
        "Load average (1 min) when each scenario started, from other work on this shared machine: "
        + ", ".join(f"scenario {s}: {value}" for s, value in loads)
        + f". Logs of the run: {workdir}."
    )
    compare_intake(result)
    charts = draw_charts(result, Path(args.output).parent / "benchmarks")
    output = Path(args.output)
    ran = [scenario for scenario in SCENARIOS if scenario in only]
    if len(ran) < len(SCENARIOS) and output.exists():
        write_partial_report(
            output, result, scenarios=ran, machine_text=machine(), date=date, elapsed=elapsed, quick=quick,
            charts=charts,
        )
    else:
        write_report(output, result, machine_text=machine(), date=date, elapsed=elapsed, quick=quick, charts=charts)
    say(f"done in {elapsed / 60:.1f} min; wrote {args.output}")
    # Missed targets are results, not errors; a scenario that crashed is an error.
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
