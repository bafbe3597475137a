"""A real Prometheus (Debian's `prometheus`; `make promtool` installs it) scrapes a running hub's
/metrics in prometheus_client's multiprocess mode (gunicorn with two workers, the relay and the
workers all writing to one PROMETHEUS_MULTIPROC_DIR), loads the alert rules
(docs/operations/alerts.yml), and sees every series those rules select, with the figures of
several processes summed."""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.multiprocess import MultiProcessCollector

from sandbox.processes import free_port, start, stop, wait_for_port

from .conftest import ARTIFACTS
from .helpers import stripe_event, stripe_signature, wait_until
from .hub import Hub, running_hub
from .test_alerts import RULES, rules, series_used

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CUSTOMERS = 4
BAD_WEBHOOKS = 3
TIMEOUT = 60.0
# A metric name with the label matchers the rule puts on it, as written in the rule.
SELECTOR = re.compile(r"\b(synchub_\w+)(\{[^}]*\})?")


class Prometheus:
    """`prometheus` as a process of its own, scraping `target` every second and evaluating
    `rule_file` every second; its HTTP API."""

    def __init__(self, workdir: Path, *, target: str, rule_file: Path, log_path: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: run `make promtool` (Debian's prometheus package)"
        config = {
            # The scrape timeout defaults to the interval (1 s).
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [
                {"job_name": "synchub", "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
            ],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = start(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            log_path=log_path,
        )
        try:
            wait_for_port(self.port, process=self.process)
            wait_until(self._ready, timeout=30, message="prometheus ready")
        except BaseException:
            self.close()
            raise

    def _ready(self) -> bool:
        return requests.get(f"{self.base}/-/ready", timeout=5).status_code == 200

    def api(self, path: str, **params: str) -> dict | list:
        answer = requests.get(f"{self.base}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector `expr` evaluates to now: [{"metric": labels, "value": [t, "v"]}]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def scalar(self, expr: str) -> float | None:
        """The value of a one-element vector (e.g. `sum(...)`); None when it is empty."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def close(self) -> int:
        return stop(self.process)


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prometheus-multiproc")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, metrics_dir):
    # A directory of this test's own: every process of this hub (gunicorn's master and 2
    # workers, relay, workers) writes here, and the test reads its files.
    # A one-step retry schedule, so a delivery to an endpoint that never answers is dead at once.
    extra_env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WEBHOOKS_RETRY_SCHEDULE": "0.2"}
    with running_hub(
        tmp_path_factory.mktemp("scrape-hub"), artifacts=ARTIFACTS, stripe_proxy=True, extra_env=extra_env
    ) as hub:
        assert hub.env["WEB_CONCURRENCY"] == "2"
        yield hub


@pytest.fixture(scope="module")
def prometheus(hub, tmp_path_factory):
    prometheus = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        target=f"127.0.0.1:{hub.web_port}",
        rule_file=RULES,
        log_path=ARTIFACTS / "prometheus-scrape.log",
    )
    try:
        # Scraped once before the traffic: Prometheus knows the hub as it was before any event.
        wait_until(lambda: prometheus.scalar('up{job="synchub"}') == 1, timeout=TIMEOUT, message="target up")
        yield prometheus
    finally:
        prometheus.close()


@pytest.fixture(scope="module")
def traffic(hub, prometheus) -> list[int]:
    ids = drive_traffic(hub)
    try:
        wait_until(lambda: hub.synced_count(ids) == CUSTOMERS, timeout=TIMEOUT, message="customers pushed to Stripe")
    except AssertionError as failure:
        raise AssertionError(f"{failure}; their mappings: {[hub.integration_status(i) for i in ids]}") from None
    return ids


def script_stripe_faults(hub: Hub, faults: list[str]) -> None:
    """The next Stripe API calls through the hub's fault proxy (whichever process makes them: a
    push, the catch-up's listing) get `faults` in turn ("429": rate limited, no Stripe-Should-Retry;
    "500"), then none; creates of customers whose email starts with "reject-" get a 400."""
    proxy = hub.stripe_proxy
    pending, lock = list(faults), threading.Lock()

    def draw() -> str | None:
        with lock:
            return pending.pop(0) if pending else None

    proxy._draw_fault = draw
    proxy.reject = lambda method, path, body: (
        method == "POST" and path.split("?")[0] == "/v1/customers" and b"email=reject-" in body
    )


def drive_traffic(hub: Hub) -> list[int]:
    """Events of every kind the rules read, each made by the process that really makes it:
    - customers created through the API: the relay publishes, the Stripe worker pushes (through
      a 429 and a 500 first), localstripe's echo webhooks are queued by gunicorn's workers and
      applied by the inward worker, the webhooks worker fans the changes out to an endpoint;
    - one customer Stripe refuses (400): a dead letter of the push task;
    - the endpoint never answers: its deliveries are retried once, then dead;
    - webhooks with a bad signature: rejected.
    The ids of the customers that must reach Stripe."""
    endpoint = hub.api("POST", "/api/webhook-endpoints", {"url": f"http://127.0.0.1:{free_port()}/hook"})
    assert endpoint.status_code == 201, endpoint.text
    script_stripe_faults(hub, ["429", "500"])
    run = uuid.uuid4().hex[:8]
    ids = hub.create_customers([f"scrape-{run}-{n}@example.com" for n in range(CUSTOMERS)])
    hub.create_customers([f"reject-{run}@example.com"])
    for n in range(BAD_WEBHOOKS):
        body = stripe_event("customer.created", {"id": f"cus_bad{run}{n}", "email": f"bad-{n}@example.com"})
        answer = requests.post(
            f"{hub.base_url}/webhooks/stripe",
            data=body,
            headers={"Stripe-Signature": stripe_signature(body, "whsec_wrong"), "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 400, answer.text
    return ids


def process_names(hub: Hub, pids) -> dict[int, str]:
    """The Procfile name of each process id; gunicorn's workers (children of `web`) are "web"."""
    names = {process.pid: name for name, process in hub.processes.items()}
    for pid in pids:
        if pid not in names:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == hub.processes["web"].pid:
                names[pid] = "web"
    return {pid: names.get(pid, f"pid {pid}") for pid in pids}


def per_process(metrics_dir: Path, sample: str) -> dict[int, float]:
    """`sample`'s total (over its labels) in each process's own file of the multiprocess directory."""
    totals: dict[int, float] = defaultdict(float)
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for metric in MultiProcessCollector.merge([str(path)]):
            totals[pid] += sum(s.value for s in metric.samples if s.name == sample)
    return dict(totals)


def selectors() -> dict[str, set[str]]:
    """Every selector the rules use (a name with the rule's label matchers), and the rules using it."""
    used: dict[str, set[str]] = defaultdict(set)
    for rule in rules():
        found = {name + (matchers or "") for name, matchers in SELECTOR.findall(rule["expr"])}
        assert {s.split("{")[0] for s in found} == series_used(rule["expr"]), rule["alert"]
        for selector in found:
            used[selector].add(rule["alert"])
    return dict(used)


def eventually(prometheus: Prometheus, expr: str, check: Callable[[float], bool]) -> None:
    """Until `expr` has a value and `check(value)` holds (a scrape that times out, at 1 s, leaves
    the series stale until the next one: each read of Prometheus here polls)."""
    seen: list[float | None] = [None]

    def holds() -> bool:
        seen[0] = prometheus.scalar(expr)
        return seen[0] is not None and check(seen[0])

    try:
        wait_until(holds, timeout=TIMEOUT, message=expr)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its last value: {seen[0]}") from None


def test_prometheus_scrapes_every_series_the_alert_rules_use(hub, prometheus, traffic, metrics_dir):
    # The hub is a healthy target: scraped, up.
    def target() -> dict:
        [target] = prometheus.api("targets", state="active")["activeTargets"]
        return target

    wait_until(lambda: target()["health"] == "up", timeout=TIMEOUT, message="target healthy")
    assert target()["scrapeUrl"] == f"{hub.base_url}/metrics"
    eventually(prometheus, 'up{job="synchub"}', lambda up: up == 1)

    # Every series a rule reads exists in Prometheus, with the rule's own label matchers: the
    # traffic made the ones that exist only once something happened (dead letters, 429s, 5xx,
    # rejections); the consumer lag appears once a group committed and a web worker's 10 s
    # cache of it ran out.
    wanted = selectors()
    assert len(wanted) >= 8, wanted

    def missing() -> dict[str, set[str]]:
        return {selector: alerts for selector, alerts in wanted.items() if not prometheus.query(selector)}

    try:
        wait_until(lambda: not missing(), timeout=TIMEOUT, message="series of the rules in Prometheus")
    except AssertionError:
        assert missing() == {}  # the selectors without a series, and the rules reading them
        raise
    # ... and counts what the traffic did, wherever it happened.
    push = 'synchub_events_consumed_total{task="stripe.push_customer"'
    for expr, check in (
        (f'sum({push},outcome="succeeded"}})', lambda v: v >= CUSTOMERS),
        (f'sum({push},outcome="dead_lettered"}})', lambda v: v == 1),
        ('sum(synchub_external_request_seconds_count{integration="stripe",outcome="429"})', lambda v: v >= 1),
        ('sum(synchub_external_request_seconds_count{integration="stripe",outcome="5xx"})', lambda v: v >= 1),
        ('sum(synchub_webhook_deliveries_total{outcome="dead"})', lambda v: v >= 1),
        ('sum(synchub_webhooks_received_total{integration="stripe",outcome="rejected"})', lambda v: v == BAD_WEBHOOKS),
    ):
        eventually(prometheus, expr, check)

    # Counters are summed over the processes: Prometheus's total is the sum of every process's
    # own file, and several processes (named by the Procfile) contributed to it.
    for sample, producers in (
        ("synchub_events_published_total", {"relay", "web"}),  # the outbox; gunicorn's webhook intake
        ("synchub_events_consumed_total", {"stripe_worker", "inward_worker", "webhooks_worker"}),
    ):
        wait_until(
            lambda sample=sample: prometheus.scalar(f"sum({sample})") == sum(per_process(metrics_dir, sample).values()),
            timeout=TIMEOUT,
            message=f"sum({sample}) in Prometheus is the sum of every process's file",
        )
        counts = per_process(metrics_dir, sample)
        names = process_names(hub, counts)
        contributors = {names[pid] for pid, value in counts.items() if value > 0}
        assert producers <= contributors, (sample, {names[pid]: value for pid, value in counts.items()})

    # The rules are loaded and evaluate without error over these series.
    expected = {rule["alert"] for rule in rules()}

    def rule_health() -> dict[str, tuple[str, str]]:
        return {
            rule["name"]: (rule["health"], rule.get("lastError", ""))
            for group in prometheus.api("rules")["groups"]
            for rule in group["rules"]
        }

    def healthy() -> bool:
        health = rule_health()
        return health.keys() == expected and all(state == "ok" for state, _ in health.values())

    try:
        wait_until(healthy, timeout=TIMEOUT, message="every rule loaded and evaluated")
    except AssertionError:
        assert rule_health() == dict.fromkeys(expected, ("ok", ""))  # each rule's health and last error
        raise


def test_the_first_dead_letter_fires_its_alert(prometheus, traffic):
    """The workers create their counters' series at 0 (`sync.metrics.series_start_at_zero`):
    Prometheus sees the first dead letter as a rise, and the alert fires."""
    dead = 'sum(synchub_events_consumed_total{task="stripe.push_customer",outcome="dead_lettered"})'
    eventually(prometheus, dead, lambda v: v == 1)
    # No `for:` on the rule: it fires at the next evaluation (every second here).
    wait_until(
        lambda: prometheus.query('ALERTS{alertname="SyncDeadLettersAppearing",alertstate="firing"}'),
        timeout=20,
        message="SyncDeadLettersAppearing firing",
    )
