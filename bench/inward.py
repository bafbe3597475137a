"""Scenario 7: inward end to end (issue #13). A signed webhook sent -> the local row changed.

- storm: 10,000 signed `customer.updated` webhooks over 1,000 linked customers, sent by wrk as
  fast as the hub takes them, timed until the inward worker has handled the last one;
- sustained: an open-loop sender at a fixed rate (500/s for 60 s), each event's latency from
  its send to its inbox row (written in the transaction that changed the customer), per second;
- apply rate of the inward worker alone (events published to Kafka as the webhook view
  publishes them) with 1,000 / 100,000 / 1,000,000 customers and with 1, 2, 3 workers.

Each customer's events are a second apart (Stripe's `created`, whole seconds), as separate
changes of one customer are; events of one customer within one second would be resolved by
reading the customer from Stripe (`sync.inbox`), which is not what these measure.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import percentile, say
from .data import customer_event, sign, stripe_customer
from .drain import scalar, wait_until
from .hub import WEBHOOK_SECRET, Hub, cpu_seconds
from .webhooks import wrk_command, wrk_stats

PREFIX = "in"


class EventClock:
    """Stripe event times: one second per round, always after every earlier round (the inbox
    ignores an event older than one applied), and after the customers' last push (an hour ago
    in `insert_customers`), so no event is ambiguous."""

    def __init__(self) -> None:
        self.next = int(time.time()) - 1800

    def take(self, rounds: int) -> int:
        first, self.next = self.next, self.next + rounds
        return first


def inbox_count(hub: Hub) -> int:
    return scalar(hub, "SELECT COUNT(*) FROM sync_inboxevent")


def renamed(hub: Hub, numbers: list[int], name_suffix: str) -> int:
    """How many of the customers `cus_in{n}` carry a name ending with `name_suffix`."""
    return scalar(
        hub,
        "SELECT COUNT(*) FROM catalog_customer c JOIN catalog_catalogintegration m ON m.catalog_item_id = "
        "c.catalogitem_ptr_id WHERE m.integration_id = ANY(%s) AND c.name LIKE %s",
        ([f"cus_{PREFIX}{n}" for n in numbers], f"%{name_suffix}"),
    )


def _event(n: int, *, tag: str, round_: int, created: int, prefix: str = PREFIX) -> dict:
    customer = stripe_customer(n=n, prefix=prefix, name=f"{prefix} {n} {tag} r{round_}")
    return customer_event(event_id=f"evt_{tag}_{round_}_{n}", customer=customer, created=created)


def storm_bodies(numbers: list[int], *, rounds: int, tag: str, clock: EventClock) -> list[tuple[str, bytes]]:
    """Signed webhooks, round by round: every customer's k-th change before anyone's (k+1)-th."""
    first = clock.take(rounds)
    bodies = []
    for round_ in range(rounds):
        for n in numbers:
            body = json.dumps(_event(n, tag=tag, round_=round_, created=first + round_)).encode()
            bodies.append((sign(body, secret=WEBHOOK_SECRET), body))
    return bodies


def storm(hub: Hub, url: str, bodies_file: Path, *, events: int, connections: int = 8) -> dict:
    """Send every body once with wrk (2 threads, `connections`) and time from the first request
    until the inward worker has handled the last event (its inbox row): `applied_s`,
    `applied_rate`, with wrk's latency figures of the requests."""
    before = inbox_count(hub)
    command = wrk_command(url, bodies_file=bodies_file, threads=2, connections=connections, seconds=900, once=True)
    cpu_before = cpu_by_process(hub)
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        done = wait_until(lambda: inbox_count(hub) - before >= events, timeout=600, interval=0.05, what="the storm")
    finally:
        process.send_signal(signal.SIGINT)  # every body was answered: wrk prints its figures
        output, _ = process.communicate(timeout=60)
    stats = wrk_stats(output)
    stats["cpu_ms"] = {name: 1000 * (used - cpu_before.get(name, 0.0)) / events for name, used in cpu_by_process(hub).items()}
    stats["applied_s"] = done - started
    stats["applied_rate"] = events / stats["applied_s"]
    return stats


def cpu_by_process(hub: Hub) -> dict[str, float]:
    """CPU seconds used so far by the hub's processes, by kind (PostgreSQL: every backend of the
    server, so only meaningful when nothing else uses it)."""
    kinds = {"web": hub.pids("web"), "Tansu": [hub.processes["kafka"].pid]}
    kinds["inward worker"] = [pid for key in hub.processes if key.startswith("inward_worker") for pid in hub.pids(key)]
    kinds["PostgreSQL"] = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/comm") if _comm(p) == "postgres"]
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in kinds.items()}


def _comm(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def publish_direct(numbers: list[int], *, rounds: int, tag: str, clock: EventClock, prefix: str = PREFIX) -> int:
    """Inward task messages straight onto Kafka, as the webhook view publishes them, renaming
    customers `cus_{prefix}{n}`."""
    from integrations.stripe.tasks import CUSTOMER_INWARD_TOPIC, apply_stripe_event
    from sync import kafka

    first = clock.take(rounds)
    batch = []
    for round_ in range(rounds):
        for n in numbers:
            event = _event(n, tag=tag, round_=round_, created=first + round_, prefix=prefix)
            customer = event["data"]["object"]
            message = apply_stripe_event.message(
                event_id=event["id"],
                event_type=event["type"],
                stripe_customer_id=customer["id"],
                customer=customer,
                created=event["created"],
            )
            batch.append((CUSTOMER_INWARD_TOPIC, apply_stripe_event.message_key(message), message.encode()))
            if len(batch) == 2000:
                kafka.publish(batch)
                batch = []
    if batch:
        kafka.publish(batch)
    return rounds * len(numbers)


def start_worker_assigned(hub: Hub, key: str, *, timeout: float = 120) -> None:
    """Start one more inward worker and wait until it has partitions: it joins only through a
    rebalance, and a measurement during one measures the pause. (kafka-python's group
    description fails on Tansu's answer, so the worker's own log line tells: it logs its
    assignment at INFO, asked for here.)"""
    hub.start("inward_worker", as_name=key, env={"LOG_LEVEL": "INFO"})
    log = hub.log(key)
    wait_until(lambda: " assigned " in log.read_text(errors="replace"), timeout=timeout, interval=0.2,
               what=f"{key}'s partitions")


def apply_rate(hub: Hub, numbers: list[int], *, rounds: int, tag: str, clock: EventClock) -> float:
    """Events/s the running inward workers apply, from the first publish to the last handled."""
    before = inbox_count(hub)
    started = time.time()
    events = publish_direct(numbers, rounds=rounds, tag=tag, clock=clock)
    done = wait_until(lambda: inbox_count(hub) - before >= events, timeout=900, interval=0.05, what="the apply")
    if renamed(hub, numbers, f"{tag} r{rounds - 1}") != len(numbers):
        raise RuntimeError(f"apply run {tag}: not every customer ended with its last change")
    return events / (done - started)


@dataclass
class Sustained:
    sent: dict[str, float] = field(default_factory=dict)  # event id -> wall time of its send
    errors: int = 0
    behind_ms: float = 0.0  # how far the sender fell behind its schedule, at most


def send_at_rate(hub: Hub, numbers: list[int], *, rate: int, seconds: int, tag: str, clock: EventClock,
                 senders: int = 4) -> Sustained:
    """Open loop: event i is sent at start + i / rate whatever the answers before it (a slow
    hub makes events queue, and their latency shows it), from `senders` keep-alive connections."""
    total = rate * seconds
    rounds = -(-total // len(numbers))
    first = clock.take(rounds)
    outcome = Sustained()
    lock = threading.Lock()
    start = time.time() + 0.5

    def sender(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", hub.web_port, timeout=30)
        sent, errors, behind = {}, 0, 0.0
        for i in range(offset, total, senders):
            round_, n = divmod(i, len(numbers))
            event = _event(numbers[n], tag=tag, round_=round_, created=first + round_)
            body = json.dumps(event).encode()
            due = start + i / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)  # pacing the open-loop schedule, not waiting for a result
            else:
                behind = max(behind, -pause)
            headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret=WEBHOOK_SECRET)}
            sent[event["id"]] = time.time()
            try:
                connection.request("POST", "/webhooks/stripe", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                errors += response.status >= 300
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", hub.web_port, timeout=30)
        with lock:
            outcome.sent.update(sent)
            outcome.errors += errors
            outcome.behind_ms = max(outcome.behind_ms, behind * 1000)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def sustained_latencies(hub: Hub, outcome: Sustained, *, timeout: float = 120) -> list[tuple[float, float]]:
    """(seconds since the first send, webhook -> row latency in ms) per event, once all are in."""
    import psycopg

    ids = list(outcome.sent)
    wait_until(
        lambda: scalar(hub, "SELECT COUNT(*) FROM sync_inboxevent WHERE event_id = ANY(%s)", (ids,)) >= len(ids),
        timeout=timeout,
        interval=0.2,
        what="the sustained run's events",
    )
    with psycopg.connect(hub.db.dsn) as connection:
        rows = connection.execute(
            "SELECT event_id, extract(epoch FROM processed_at) FROM sync_inboxevent WHERE event_id = ANY(%s)", (ids,)
        ).fetchall()
    first = min(outcome.sent.values())
    return sorted((outcome.sent[event_id] - first, (float(at) - outcome.sent[event_id]) * 1000) for event_id, at in rows)


def per_second(latencies: list[tuple[float, float]]) -> list[tuple[int, float, float, float]]:
    """(second, p50, p99, max) of the events sent in each second of the run."""
    seconds: dict[int, list[float]] = {}
    for at, ms in latencies:
        seconds.setdefault(int(at), []).append(ms)
    return [(s, percentile(v, 50), percentile(v, 99), max(v)) for s, v in sorted(seconds.items())]


def say_rate(label: str, rate: float) -> None:
    say(f"inward {label}: {rate:,.0f} events/s")
