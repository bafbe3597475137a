"""Scenario 9 (issue #16): the staff pages at scale. 100,000 customers (80 % with a Stripe
mapping), 1,000,000 audit-trail rows over 30 days (one customer with 2,000 of them), 2,000 dead
letters, 2,000 conflicts and an hour of backlog samples, on PostgreSQL.

For each console page, and beside them the Django admin's pages that answer the same questions
today (the audit trail filtered to one item, the dead letters, the conflicts): SQL queries per
request on a small data set and again on the large one (the same number: the page does not
query per row), and p50/p99 latency of sequential requests as an operator logged in through
the console's login form. Then, in this process, each page's statements with their times, and
EXPLAIN ANALYZE of the slowest statement of every page that misses its target.

The scenario has a database of its own (the other scenarios grow the shared one's customer
table to a million rows, and this one's million audit rows would slow theirs).
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import audit_data
from .common import Result, percentile, say, settle
from .data import insert_customers
from .hub import BenchDatabase, Hub

TARGET_MS = 100
USERNAME = "bench-operator"
PASSWORD = "bench-operator-password-9"
# The hub's own production settings, but its cookies over plain HTTP on loopback (as tests/hub.py).
# Every dashboard request counts the catalog (the worst case); the default, counts shared by every
# viewer for 2 s, is measured apart (SHARED_COUNTS).
HUB_ENV = {
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
    "CONSOLE_COUNTS_CACHE_SECONDS": "0",
}
SHARED_COUNTS = {"CONSOLE_COUNTS_CACHE_SECONDS": "2"}


@dataclass
class Page:
    label: str
    path: str
    peer: bool = False  # the Django admin's page, measured beside ours
    expect: int = 200
    queries: dict[str, int] = field(default_factory=dict)  # "small" / "large" -> count
    latencies: dict[str, list[float]] = field(default_factory=dict)
    slowest: tuple[float, str] | None = None  # (ms, SQL) of the large data set, in this process
    sql_ms: float = 0.0  # all its statements' time, in this process
    statements: int = 0

    def p(self, size: str, q: float) -> float:
        return percentile(self.latencies.get(size, []), q)


@dataclass(frozen=True)
class Scale:
    customers: int
    events: int
    hot_events: int
    recent: int
    conflicts: int
    hot_conflict_share: int  # one conflict in this many is the hot customer's


SMALL = Scale(customers=1_000, events=10_000, hot_events=200, recent=300, conflicts=50, hot_conflict_share=5)
LARGE = Scale(
    customers=100_000, events=1_000_000, hot_events=2_000, recent=3_000, conflicts=2_000, hot_conflict_share=100
)
QUICK = Scale(customers=10_000, events=100_000, hot_events=2_000, recent=3_000, conflicts=500, hot_conflict_share=25)


@contextlib.contextmanager
def using_database(db: BenchDatabase):
    """This process's Django connection on `db` for the block (the run's is on the shared bench
    database): closed, renamed, and put back after."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    name = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = db.name
    ContentType.objects.clear_cache()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = name
        ContentType.objects.clear_cache()


def load(scale: Scale, *, first_id: int, last_id: int, hot_id: int, conflict_first: int) -> dict[str, int]:
    """The audit trail and the problems of `scale` (the customers exist): a fresh trail each
    time, so that ids follow time as in a real one."""
    audit_data.truncate_audit()
    audit_data.insert_sync_events(
        count=scale.events,
        first_id=first_id,
        last_id=last_id,
        hot_id=hot_id,
        hot_events=scale.hot_events,
        recent=scale.recent,
    )
    letters = audit_data.insert_dead_letters()
    audit_data.insert_conflicts(
        count=scale.conflicts,
        first_id=conflict_first,
        last_id=last_id,
        hot_id=hot_id,
        hot_share=scale.hot_conflict_share,
    )
    audit_data.insert_backlog_samples()
    audit_data.analyze()
    return {"dead_letters": letters}


def operator_user() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from sync.groups import OPERATORS

    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))


def log_in(hub: Hub) -> requests.Session:
    """An operator's session, through the console's login form (as staff log in)."""
    session = requests.Session()
    form = session.get(f"{hub.base_url}/login/", timeout=30)
    form.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = session.post(
        f"{hub.base_url}/login/",
        data={"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token, "next": "/"},
        headers={"Referer": f"{hub.base_url}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
    return session


def fetch(session: requests.Session, hub: Hub, page: Page, *, count_queries: bool = False) -> requests.Response:
    headers = {"X-Bench-Count-Queries": "1"} if count_queries else {}
    response = session.get(hub.base_url + page.path, headers=headers, allow_redirects=False, timeout=120)
    if response.status_code != page.expect:
        raise RuntimeError(f"{page.path}: {response.status_code} (expected {page.expect}): {response.text[:300]}")
    return response


def measure(
    session: requests.Session, hub: Hub, pages: list[Page], size: str, *, requests_per_page: int, budget_seconds: float
) -> None:
    """Per page: two warm-up requests, one that counts its queries, then up to
    `requests_per_page` timed ones one after the other (fewer if they pass `budget_seconds`)."""
    for page in pages:
        fetch(session, hub, page)
        fetch(session, hub, page)
        page.queries[size] = int(fetch(session, hub, page, count_queries=True).headers["X-Bench-Queries"])
        latencies = []
        deadline = time.monotonic() + budget_seconds
        while len(latencies) < requests_per_page and (len(latencies) < 5 or time.monotonic() < deadline):
            started = time.perf_counter()
            fetch(session, hub, page)
            latencies.append(1000 * (time.perf_counter() - started))
        page.latencies[size] = latencies
        say(
            f"  {size:5} {page.path}: {page.queries[size]} queries, p50 {page.p(size, 50):.1f} ms, "
            f"p99 {page.p(size, 99):.1f} ms (n={len(latencies)})"
        )


def statements(pages: list[Page], workdir: Path) -> list[str]:
    """Each page once more in this process (Django's test client, the same settings), its
    statements timed: the slowest is kept; the slowest of a page over its target is explained
    (EXPLAIN ANALYZE, BUFFERS) into the run's logs. Returns the paths of those plans."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    # This process has no STATIC_ROOT of its own (whitenoise warns once): no static file is asked for.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username=USERNAME))
    plans = []
    for index, page in enumerate(pages, 1):
        client.get(page.path, secure=True)
        with CaptureQueriesContext(connection) as captured:
            client.get(page.path, secure=True)
        # The request's own statements: ATOMIC_REQUESTS adds BEGIN and COMMIT, which the
        # middleware's count (an execute wrapper) does not see.
        timed = [
            (1000 * float(query["time"]), query["sql"])
            for query in captured.captured_queries
            if query["sql"] not in ("BEGIN", "COMMIT", "ROLLBACK")
        ]
        page.sql_ms = sum(ms for ms, _ in timed)
        page.statements = len(timed)
        page.slowest = max(timed, default=None)
        if page.slowest and page.p("large", 50) > TARGET_MS and page.slowest[0] >= 10:
            sql = page.slowest[1]
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            path = workdir / f"staff-explain-{index:02d}.txt"
            path.write_text(f"-- {page.label}: {page.path}\n{sql};\n\n{plan}\n")
            plans.append(str(path))
    return plans


def short_sql(sql: str, limit: int = 170) -> str:
    """A statement for the table: its outer SELECT list cut short, its outer FROM and what
    follows kept (as much as `limit` allows)."""
    sql = " ".join(sql.split()).replace('"', "")
    depth, outer_from = 0, -1
    for index, char in enumerate(sql):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and sql.startswith(" FROM ", index):
            outer_from = index
            break
    if outer_from > 70:
        subqueries = sql[:outer_from].count("(SELECT ")
        cut = f" [{subqueries} subqueries in the SELECT list]" if subqueries else ""
        sql = f"{sql[:60]} …{cut} {sql[outer_from + 1 :]}"
    return (sql[:limit] + " …" if len(sql) > limit else sql).replace("|", "\\|")


def run(*, workdir: Path, quick: bool, requests_per_page: int | None = None) -> Result:
    result = Result()
    large = QUICK if quick else LARGE
    requests_per_page = requests_per_page or (10 if quick else 50)
    budget = 20.0 if quick else 60.0
    db = BenchDatabase(prefix="synchub_bench_staff")
    try:
        with Hub(db=db, workdir=workdir, name="staff", env=HUB_ENV) as hub, using_database(db):
            hub.manage("migrate", "--noinput")
            first, last_small = insert_customers(count=SMALL.customers, linked=SMALL.customers * 4 // 5, prefix="staff")
            audit_data.vary_mapping_statuses(first_id=first, last_id=last_small)
            hot, ordinary = first + 10, first + SMALL.customers // 2
            if audit_data.may_dead_letter(ordinary):
                ordinary += 1  # a customer without dead letters on either data set (audit_data)
            email = f"staff{ordinary - first + 1}@example.com"
            operator_user()
            load(SMALL, first_id=first, last_id=last_small, hot_id=hot, conflict_first=first)
            item = Page(f"item page, the hot customer ({large.hot_events:,} events)", f"/customers/{hot}/")
            letters = Page("dead letters", "/problems/dead-letters/")
            conflicts = Page("conflicts", "/problems/conflicts/")
            admin_trail = Page(
                "admin: audit trail filtered to the hot customer", f"/admin/sync/syncevent/?item_id={hot}", peer=True
            )
            admin_letters = Page("admin: dead letters", "/admin/sync/deadletter/", peer=True)
            admin_conflicts = Page("admin: conflicts", "/admin/sync/syncconflict/", peer=True)
            pages = [
                Page("dashboard", "/"),
                Page("dashboard live refresh (every 3 s)", "/console/stats.json"),
                Page("customers", "/customers/"),
                item,
                Page("item page, an ordinary customer", f"/customers/{ordinary}/"),
                letters,
                Page("dead letters, error contains “timeout”", "/problems/dead-letters/?error=timeout"),
                conflicts,
                Page("integrations (mappings)", "/integrations/"),
                # One match: the search answers with a redirect to the customer's page (timed apart).
                Page("search by email (one match: redirect)", f"/search/?q={email}", expect=302),
                admin_trail,
                admin_letters,
                admin_conflicts,
            ]
            pairs = [(item, admin_trail), (letters, admin_letters), (conflicts, admin_conflicts)]
            settle()
            hub.start_services()
            hub.start("web")
            session = log_in(hub)
            say(f"scenario 9: small data ({SMALL.customers:,} customers, {SMALL.events:,} audit rows)")
            measure(
                session,
                hub,
                pages,
                "small",
                requests_per_page=max(5, requests_per_page // 2),
                budget_seconds=budget / 2,
            )

            say(f"scenario 9: loading {large.customers:,} customers and {large.events:,} audit rows")
            started = time.monotonic()
            big_first, last = insert_customers(
                count=large.customers - SMALL.customers,
                linked=(large.customers - SMALL.customers) * 4 // 5,
                prefix="staffbulk",
            )
            audit_data.vary_mapping_statuses(first_id=big_first, last_id=last)
            counts = load(large, first_id=first, last_id=last, hot_id=hot, conflict_first=big_first)
            loaded = time.monotonic() - started
            say(f"scenario 9: loaded in {loaded:.0f} s")
            settle()
            measure(session, hub, pages, "large", requests_per_page=requests_per_page, budget_seconds=budget)
            plans = statements(pages, workdir)
            # The dashboard as its viewers get it by default: the counts made once per 2 s for all.
            hub.stop("web")
            hub.start("web", env=SHARED_COUNTS)
            shared = [
                Page("dashboard, counts shared for 2 s (the default)", "/"),
                Page("dashboard live refresh, counts shared for 2 s (the default)", "/console/stats.json"),
            ]
            measure(session, hub, shared, "large", requests_per_page=requests_per_page, budget_seconds=budget)
            report(result, pages, pairs, large=large, loaded=loaded, counts=counts, plans=plans, shared=shared)
    finally:
        db.drop()
    return result


def report(
    result: Result,
    pages: list[Page],
    pairs: list[tuple[Page, Page]],
    *,
    large: Scale,
    loaded: float,
    counts: dict[str, int],
    plans: list[str],
    shared: list[Page],
) -> None:
    ours = [page for page in pages if not page.peer]
    missed = []
    for page in pages:
        small_q, large_q = page.queries["small"], page.queries["large"]
        p50, p99 = page.p("large", 50), page.p("large", 99)
        figure = (
            f"queries {small_q} -> {large_q}; p50 {p50:,.0f} ms, p99 {p99:,.0f} ms (n={len(page.latencies['large'])}; "
            f"small data: p50 {page.p('small', 50):,.0f} ms)"
        )
        if page.peer:
            result.row(f"9. Peer: {page.label} `{page.path}`", figure)
            continue
        met = small_q == large_q and p50 <= TARGET_MS
        if not met:
            missed.append(page.path)
        result.row(
            f"9. Staff page: {page.label} `{page.path}`", figure, f"queries constant, p50 <= {TARGET_MS} ms", met
        )
    result.row(
        f"9. Staff pages at {large.customers:,} customers and {large.events:,} audit rows",
        f"{len(ours) - len(missed)} of {len(ours)} pages meet both targets"
        + (f" (missed: {', '.join(f'`{path}`' for path in missed)})" if missed else ""),
        "every page",
        not missed,
    )
    for page in shared:
        result.row(
            f"9. Staff page: {page.label} `{page.path}`",
            f"queries {page.queries['large']}; p50 {page.p('large', 50):,.0f} ms, "
            f"p99 {page.p('large', 99):,.0f} ms (n={len(page.latencies['large'])}; the slowest are the requests "
            "that count again)",
        )
    for mine, peer in pairs:
        ratio = peer.p("large", 50) / max(0.1, mine.p("large", 50))
        result.row(
            f"9. `{mine.path}` vs the admin's `{peer.path}`",
            f"p50 {mine.p('large', 50):,.0f} ms vs {peer.p('large', 50):,.0f} ms ({ratio:.1f}x); queries "
            f"{mine.queries['large']} vs {peer.queries['large']}",
        )
    for page in pages:
        if page.slowest and page.p("large", 50) > TARGET_MS:
            ms, sql = page.slowest
            result.row(
                f"9. (diagnostic) `{page.path}`: its SQL, and the slowest statement",
                f"{page.sql_ms:,.0f} ms in SQL ({page.statements} statements), of which {ms:,.0f} ms: "
                f"`{short_sql(sql)}`",
            )
    result.data["staff_pages"] = [(page.label, page.p("large", 50), not page.peer) for page in pages]
    result.note(
        f"Staff pages (scenario 9): a database of its own; {large.customers:,} customers (80 % with a synced Stripe "
        f"mapping, 2 % of those failed, 1 % pending), {large.events:,} `SyncEvent` rows over 30 days in time order "
        f"(60 % outward, ~3 % retrying, 0.2 % dead-lettered; {large.recent:,} in the last hour; one customer with "
        f"{large.hot_events:,}), {counts['dead_letters']:,} dead letters (one per dead-lettered row, 30 % replayed), "
        f"{large.conflicts:,} conflicts (40 % resolved), an hour of backlog samples every 15 s (outbox and two "
        f"consumer groups); loaded with INSERT ... SELECT generate_series in {loaded:.0f} s, then VACUUM ANALYZE. "
        f"Small data set, measured first in the same hub: {SMALL.customers:,} customers, {SMALL.events:,} rows (the "
        f'hot customer {SMALL.hot_events}), {SMALL.conflicts} conflicts. An operator (group "Sync operators", not '
        "a superuser) logged in through `/login/`; gunicorn as in the Procfile; requests one after the other on one "
        "keep-alive connection (redirects not followed), after two warm-up requests per page; gunicorn with "
        "CONSOLE_COUNTS_CACHE_SECONDS=0 (every dashboard request counts the catalog), then restarted with the "
        "default 2 s for the dashboard's two pages once more (shared counts); at most 60 s per "
        "page, so a slow page has fewer samples (n); p99 is nearest-rank, so of 50 requests it is the slowest. "
        "Queries counted by `bench/middleware.py` around the whole request (session, user and permissions "
        "included). SQL of a page: the page once more in the bench process (Django's test client, same settings "
        "and database), its statements timed (BEGIN and COMMIT left out); EXPLAIN ANALYZE of the slowest statement "
        f"of each page over {TARGET_MS} ms: " + (", ".join(plans) if plans else "none") + "."
    )
