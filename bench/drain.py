"""Scenarios 2, 3 and 6 on one running hub (gunicorn, relay, Stripe worker, inward worker):

2. outward drain: N pending customer changes -> all confirmed synced in the Stripe stand-in;
   then with more workers; then with a client-side rate limit against a stand-in that answers
   429 beyond the same rate;
3. end-to-end latency at light load: API write -> stand-in changed, webhook -> local row changed;
6. memory: the workers' RSS (from /proc) sampled against the events they handled.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import requests

from .common import Result, median, percentile, runs_text, say, settle
from .data import customer_event, insert_customers, sign, stripe_customer
from .hub import WEBHOOK_SECRET, Hub, cpu_seconds, rss_kb

LATENCY_PREFIX = "lat"
# "Flat": under 250 kB per 1,000 events (5 MB over 20,000), the size of the allocator's saw-tooth
# seen here (RSS swings by ~5 MB up and down during a drain); a leak of a few hundred bytes per
# event would show above it.
FLAT_KB_PER_1000 = 250
MEMORY_PREFIX = "mem"


# --- helpers ----------------------------------------------------------------------------------


def scalar(hub: Hub, sql: str, params=()) -> int:
    with psycopg.connect(hub.db.dsn) as connection:
        return connection.execute(sql, params).fetchone()[0]


def synced_between(hub: Hub, first: int, last: int) -> int:
    return scalar(
        hub,
        "SELECT COUNT(*) FROM catalog_catalogintegration WHERE integration_type = 'stripe' AND status = 'synced' "
        "AND integration_id IS NOT NULL AND catalog_item_id BETWEEN %s AND %s",
        (first, last),
    )


def create_pending_changes(count: int, tag: str) -> tuple[int, int, float]:
    """`count` customers created through the ORM in one transaction: each save writes its
    outbox row (the post_save capture) and a pending mapping, exactly as an API create does.
    Returns (first id, last id, commit time)."""
    from django.db import transaction

    from catalog.models import Customer

    with transaction.atomic():
        ids = [Customer.objects.create(name=f"Drain {tag} {n}", email=f"drain-{tag}-{n}@example.com").pk for n in range(count)]
    return min(ids), max(ids), time.time()


class RssSampler:
    """Samples the RSS of some processes and a progress counter every `interval` seconds."""

    def __init__(self, pids: dict[str, int], progress, interval: float = 0.5) -> None:
        self.pids = pids
        self.progress = progress
        self.interval = interval
        self.samples: list[tuple[float, int, dict[str, int]]] = []  # (time, progress, {name: rss kB})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        try:
            done = self.progress()
        except Exception:  # noqa: BLE001 - a sample lost is not worth failing the run
            return
        self.samples.append((time.time(), done, {name: rss_kb(pid) for name, pid in self.pids.items()}))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str = "") -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.time()


def drain(hub: Hub, count: int, tag: str, *, timeout: float = 600) -> tuple[float, int, int]:
    """Create `count` pending changes, wait until all are synced; return (changes/s, first, last)."""
    started = time.monotonic()
    first, last, committed = create_pending_changes(count, tag)
    say(f"drain {tag}: {count:,} changes committed in {time.monotonic() - started:.1f} s")
    done = wait_until(
        lambda: synced_between(hub, first, last) >= count,
        timeout=timeout,
        interval=0.05,
        what=f"{count} changes synced",
    )
    rate = count / (done - committed)
    say(f"drain {tag}: {rate:,.0f} changes/s")
    return rate, first, last


def standin(hub: Hub, method: str, path: str, **kwargs):
    response = requests.request(method, hub.stripe_base + path, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def growth_per_1000(samples, name: str, start_after: int) -> tuple[float, int, int]:
    """RSS growth (kB) per 1,000 handled events after warm-up (`start_after` events): the peak RSS
    over the second half of the events against the peak over the first half. Peaks, because RSS
    saw-tooths by ~10 MB as batches come and go: comparing points (or medians of quarters)
    measured where in the saw-tooth they fell, not growth; a leak raises every later peak.
    Also returns the RSS and event count at the last sample."""
    points = [(done, rss[name]) for _, done, rss in samples if done >= start_after and rss.get(name)]
    if len(points) < 8:
        return float("nan"), (points[-1][1] if points else 0), (points[-1][0] if points else 0)
    middle = (points[0][0] + points[-1][0]) / 2
    first = [rss for done, rss in points if done <= middle]
    second = [rss for done, rss in points if done > middle]
    if not first or not second:
        return float("nan"), points[-1][1], points[-1][0]
    events = points[-1][0] - points[0][0]
    return 1000 * (max(second) - max(first)) / (events / 2), points[-1][1], points[-1][0]


# --- scenarios --------------------------------------------------------------------------------


def run(
    hub: Hub, *, runs: int, changes: int, scale_changes: int, rate_limit: int, latency_samples: int, inward_events: int
) -> Result:
    result = Result()
    warm_first, warm_last, _ = create_pending_changes(50, "warm")
    wait_until(lambda: synced_between(hub, warm_first, warm_last) >= 50, timeout=120, what="the warm-up changes")
    say("hub warm: workers joined their groups")
    handled = {"n": 50}
    stripe_worker = hub.processes["stripe_worker"].pid

    # 2. Drain with the default worker count, RSS of the Stripe worker sampled throughout (6).
    rates = []
    cpu_per_change = []
    base = {"n": 50}

    def stripe_progress() -> int:
        return base["n"] + (synced_between(hub, current["first"], current["last"]) if current["first"] else 0)

    current = {"first": 0, "last": 0}
    with RssSampler({"stripe_worker": stripe_worker}, stripe_progress) as stripe_rss:
        for attempt in range(runs):
            tag = uuid.uuid4().hex[:6]
            first_id = scalar(hub, "SELECT COALESCE(MAX(id), 0) + 1 FROM catalog_catalogitem")
            current.update(first=first_id, last=first_id + changes * 2)
            cpu_before = cpu_seconds(stripe_worker)
            rate, first, last = drain(hub, changes, tag)
            cpu_per_change.append(1000 * (cpu_seconds(stripe_worker) - cpu_before) / changes)
            rates.append(rate)
            base["n"] += changes
            current.update(first=0, last=0)
    handled["n"] = base["n"]
    default_rate = median(rates)
    result.row(
        "2. Outward drain, 1 Stripe worker (default), 3 partitions",
        f"{default_rate:,.0f} changes/s (runs: {runs_text(rates)})",
        ">= 500 changes/s",
        default_rate >= 500,
    )
    result.row(
        "2. (diagnostic) Stripe worker CPU per change",
        f"{median(cpu_per_change):.2f} ms (runs: {runs_text(cpu_per_change, '{:.2f}')}): at most "
        f"{1000 / median(cpu_per_change):,.0f} changes/s per worker process on one core",
    )

    # 2. Client-side rate limit R against a stand-in answering 429 beyond R.
    hub.stop("stripe_worker")
    hub.start("stripe_worker", env={"STRIPE_RATE_LIMIT_PER_SECOND": str(rate_limit)})
    standin(hub, "POST", "/_config/rate_limit", data={"per_second": rate_limit})
    before = standin(hub, "GET", "/_standin/stats")
    limited_count = rate_limit * 20
    warm_first, warm_last, _ = create_pending_changes(10, "limit-warm")
    wait_until(lambda: synced_between(hub, warm_first, warm_last) >= 10, timeout=120, what="the limited worker")
    # Let the group settle: Tansu may rebalance again once the previous member's session ends.
    time.sleep(float(hub.env["KAFKA_SESSION_TIMEOUT_MS"]) / 1000 + 1)
    seq = standin(hub, "GET", "/_standin/changes?after=999999999")["seq"]
    tag = f"limited-{uuid.uuid4().hex[:4]}"
    limited_end_to_end, first, last = drain(hub, limited_count, tag)
    after = standin(hub, "GET", "/_standin/stats")
    # The rate Stripe saw: its own timestamps of this drain's creates, first to last.
    times = [
        c["time"]
        for c in standin(hub, "GET", f"/_standin/changes?after={seq}")["changes"]
        if (c["email"] or "").startswith(f"drain-{tag}-")
    ]
    limited_rate = (len(times) - 1) / (max(times) - min(times))
    standin(hub, "POST", "/_config/rate_limit", data={"per_second": 0})
    answered_429 = after.get("429", 0) - before.get("429", 0)
    stripe_calls = after["requests"] - before["requests"]
    all_synced = synced_between(hub, first, last) == limited_count
    result.row(
        f"2. Drain with STRIPE_RATE_LIMIT_PER_SECOND={rate_limit} (stand-in enforces {rate_limit}/s)",
        f"{limited_rate:,.1f} Stripe calls/s = {100 * limited_rate / rate_limit:.0f}% of R "
        f"({limited_end_to_end:,.1f} changes/s commit-to-synced); "
        f"429s answered: {answered_429} (all {limited_count:,} synced: {'yes' if all_synced else 'NO'})",
        ">= 95% of R, no 429 unhandled",
        limited_rate >= 0.95 * rate_limit and all_synced,
    )
    result.note(
        f"Rate-limited drain: {limited_count:,} changes, {stripe_calls:,} Stripe calls (rate: the stand-in's own "
        "timestamps of the first and last create; commit-to-synced adds the pipeline's fill and drain), one Stripe "
        "worker with "
        f"STRIPE_RATE_LIMIT_PER_SECOND={rate_limit}; the stand-in answers 429 `rate_limit` beyond {rate_limit} "
        "requests in a second (a token bucket of one second's worth). A 429 that does reach Stripe is retried "
        "by the task layer (RateLimitError is retryable), never dropped: every change ended synced."
    )
    hub.stop("stripe_worker")
    hub.start("stripe_worker")
    warm_first, warm_last, _ = create_pending_changes(10, "relaunch")
    wait_until(lambda: synced_between(hub, warm_first, warm_last) >= 10, timeout=120, what="the restarted worker")
    time.sleep(float(hub.env["KAFKA_SESSION_TIMEOUT_MS"]) / 1000 + 1)

    # 3. End-to-end latency at light load.
    result.extend(latency(hub, samples=latency_samples))

    # 6. Memory: the Stripe worker's RSS over the drains; the inward worker's over N events.
    slope, last_rss, at = growth_per_1000(stripe_rss.samples, "stripe_worker", start_after=min(5000, changes // 2))
    first_rss = next((rss["stripe_worker"] for _, done, rss in stripe_rss.samples if done >= 1000), 0)
    peak = max(rss["stripe_worker"] for _, _, rss in stripe_rss.samples)
    result.row(
        "6. Stripe worker RSS",
        f"{last_rss / 1024:.0f} MB after {at:,} events (peak {peak / 1024:.0f} MB; {first_rss / 1024:.0f} MB at 1,000); "
        f"growth {slope:+.0f} kB per 1,000 events",
        "<= 120 MB after 20,000, flat",
        at >= 20_000 and peak <= 120 * 1024 and slope < FLAT_KB_PER_1000,
    )
    result.extend(inward_memory(hub, events=inward_events))
    # 2. More workers in the same group (the topic has KAFKA_TOPIC_PARTITIONS = 3 partitions). Last:
    # members leaving a Tansu group and new ones joining it is what Tansu handles worst.
    scaled = {}
    for workers in (2, 3):
        hub.start("stripe_worker", as_name=f"stripe_worker_{workers}")
        time.sleep(1)
        # Rebalance: Tansu holds a join for the rebalance timeout; a small drain settles it.
        warm_first, warm_last, _ = create_pending_changes(30, f"rebalance{workers}")
        wait_until(lambda: synced_between(hub, warm_first, warm_last) >= 30, timeout=120, what="rebalance")
        time.sleep(float(hub.env["KAFKA_MAX_POLL_INTERVAL_MS"]) / 1000 + 1)
        scaled[workers], _, _ = drain(hub, scale_changes, f"w{workers}-{uuid.uuid4().hex[:4]}")
    for workers in (2, 3):
        hub.stop(f"stripe_worker_{workers}")
    result.row(
        "2. Outward drain with more Stripe workers",
        ", ".join(f"{w} workers {r:,.0f}/s" for w, r in scaled.items()) + f" (1 worker: {default_rate:,.0f}/s)",
        "grows with workers",
        # 3 workers = one partition each; 2 split the 3 partitions 2 + 1, so one still holds 2/3.
        scaled[3] > default_rate * 1.1,
    )

    result.note(
        f"Outward drain: each run creates {changes:,} customers through the ORM in one transaction (each save "
        "writes its outbox row and a pending mapping, as an API create does), then times from the commit until "
        "every mapping is `synced` with a Stripe id: relay, Kafka, worker, Stripe create and the mapping update "
        f"included. Stand-in answers in well under 1 ms. More workers: one run of {scale_changes:,} changes each, "
        "after a rebalance."
    )
    return result


def latency(hub: Hub, *, samples: int) -> Result:
    result = Result()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from sync.groups import OPERATORS

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    # An operator, as a real API client would be (its permissions are read on every request).
    user.groups.add(Group.objects.get(name=OPERATORS))
    token, _ = Token.objects.get_or_create(user=user)
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token.key}"
    poller = requests.Session()

    # API write -> stand-in changed: alternately a create and an update of a customer created before.
    api_latencies = []
    request_ms: list[float] = []  # the API request alone (its response), part of the above
    synced_ids: list[tuple[int, str]] = []
    seq = standin(hub, "GET", "/_standin/changes?after=999999999")["seq"]
    for n in range(samples):
        tag = uuid.uuid4().hex[:8]
        if n % 2 == 0 or not synced_ids:
            email = f"latency-{tag}@example.com"
            started = time.time()
            response = api.post(f"{hub.base_url}/api/customers", json={"name": f"Latency {tag}", "email": email}, timeout=30)
            request_ms.append(1000 * (time.time() - started))
            response.raise_for_status()
            local_id, match = response.json()["id"], ("email", email)
        else:
            local_id, stripe_id = synced_ids.pop(0)
            started = time.time()
            response = api.patch(f"{hub.base_url}/api/customers/{local_id}", json={"name": f"Renamed {tag}"}, timeout=30)
            request_ms.append(1000 * (time.time() - started))
            response.raise_for_status()
            match = ("id", stripe_id)
        seen = None
        deadline = time.monotonic() + 30
        while seen is None and time.monotonic() < deadline:
            changes = poller.get(f"{hub.stripe_base}/_standin/changes?after={seq}", timeout=10).json()
            for change in changes["changes"]:
                seq = max(seq, change["seq"])
                if change[match[0]] == match[1]:
                    seen = change
            if seen is None:
                time.sleep(0.002)
        if seen is None:
            raise TimeoutError(f"API write {n} never reached the stand-in")
        api_latencies.append(1000 * (seen["time"] - started))
        if match[0] == "email":
            synced_ids.append((local_id, seen["id"]))
        time.sleep(0.05)

    # Signed webhook -> local row changed, on customers linked to `cus_lat{n}`.
    first, _ = insert_customers(count=samples, linked=samples, prefix=LATENCY_PREFIX)
    settle()
    hook_latencies = []
    with psycopg.connect(hub.db.dsn, autocommit=True) as connection:
        for n in range(1, samples + 1):
            name = f"Webhook {uuid.uuid4().hex[:8]}"
            customer = stripe_customer(n=n, prefix=LATENCY_PREFIX, name=name)
            body = json.dumps(
                customer_event(event_id=f"evt_lat_{uuid.uuid4().hex}", customer=customer, created=int(time.time()))
            ).encode()
            started = time.time()
            response = poller.post(
                f"{hub.base_url}/webhooks/stripe",
                data=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": sign(body, secret=WEBHOOK_SECRET)},
                timeout=30,
            )
            response.raise_for_status()
            deadline = time.monotonic() + 30
            while True:
                row = connection.execute(
                    "SELECT name FROM catalog_customer WHERE catalogitem_ptr_id = %s", (first + n - 1,)
                ).fetchone()
                if row and row[0] == name:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"webhook {n} never reached the local row")
                time.sleep(0.002)
            hook_latencies.append(1000 * (time.time() - started))
            time.sleep(0.05)

    customers = scalar(hub, "SELECT COUNT(*) FROM catalog_customer")
    result.row(
        "3. (diagnostic) of which the API request itself",
        f"p50 {percentile(request_ms, 50):.0f} ms, p99 {percentile(request_ms, 99):.0f} ms with {customers:,} customers",
    )
    for label, values in (
        ("API write -> Stripe stand-in changed", api_latencies),
        ("Signed webhook -> local row changed", hook_latencies),
    ):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        result.row(
            f"3. Latency: {label}",
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms (max {max(values):.0f} ms, n={len(values)})",
            "p50 <= 100 ms, p99 <= 500 ms",
            p50 <= 100 and p99 <= 500,
        )
    result.note(
        f"Latency: {samples} API writes (creates and updates alternating, through the REST API with a token) and "
        f"{samples} signed `customer.updated` webhooks, one at a time, 50 ms apart. API write: from before the "
        "request to the stand-in's own timestamp of the change. Webhook: from before the request until the row "
        "reads changed, polled every 2 ms (so up to ~2 ms is the probe's)."
    )
    return result


def inward_memory(hub: Hub, *, events: int) -> Result:
    """Publish `events` inward task messages (what the webhook endpoint publishes, each renaming a
    different linked customer) and let the inward worker apply them, sampling its RSS."""
    from .inward import EventClock, publish_direct

    result = Result()
    insert_customers(count=events, linked=events, prefix=MEMORY_PREFIX)
    settle()
    inbox_before = scalar(hub, "SELECT COUNT(*) FROM sync_inboxevent")
    published = time.time()
    publish_direct(list(range(1, events + 1)), rounds=1, tag="mem", clock=EventClock(), prefix=MEMORY_PREFIX)
    say(f"inward: {events:,} events on Kafka in {time.time() - published:.1f} s")

    def progress() -> int:
        return scalar(hub, "SELECT COUNT(*) FROM sync_inboxevent") - inbox_before

    with RssSampler({"inward_worker": hub.processes["inward_worker"].pid}, progress) as sampler:
        done = wait_until(lambda: progress() >= events, timeout=900, interval=0.25, what="the inward drain")
    rate = events / (done - published)
    slope, last_rss, at = growth_per_1000(sampler.samples, "inward_worker", start_after=events // 4)
    peak = max(rss["inward_worker"] for _, _, rss in sampler.samples)
    result.row(
        "6. Inward worker RSS",
        f"{last_rss / 1024:.0f} MB after {at:,} events (peak {peak / 1024:.0f} MB); growth {slope:+.0f} kB per 1,000 events",
        "<= 120 MB after 20,000, flat",
        (peak <= 120 * 1024 and slope < FLAT_KB_PER_1000) if at >= 20_000 else None,
    )
    result.row("6. (inward apply rate while sampled)", f"{rate:,.0f} events/s applied, 1 inward worker")
    if at < 20_000:
        result.note(
            f"Inward worker memory: {events:,} events, not 20,000: it applies them at about {rate:,.0f}/s here, so "
            "20,000 would take most of the time budget. Its RSS slope per 1,000 events is the figure to watch; no "
            "target verdict is given for fewer than 20,000."
        )
    return result
