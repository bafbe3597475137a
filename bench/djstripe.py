"""dj-stripe 2.11.0 as a real peer for the webhook benchmarks: its own webhook view, in its own
virtual environment (it pins stripe < 16, the hub runs 16), its own PostgreSQL database, served by
gunicorn shaped like the hub's (threaded workers, WEB_CONCURRENCY x WEB_THREADS, no access log),
driven by the same load generator and the same signed bodies (bench.webhooks.wrk).

dj-stripe applies an event inside the request: it stores the request, verifies the signature,
re-retrieves the object from the Stripe API (the bench's stand-in) and writes what that answers,
not what the event says. So before a run the bench puts the stand-in in the state its events
describe (`DjStripePeer.stage`), as Stripe's API is by the time Stripe sends them.

    python -m bench.djstripe --selftest    # stand-in + peer, 2 threads x 8 connections, figures
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import psycopg
import requests

from sandbox.processes import free_port, start, stop, wait_for_port

from .hub import WEBHOOK_SECRET, BenchDatabase, cpu_seconds

BASE_DIR = Path(__file__).resolve().parent.parent
PEER_DIR = Path(__file__).resolve().parent / "djstripe_peer"
REQUIREMENTS = PEER_DIR / "requirements.txt"
VENV_ROOT = BASE_DIR / ".bench-venvs"  # git-ignored
STAGE_BATCH = 1000  # customers per PUT: the stand-in (aiohttp) takes bodies up to 1 MiB


def peer_venv() -> Path:
    """The peer's virtual environment, built once per requirements.txt and Python version (the
    hash names it, so a changed pin builds a new one) and reused after. A lock makes concurrent
    benches build it once; `.installed`, written last, tells a complete one from an interrupted one."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:12]
    venv = VENV_ROOT / f"djstripe-{key}"
    VENV_ROOT.mkdir(exist_ok=True)
    with open(VENV_ROOT / f"djstripe-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".installed").exists():
            shutil.rmtree(venv, ignore_errors=True)
            python = str(venv / "bin" / "python")
            for command in (
                [sys.executable, "-m", "venv", str(venv)],
                [python, "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                [python, "-m", "pip", "check"],
            ):
                result = subprocess.run(command, check=False, capture_output=True, text=True, env=_clean_env())
                if result.returncode != 0:
                    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
            (venv / ".installed").write_text(REQUIREMENTS.read_text())
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    """Only what the peer needs: none of the hub's settings (DJANGO_SETTINGS_MODULE, VIRTUAL_ENV,
    DATABASE_URL...) may leak into it."""
    keep = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") or k.startswith("PIP_")
    }
    return {**keep, "PYTHONUNBUFFERED": "1", **extra}


class DjStripePeer:
    """dj-stripe behind gunicorn on a free port, with `customers` synced customers `cus_{prefix}1`...
    (updates are updates) and a webhook endpoint verifying `secret`. A context manager: everything
    it starts it stops, and it drops its database, also when starting fails halfway."""

    def __init__(
        self,
        *,
        stripe_base: str,
        workdir: Path,
        customers: int,
        prefix: str = "wh",
        secret: str = WEBHOOK_SECRET,
        workers: int | None = None,
        threads: int | None = None,
        api_key: str = "sk_test_BenchDjStripePeer000000000000",  # dj-stripe wants 24+ characters after sk_test_
    ) -> None:
        self.stripe_base = stripe_base
        self.workdir = workdir
        self.customers = customers
        self.prefix = prefix
        self.secret = secret
        # The hub's defaults (synchub/gunicorn.py), from the same variables.
        self.workers = workers or int(os.environ.get("WEB_CONCURRENCY") or 2)
        self.threads = threads or int(os.environ.get("WEB_THREADS") or 4)
        self.api_key = api_key
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.webhook_uuid = str(uuid.uuid4())
        self.webhook_url = f"{self.base_url}/stripe/webhook/{self.webhook_uuid}/"
        self.venv: Path | None = None
        self.db: BenchDatabase | None = None
        self.process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "djstripe-web.log"

    def _env(self) -> dict[str, str]:
        assert self.venv is not None and self.db is not None
        return _clean_env(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONPATH=str(PEER_DIR),
            DJANGO_SETTINGS_MODULE="settings",
            DATABASE_URL=self.db.url,
            STRIPE_API_BASE=self.stripe_base,
            STRIPE_API_KEY=self.api_key,
        )

    def run(self, *args: str) -> str:
        """The peer's Python with `args`, in the peer's directory and environment; its output."""
        assert self.venv is not None
        command = [str(self.venv / "bin" / "python"), *args]
        result = subprocess.run(command, check=False, cwd=PEER_DIR, env=self._env(), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> None:
        """venv, database, migrate, seed, gunicorn; ready when a worker answers (the arbiter
        listens before its workers have loaded Django)."""
        try:
            self.venv = peer_venv()
            self.db = BenchDatabase(prefix="djstripe_bench")
            self.run("-m", "django", "migrate", "--noinput")
            seed = {
                "--customers": str(self.customers),
                "--prefix": self.prefix,
                "--secret": self.secret,
                "--uuid": self.webhook_uuid,
                "--url": self.webhook_url,
            }
            self.run("peerctl.py", "seed", *(part for option in seed.items() for part in option))
            gunicorn = [str(self.venv / "bin" / "gunicorn"), "wsgi:application", "--chdir", str(PEER_DIR)]
            gunicorn += ["--bind", f"127.0.0.1:{self.port}"]
            gunicorn += ["--workers", str(self.workers), "--threads", str(self.threads)]
            # gunicorn 27's management socket defaults to one path per user (~/.gunicorn/), which
            # the hub's gunicorn running beside it uses too: serving does not need it.
            gunicorn += ["--no-control-socket"]
            self.process = start(gunicorn, log_path=self.log, env=self._env())
            wait_for_port(self.port, timeout=60, process=self.process)
            deadline = time.monotonic() + 60
            while requests.get(self.webhook_url, timeout=10).status_code != 405:  # GET: not allowed, but Django's
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dj-stripe peer does not answer; see {self.log}")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def stage(self, bodies: Iterable[tuple[str, bytes]]) -> None:
        """Put the customers these webhooks carry into the stand-in as they say: dj-stripe
        re-retrieves each one and stores the API's answer, so this is what makes them apply."""
        customers = [json.loads(body)["data"]["object"] for _, body in bodies]
        for first in range(0, len(customers), STAGE_BATCH):
            response = requests.put(
                f"{self.stripe_base}/_standin/customers", json=customers[first : first + STAGE_BATCH], timeout=30
            )
            response.raise_for_status()

    def applied(self, run: str) -> int:
        """Customers whose name (in dj-stripe's copy of the Stripe object) ends with `run`."""
        assert self.db is not None
        return self.db.scalar(
            "SELECT count(*) FROM djstripe_customer WHERE right(stripe_data->>'name', length(%s)) = %s", (run, run)
        )

    def triggers(self) -> dict[str, int]:
        """dj-stripe's own record of the webhook requests it took (a row each, written first)."""
        assert self.db is not None
        row = self.db.scalar(
            "SELECT json_build_object('received', count(*), 'valid', count(*) FILTER (WHERE valid), "
            "'processed', count(*) FILTER (WHERE processed), 'failed', count(*) FILTER (WHERE exception <> '')) "
            "FROM djstripe_webhookeventtrigger"
        )
        return dict(row)

    def wait_idle(self, timeout: float = 30.0) -> dict[str, int]:
        """Until the requests still in the server when the load generator stopped have finished:
        no query of the peer's running and the trigger count unchanged since the last look."""
        assert self.db is not None
        deadline = time.monotonic() + timeout
        last = None
        while True:
            busy = self.db.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state NOT IN ('idle')"
            )
            counts = self.triggers()
            if busy == 0 and counts == last:
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dj-stripe peer is still busy after {timeout:.0f} s: {counts}")
            last = counts
            time.sleep(0.05)

    def upkeep(self) -> None:
        """VACUUM ANALYZE the peer's database now (after the bulk seed, between runs), so that
        autovacuum does not do it in the middle of a measurement (as bench.common.settle does)."""
        assert self.db is not None
        with psycopg.connect(self.db.dsn, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")

    def probe(self, bodies_file: Path) -> list[dict]:
        """Each webhook of the file through dj-stripe's view in a process of its own: status,
        SQL statements (count, by kind, text)."""
        out = self.run("peerctl.py", "probe", "--uuid", self.webhook_uuid, "--bodies", str(bodies_file))
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def pids(self) -> list[int]:
        """gunicorn's arbiter and its workers (for CPU and memory figures)."""
        if self.process is None:
            return []
        root = self.process.pid
        children = Path(f"/proc/{root}/task/{root}/children")
        return [root, *(int(pid) for pid in children.read_text().split())] if children.exists() else [root]

    def close(self) -> None:
        try:
            if self.process is not None:
                stop(self.process, timeout=20)
                self.process = None
        finally:
            if self.db is not None:
                self.db.drop()  # WITH (FORCE): also if a worker still held a connection
                self.db = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def selftest(*, customers: int = 2000, warmup: int = 200, seconds: int = 3, connections: int = 8) -> bool:
    """Stand-in + peer; `customers` signed `customer.updated` through wrk (2 threads), then the
    peer's own counts: every request answered 2xx and every one it took applied. True if so."""
    from .common import cpu_busy, say
    from .data import signed_update_bodies
    from .webhooks import write_bodies, wrk

    workdir = Path(tempfile.mkdtemp(prefix="djstripe-selftest-"))
    ok = False
    stripe_port = free_port()
    stripe_base = f"http://127.0.0.1:{stripe_port}"
    standin = start(
        [sys.executable, "-m", "bench.stripe_standin", "--port", str(stripe_port)], log_path=workdir / "stripe.log"
    )
    try:
        wait_for_port(stripe_port, process=standin)
        began = time.monotonic()
        with DjStripePeer(stripe_base=stripe_base, workdir=workdir, customers=customers + warmup + 2) as peer:
            say(f"dj-stripe peer up in {time.monotonic() - began:.1f} s ({peer.workers} x {peer.threads}, {peer.venv})")
            run = uuid.uuid4().hex[:6]
            sign = {"prefix": peer.prefix, "secret": peer.secret}
            warm = signed_update_bodies(count=warmup, start=customers + 1, run=run + "w", **sign)
            measured = signed_update_bodies(count=customers, run=run, **sign)
            probed = signed_update_bodies(count=2, start=customers + warmup + 1, run=run + "p", **sign)
            peer.stage(warm + measured + probed)
            bodies_file = workdir / "bodies.txt"
            write_bodies(bodies_file, warm)
            wrk(peer.webhook_url, bodies_file=bodies_file, threads=1, connections=2, seconds=1)
            before, api_before = peer.wait_idle(), _standin_stats(stripe_base)
            peer.upkeep()
            quiet = time.monotonic() + 20  # start on idle CPUs if they get idle within 20 s
            while (busy := cpu_busy(1.0)) > 0.15 and time.monotonic() < quiet:
                pass
            say(f"CPUs {100 * busy:.0f}% busy before the measurement")
            cpu_before = sum(cpu_seconds(pid) for pid in peer.pids())
            write_bodies(bodies_file, measured)
            stats = wrk(peer.webhook_url, bodies_file=bodies_file, threads=2, connections=connections, seconds=seconds)
            after, api_after = peer.wait_idle(), _standin_stats(stripe_base)
            cpu = sum(cpu_seconds(pid) for pid in peer.pids()) - cpu_before
            took = {key: after[key] - before[key] for key in after}
            applied = peer.applied(run)
            calls = {key: api_after.get(key, 0) - api_before.get(key, 0) for key in ("requests", "retrieve", "account")}
            write_bodies(workdir / "probe.txt", probed)
            probes = [(p["status"], p["queries"], p["kinds"]) for p in peer.probe(workdir / "probe.txt")]
            probe_calls = _standin_stats(stripe_base)["requests"] - api_after["requests"]
        logged = [line for line in peer.log.read_text().splitlines() if "Traceback" in line or "ERROR" in line]
        say(
            f"dj-stripe webhooks: {stats['rate']:,.0f}/s p50 {stats['p50_us'] / 1000:.1f} ms "
            f"p99 {stats['p99_us'] / 1000:.1f} ms errors {stats['errors']} ({stats['requests']} answered in "
            f"{stats['duration_us'] / 1e6:.1f} s, {len(measured)} distinct bodies)"
        )
        say(f"peer took {took} (answered + in flight when wrk stopped); applied {applied}; log errors {len(logged)}")
        say(
            f"per webhook: {cpu / max(took['received'], 1) * 1000:.1f} ms CPU in gunicorn's workers, Stripe API calls {calls}"
        )
        say(f"probe (in-process, per webhook: HTTP status, SQL statements, by kind): {probes}, API calls {probe_calls}")
        in_flight = took["received"] - stats["requests"]
        # A body sent twice (wrk wraps around its file) would be taken but apply nothing: the
        # equality says there was none.
        ok = not stats["errors"] and not logged and applied == took["received"] == took["processed"]
        ok = ok and 0 <= in_flight <= connections
        verdict = "passed" if ok else "FAILED"
        say(
            f"selftest {verdict}: applied == requests the peer took; {in_flight} of them were still in flight "
            "when wrk stopped (wrk counts only the answers it read)"
        )
        return ok
    finally:
        stop(standin)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")


def _standin_stats(stripe_base: str) -> dict[str, int]:
    return requests.get(f"{stripe_base}/_standin/stats", timeout=10).json()


if __name__ == "__main__":
    if sys.argv[1:] != ["--selftest"]:
        raise SystemExit("usage: python -m bench.djstripe --selftest")
    raise SystemExit(0 if selftest() else 1)
