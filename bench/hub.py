"""The hub under benchmark: its own PostgreSQL database, Tansu broker, Stripe stand-in and the
Procfile's processes (gunicorn, relay, workers), all on 127.0.0.1 and free ports. Everything it
starts it stops (`close()`), also when a scenario fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from honcho.environ import parse_procfile

from sandbox.databases import ScratchDatabase
from sandbox.processes import free_port, hub_environment, run_manage, start, stop, tansu_command, wait_for_port

BASE_DIR = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_bench_secret"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"


class BenchDatabase(ScratchDatabase):
    """A PostgreSQL database created for the run on the server of DATABASE_URL, dropped after
    (`prefix` names it: the hub's, or a peer's)."""

    def __init__(self, *, prefix: str = "synchub_bench") -> None:
        base_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        if not base_url.startswith(("postgres://", "postgresql://")):
            raise SystemExit(f"the benchmarks need PostgreSQL; DATABASE_URL is {base_url!r}")
        super().__init__(prefix=prefix, base_url=base_url)


class Hub:
    """Tansu + Stripe stand-in + whichever Procfile processes a scenario asks for."""

    def __init__(self, *, db: BenchDatabase, workdir: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.workdir = workdir
        self.name = name
        self.kafka_port = free_port()
        self.stripe_port = free_port()
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.stripe_base = f"http://127.0.0.1:{self.stripe_port}"
        self.env = hub_environment(
            database_url=db.url,
            secret_key="bench-secret-key",
            web_port=self.web_port,
            kafka_bootstrap=f"127.0.0.1:{self.kafka_port}",
            stripe_api_key="sk_test_bench",
            stripe_api_base=self.stripe_base,
            webhook_secret=WEBHOOK_SECRET,
            static_root=workdir / "static",
            extra={"DJANGO_SETTINGS_MODULE": "bench.settings", "LOG_LEVEL": "WARNING", **(env or {})},
        )
        self.commands = parse_procfile((BASE_DIR / "Procfile").read_text()).processes
        self.processes: dict[str, subprocess.Popen] = {}
        self.on_close: list = []  # called before the processes stop (e.g. drop Kafka clients)

    def log(self, name: str) -> Path:
        return self.workdir / f"{self.name}-{name}.log"

    def manage(self, *args: str) -> str:
        return run_manage(*args, env=self.env)

    def start_services(self, *, stripe_args: tuple[str, ...] = ()) -> None:
        self.processes["kafka"] = start(tansu_command(self.kafka_port), log_path=self.log("kafka"))
        self.processes["stripe"] = start(
            [sys.executable, "-m", "bench.stripe_standin", "--port", str(self.stripe_port), *stripe_args],
            log_path=self.log("stripe"),
            env=self.env,
        )
        wait_for_port(self.kafka_port)
        wait_for_port(self.stripe_port)

    def start(self, name: str, *, as_name: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start Procfile process `name` (several of one kind: give each its own `as_name`)."""
        key = as_name or name
        process = start(
            ["bash", "-c", f"exec {self.commands[name]}"],
            log_path=self.log(key),
            env={**self.env, **(env or {})},
        )
        process.args_name = name  # type: ignore[attr-defined]
        self.processes[key] = process
        if name == "web":
            wait_for_port(self.web_port, timeout=60)
            self.wait_http(f"{self.base_url}/api/customers")
        return process

    def stop(self, key: str) -> None:
        process = self.processes.pop(key, None)
        if process is not None:
            stop(process, timeout=20)

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(url, timeout=5)
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pids(self, key: str) -> list[int]:
        """The process and its children (gunicorn's workers)."""
        root = self.processes[key].pid
        children = Path(f"/proc/{root}/task/{root}/children")
        kids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        return [root, *kids]

    def close(self) -> None:
        for callback in self.on_close:
            callback()
        for key in reversed(list(self.processes)):
            self.stop(key)

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
