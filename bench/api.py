"""Scenario 5: `GET /api/customers?page_size=100` over 100,000 customers under gunicorn:
SQL queries per request (counted by bench.middleware) and latency, one request at a time."""

from __future__ import annotations

import time

import requests

from .common import Result, median, percentile, runs_text, say, settle
from .data import insert_customers
from .hub import Hub


def run(hub: Hub, *, total: int, runs: int, requests_per_run: int) -> Result:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from sync.groups import OPERATORS

    from catalog.models import Customer

    result = Result()
    have = Customer.objects.count()
    if have < total:
        insert_customers(count=total - have, prefix="api")
        settle()
    count = Customer.objects.count()
    user, _ = get_user_model().objects.get_or_create(username="bench-api", defaults={"is_staff": True})
    # An operator, as a real API client would be (its permissions are read on every request).
    user.groups.add(Group.objects.get(name=OPERATORS))
    token, _ = Token.objects.get_or_create(user=user)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token.key}"

    def get(path: str, *, count_queries: bool = False) -> requests.Response:
        headers = {"X-Bench-Count-Queries": "1"} if count_queries else {}
        response = session.get(hub.base_url + path, headers=headers, timeout=30)
        response.raise_for_status()
        return response

    middle = max(1, count // 200)  # a page halfway through the list
    queries = {
        path: int(get(path, count_queries=True).headers["X-Bench-Queries"])
        for path in (
            "/api/customers?page_size=10",
            "/api/customers?page_size=100",
            f"/api/customers?page_size=100&page={middle}",
            "/api/customers?page_size=1000",
        )
    }
    for _ in range(20):  # warm-up
        get("/api/customers?page_size=100")
    p50s, p99s = [], []
    for attempt in range(runs):
        latencies = []
        for _ in range(requests_per_run):
            started = time.perf_counter()
            body = get("/api/customers?page_size=100").json()
            latencies.append(1000 * (time.perf_counter() - started))
            assert len(body["results"]) == 100 and body["count"] == count
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
        say(f"api run {attempt + 1}: p50 {p50s[-1]:.1f} ms p99 {p99s[-1]:.1f} ms")
    deep = []
    for _ in range(max(10, requests_per_run // 5)):
        started = time.perf_counter()
        get(f"/api/customers?page_size=100&page={middle}")
        deep.append(1000 * (time.perf_counter() - started))
    constant = len(set(queries.values())) == 1
    result.row(
        "5. API list: SQL queries per request",
        f"{queries['/api/customers?page_size=100']} (page_size 10, 100, page {middle}, 1000: "
        f"{', '.join(str(q) for q in queries.values())}; page {middle} likewise)",
        "<= 4, constant",
        constant and max(queries.values()) <= 4,
    )
    p50 = median(p50s)
    result.row(
        f"5. API list latency, page_size=100 over {count:,} customers",
        f"p50 {p50:.1f} ms (runs: {runs_text(p50s, '{:.1f}')}), p99 {median(p99s):.1f} ms; page {middle}: p50 "
        f"{percentile(deep, 50):.1f} ms",
        "p50 <= 30 ms",
        p50 <= 30,
    )
    result.note(
        f"API: {runs} runs of {requests_per_run} sequential authenticated requests (token) on one keep-alive "
        "connection, after 20 warm-up requests; the response includes the total count, so each request counts "
        f"{count:,} rows. Queries counted by a bench-only middleware (`bench/middleware.py`) around the whole request."
    )
    return result
