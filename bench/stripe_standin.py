"""A fast, in-memory stand-in for Stripe's customers API, for benchmarks and large runs.

    python -m bench.stripe_standin --port 8421 [--rate-limit 100] [--webhook-url URL --webhook-secret whsec_...]

localstripe rewrites a pickle of its whole state on every write and slows as it grows; this
answers in well under a millisecond whatever it holds. Point the hub (or any stripe-python
client) at it with `STRIPE_API_BASE=http://127.0.0.1:PORT` and any `sk_test_...` key.

Stripe API (form-encoded like Stripe's; answers and errors in Stripe's JSON shapes):

| request | what |
| --- | --- |
| `POST /v1/customers` | create (`name`, `email`, `description`, `phone`, `metadata[k]`, any other flat field) |
| `GET /v1/customers/{id}` | retrieve; a deleted customer answers `{"id", "object": "customer", "deleted": true}` like Stripe |
| `POST /v1/customers/{id}` | update (an empty string clears a field or a metadata key) |
| `DELETE /v1/customers/{id}` | delete (404 when unknown or already deleted) |
| `GET /v1/customers` | list, newest first: `email` (exact), `limit` (1-100, default 10), `starting_after`, `ending_before` |
| `GET /v1/events` | the customer events, newest first: `type`, `limit`, `starting_after` |
| `GET /v1/account` | the account the key belongs to (test mode), as clients that resolve their account ask (dj-stripe) |

- `Idempotency-Key` on a POST replays the first answer (header `Idempotent-Replayed: true`); the
  same key with other parameters is a 400 `idempotency_error`, as in Stripe.
- `--rate-limit N` (or `POST /_config/rate_limit` with `per_second=N`; 0 = off) answers 429
  `rate_limit` beyond N requests per second, like Stripe's limiter; every 429 is counted.
- `--webhook-url` and `--webhook-secret`: each change also sends a signed `customer.created`,
  `customer.updated` or `customer.deleted` event there (Stripe's `Stripe-Signature` format),
  once, at once.

Not Stripe, for tests and benchmarks:

| request | what |
| --- | --- |
| `DELETE /_config/data` | forget every customer, event, idempotency key and counter |
| `POST /_config/rate_limit` | `per_second=N` (0 = unlimited) |
| `POST /_standin/customers` | JSON list of customers (`{"name", "email", "metadata"}`) created at once; answers their ids |
| `PUT /_standin/customers` | JSON list of customers with their `id`s, stored as sent (the rest of Stripe's customer fields filled in), no events: Stripe's state behind webhooks a benchmark sends itself |
| `GET /_standin/stats` | request counts by operation, 429s answered, customers held |
| `GET /_standin/changes?after=SEQ` | the log of changes (`seq`, server `time` as time.time(), `operation`, customer `id`, `email`), oldest first |
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter, deque
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

CUSTOMER_FIELDS_CLEARABLE = ("name", "email", "description", "phone")
ACCOUNT_ID = "acct_standin"


def complete_customer(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` over every field of Stripe's customer object (the expandable lists left out, as
    Stripe does unless asked): clients that store the whole object (dj-stripe) read most of them."""
    return {
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": int(time.time()),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
        **fields,
    }


def account_object() -> dict[str, Any]:
    """A standard test-mode account in Stripe's shape; no branding files, so nothing more to fetch."""
    requirements = {"currently_due": [], "eventually_due": [], "past_due": [], "disabled_reason": None}
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_type": None,
        "type": "standard",
        "controller": {"type": "account"},
        "business_profile": {"mcc": None, "name": "Stand-in", "support_email": None, "url": None},
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "country": "US",
        "default_currency": "usd",
        "created": 1_700_000_000,
        "email": "standin@example.com",
        "metadata": {},
        "external_accounts": {"object": "list", "data": [], "has_more": False, "url": "/v1/account/external_accounts"},
        "requirements": requirements,
        "future_requirements": requirements,
        "settings": {
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "dashboard": {"display_name": "Stand-in", "timezone": "Etc/UTC"},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
    }


def _error(status: int, message: str, *, type_: str = "invalid_request_error", code: str = "", param: str = ""):
    body = {"error": {"type": type_, "message": message}}
    if code:
        body["error"]["code"] = code
    if param:
        body["error"]["param"] = param
    return web.json_response(body, status=status)


def _missing(customer_id: str):
    return _error(404, f"No such customer: '{customer_id}'", code="resource_missing", param="id")


def parse_form(items) -> dict[str, Any]:
    """Stripe's form encoding: `metadata[k]=v` nests, `expand[]=x` lists; the rest stays flat."""
    params: dict[str, Any] = {}
    for key, value in items:
        if "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            if inner == "":
                params.setdefault(outer, []).append(value)
            else:
                params.setdefault(outer, {})[inner] = value
        else:
            params[key] = value
    return params


class TokenWindow:
    """Server-side limiter: at most `rate` requests in any one second (a token bucket of one
    second's worth), like the budget Stripe enforces per account."""

    def __init__(self, rate: float) -> None:
        self.set(rate)

    def set(self, rate: float) -> None:
        self.rate = float(rate)
        self.tokens = max(1.0, self.rate)
        self.updated = time.monotonic()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class StripeStandIn:
    def __init__(self, *, rate_limit: float = 0.0, webhook_url: str = "", webhook_secret: str = "") -> None:
        self.limiter = TokenWindow(rate_limit)
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self._session: ClientSession | None = None
        self.reset()

    def reset(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}  # insertion order = creation order
        self.order: list[str] = []  # ids, oldest first (deleted ones stay, skipped in lists)
        self.position: dict[str, int] = {}
        self.by_email: dict[str, list[str]] = {}
        self.deleted: set[str] = set()
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=100_000)
        self.changes: deque[tuple[int, float, str, str, str | None]] = deque(maxlen=200_000)
        self.change_seq = 0
        self.stats: Counter[str] = Counter()

    # --- helpers ---------------------------------------------------------------------------

    def _record(self, operation: str, customer: dict[str, Any]) -> None:
        self.change_seq += 1
        now = time.time()
        self.changes.append((self.change_seq, now, operation, customer["id"], customer.get("email")))
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(now),
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "type": f"customer.{operation}",
            "data": {"object": dict(customer)},
        }
        self.events.append(event)
        if self.webhook_url:
            asyncio.get_running_loop().create_task(self._send_webhook(event))

    async def _send_webhook(self, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        timestamp = int(time.time())
        signature = hmac.new(self.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=10))
        try:
            async with self._session.post(
                self.webhook_url,
                data=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={signature}"},
            ) as response:
                await response.read()
                self.stats[f"webhook {response.status}"] += 1
        except Exception:  # noqa: BLE001 - like Stripe, a failed delivery is only counted here
            self.stats["webhook failed"] += 1

    def _new_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer_id = "cus_" + secrets.token_hex(7)
        metadata = {k: v for k, v in (params.get("metadata") or {}).items() if v != ""}
        customer = complete_customer({"id": customer_id, "metadata": metadata})
        for key, value in params.items():
            if key not in ("metadata", "expand") and not isinstance(value, (dict, list)):
                customer[key] = value or None
        self.customers[customer_id] = customer
        self.position[customer_id] = len(self.order)
        self.order.append(customer_id)
        if customer["email"]:
            self.by_email.setdefault(customer["email"], []).append(customer_id)
        return customer

    def _update_customer(self, customer: dict[str, Any], params: dict[str, Any]) -> None:
        old_email = customer.get("email")
        for key, value in params.items():
            if key == "metadata":
                for meta_key, meta_value in value.items():
                    if meta_value == "":
                        customer["metadata"].pop(meta_key, None)
                    else:
                        customer["metadata"][meta_key] = meta_value
            elif key != "expand" and not isinstance(value, (dict, list)):
                customer[key] = value or None
        if customer.get("email") != old_email:
            if old_email:
                self.by_email.get(old_email, []).remove(customer["id"])
            if customer.get("email"):
                self.by_email.setdefault(customer["email"], []).append(customer["id"])

    def _live(self, customer_id: str) -> dict[str, Any] | None:
        return None if customer_id in self.deleted else self.customers.get(customer_id)

    # --- middleware: auth, rate limit, idempotency, counting --------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if request.path.startswith(("/_config/", "/_standin/")):
            return await handler(request)
        self.stats["requests"] += 1
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer sk_") and not request.headers.get("Authorization", "").startswith("Basic "):
            return _error(401, "Invalid API Key provided.", type_="invalid_request_error")
        if not self.limiter.allow():
            self.stats["429"] += 1
            return _error(
                429,
                "Request rate limit exceeded. Limit requests to the documented rates.",
                code="rate_limit",
            )
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        raw = await request.read()
        fingerprint = hashlib.sha256(request.path.encode() + b"?" + raw).hexdigest()
        seen = self.idempotency.get(key)
        if seen is not None:
            if seen[0] != fingerprint:
                return _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    type_="idempotency_error",
                )
            self.stats["idempotent replays"] += 1
            return web.Response(
                body=seen[2],
                status=seen[1],
                content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        response = await handler(request)
        if response.status < 500 and isinstance(response, web.Response) and response.body is not None:
            self.idempotency[key] = (fingerprint, response.status, bytes(response.body))
        return response

    # --- Stripe API -----------------------------------------------------------------------

    async def create(self, request: web.Request):
        self.stats["create"] += 1
        customer = self._new_customer(parse_form((await request.post()).items()))
        self._record("created", customer)
        return web.json_response(customer)

    async def retrieve(self, request: web.Request):
        self.stats["retrieve"] += 1
        customer_id = request.match_info["id"]
        if customer_id in self.deleted:
            return web.json_response({"id": customer_id, "object": "customer", "deleted": True})
        customer = self.customers.get(customer_id)
        return web.json_response(customer) if customer else _missing(customer_id)

    async def update(self, request: web.Request):
        self.stats["update"] += 1
        customer = self._live(request.match_info["id"])
        if customer is None:
            return _missing(request.match_info["id"])
        self._update_customer(customer, parse_form((await request.post()).items()))
        self._record("updated", customer)
        return web.json_response(customer)

    async def delete(self, request: web.Request):
        self.stats["delete"] += 1
        customer = self._live(request.match_info["id"])
        if customer is None:
            return _missing(request.match_info["id"])
        self.deleted.add(customer["id"])
        if customer.get("email"):
            self.by_email.get(customer["email"], []).remove(customer["id"])
        self._record("deleted", customer)
        return web.json_response({"id": customer["id"], "object": "customer", "deleted": True})

    def _page(self, request: web.Request, ids_newest_first, url: str, lookup) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit", 10))
        except ValueError:
            return _error(400, "Invalid integer: limit", param="limit")
        if not 1 <= limit <= 100:
            return _error(400, "This value must be between 1 and 100.", param="limit")
        ids = list(ids_newest_first)
        if query.get("starting_after"):
            try:
                ids = ids[ids.index(query["starting_after"]) + 1 :]
            except ValueError:
                return _error(404, f"No such object: '{query['starting_after']}'", param="starting_after")
        elif query.get("ending_before"):
            try:
                ids = ids[: ids.index(query["ending_before"])][-limit:]
            except ValueError:
                return _error(404, f"No such object: '{query['ending_before']}'", param="ending_before")
        page = ids[:limit]
        return web.json_response(
            {"object": "list", "url": url, "has_more": len(ids) > limit, "data": [lookup(i) for i in page]}
        )

    async def list_customers(self, request: web.Request):
        self.stats["list"] += 1
        email = request.query.get("email")
        if email is not None:
            ids = reversed(self.by_email.get(email, []))
        else:
            ids = (i for i in reversed(self.order) if i not in self.deleted)
        return self._page(request, ids, "/v1/customers", self.customers.__getitem__)

    async def list_events(self, request: web.Request):
        self.stats["events"] += 1
        wanted = request.query.get("type")
        events = {e["id"]: e for e in self.events if not wanted or e["type"] == wanted}
        return self._page(request, reversed(list(events)), "/v1/events", events.__getitem__)

    # --- not Stripe ------------------------------------------------------------------------

    async def wipe(self, request: web.Request):
        self.reset()
        return web.json_response({"ok": True})

    async def set_rate_limit(self, request: web.Request):
        data = await request.post()
        self.limiter.set(float(data.get("per_second", 0)))
        return web.json_response({"per_second": self.limiter.rate})

    async def bulk_create(self, request: web.Request):
        ids = []
        for params in await request.json():
            customer = self._new_customer(
                {k: v for k, v in params.items() if k != "metadata"} | {"metadata": params.get("metadata") or {}}
            )
            ids.append(customer["id"])
        return web.json_response({"ids": ids})

    async def put_customers(self, request: web.Request):
        """Store customers under their own ids as sent: a benchmark that sends signed events
        itself first puts Stripe's side in the state those events describe, since a client that
        re-retrieves the object (dj-stripe) applies what the API answers, not the event."""
        for fields in await request.json():
            customer = complete_customer(fields)
            old = self.customers.get(customer["id"])
            if old is None:
                self.position[customer["id"]] = len(self.order)
                self.order.append(customer["id"])
            elif old.get("email") and customer["id"] not in self.deleted:  # deleting dropped it already
                self.by_email[old["email"]].remove(customer["id"])
            self.deleted.discard(customer["id"])
            self.customers[customer["id"]] = customer
            if customer["email"]:
                self.by_email.setdefault(customer["email"], []).append(customer["id"])
        return web.json_response({"customers": len(self.customers) - len(self.deleted)})

    async def retrieve_account(self, request: web.Request):
        self.stats["account"] += 1
        return web.json_response(account_object())

    async def stats_view(self, request: web.Request):
        return web.json_response(
            {**self.stats, "customers": len(self.customers) - len(self.deleted), "rate_limit": self.limiter.rate}
        )

    async def changes_view(self, request: web.Request):
        after = int(request.query.get("after", 0))
        newer = []
        for change in reversed(self.changes):  # newest first: stop at the first one already seen
            if change[0] <= after:
                break
            newer.append(change)
        return web.json_response(
            {
                "seq": self.change_seq,
                "changes": [{"seq": s, "time": t, "operation": o, "id": i, "email": e} for s, t, o, i, e in reversed(newer)],
            }
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.add_routes(
            [
                web.post("/v1/customers", self.create),
                web.get("/v1/customers", self.list_customers),
                web.get("/v1/customers/{id}", self.retrieve),
                web.post("/v1/customers/{id}", self.update),
                web.delete("/v1/customers/{id}", self.delete),
                web.get("/v1/events", self.list_events),
                web.get("/v1/account", self.retrieve_account),
                web.delete("/_config/data", self.wipe),
                web.post("/_config/rate_limit", self.set_rate_limit),
                web.post("/_standin/customers", self.bulk_create),
                web.put("/_standin/customers", self.put_customers),
                web.get("/_standin/stats", self.stats_view),
                web.get("/_standin/changes", self.changes_view),
            ]
        )
        return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stripe_standin", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rate-limit", type=float, default=0.0, help="429 beyond this many requests/s (0: off)")
    parser.add_argument("--webhook-url", default="", help="send signed customer events here")
    parser.add_argument("--webhook-secret", default="", help="whsec_... to sign them with")
    args = parser.parse_args(argv)
    standin = StripeStandIn(
        rate_limit=args.rate_limit, webhook_url=args.webhook_url, webhook_secret=args.webhook_secret
    )
    print(f"Stripe stand-in on http://{args.host}:{args.port}", flush=True)
    web.run_app(standin.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
