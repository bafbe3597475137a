"""`python -m sandbox.stripe_front --port P`: Stripe's Invoice API in front of localstripe.

localstripe cannot make a one-off invoice, finalize one, pay one out of band or send most
invoice events, so this small server answers `/v1/invoices*` and `/v1/invoiceitems*` itself
(rules in `sandbox/stripe_invoices.py`) and forwards every other request to a localstripe it
starts as a child process on a free internal port (localstripe is GPL: never imported).

- `POST /_config/webhooks/<id>` (`url`, `secret`, optional `events[]`) is forwarded and also
  remembered, so invoice events go to the same targets, signed as Stripe signs, in order, once,
  ~0.3 s after the change (failures are only logged, as localstripe does).
- `DELETE /_config/data` is forwarded and wipes the invoices, events and idempotency keys too.
- `GET /v1/events` merges localstripe's events with the invoice events, newest first.
- `Idempotency-Key` on a POST to an invoice route replays the first answer, as Stripe does.

SIGTERM/SIGINT stop localstripe and exit 0; if localstripe dies, this exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from multidict import CIMultiDict
from yarl import URL

from .processes import free_port, plain_localstripe_command, start, stop, wait_for_port
from .stripe_invoices import InvoiceBook, Json, Params, StripeError, event_matches, page, parse_form, random_id

logger = logging.getLogger("stripe_front")
WEBHOOK_DELAY_SECONDS = 0.3  # Stripe sends shortly after the change, never inside the API call
IDEMPOTENCY_TTL_SECONDS = 24 * 3600  # how long Stripe keeps a key
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length",
              "proxy-authorization", "proxy-authenticate"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Target:
    """A webhook target, with its own queue so one slow receiver delays no other."""

    url: str
    secret: str
    events: list[str] | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None


@dataclass
class Remembered:
    when: float
    endpoint: str
    fingerprint: str
    status: int
    body: bytes


def unauthorized(request: web.Request) -> web.Response | None:
    """Stripe's 401 unless the request carries a secret key (as localstripe checks too)."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer sk_") or auth.startswith("Basic "):
        return None
    message = "You did not provide a valid API key (Authorization: Bearer sk_...)."
    return json_response({"error": {"type": "invalid_request_error", "message": message}}, 401)


def json_response(body: Json, status: int = 200, request_id: str | None = None) -> web.Response:
    headers = {"Request-Id": request_id} if request_id else None
    return web.Response(text=json.dumps(body, indent=2), status=status, content_type="application/json",
                        headers=headers)


class StripeFront:
    def __init__(self, backend: str) -> None:
        self.backend = backend.rstrip("/")
        self.book = InvoiceBook(emit=self.schedule)
        self.targets: dict[str, Target] = {}
        self.remembered: dict[str, Remembered] = {}
        self.key_locks: dict[str, asyncio.Lock] = {}
        self._session: ClientSession | None = None

    @property
    def session(self) -> ClientSession:
        # One session for every call to localstripe and every webhook (created inside the loop).
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=30), auto_decompress=False)
        return self._session

    async def close(self) -> None:
        for target in self.targets.values():
            if target.task is not None:
                target.task.cancel()
        if self._session is not None:
            await self._session.close()

    # --- proxy -----------------------------------------------------------------------------

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Anything the front does not answer itself, to localstripe and back unchanged."""
        status, headers, body = await self.forward(request.method, request.raw_path, request.headers,
                                                   await request.read())
        return web.Response(status=status, body=body, headers=headers)

    async def forward(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, CIMultiDict, bytes]:
        sent = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)
        try:
            async with self.session.request(method, URL(self.backend + raw_path, encoded=True), data=body or None,
                                            headers=sent, allow_redirects=False) as upstream:
                payload = await upstream.read()
                back = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP)
                return upstream.status, back, payload
        except (ClientError, asyncio.TimeoutError) as error:
            body = json.dumps({"error": {"type": "api_error", "message": f"localstripe unreachable: {error}"}})
            return 502, CIMultiDict({"Content-Type": "application/json"}), body.encode()

    async def customer(self, request: web.Request, customer_id: str) -> Json | None:
        """localstripe's customer (asked with the caller's key), or None if it has none such."""
        headers = {"Authorization": request.headers.get("Authorization", "")}
        status, _, body = await self.forward("GET", f"/v1/customers/{quote(customer_id, safe='')}", headers, b"")
        if status == 404:
            return None
        if status != 200:
            raise StripeError(502 if status >= 500 else status, f"localstripe answered {status} for {customer_id}")
        return json.loads(body)

    # --- configuration ---------------------------------------------------------------------

    async def config_webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        status, headers, answer = await self.forward("POST", request.raw_path, request.headers, body)
        if status == 200:  # localstripe validated it: send invoice events there as well
            form = parse_form((await request.post()).items())
            events = form.get("events")
            hook_id = request.match_info["id"]
            old = self.targets.get(hook_id)
            target = Target(form["url"], form["secret"], events if isinstance(events, list) else None)
            if old is not None:  # events already queued keep the address they were queued for
                target.queue, target.task = old.queue, old.task
            self.targets[hook_id] = target
        return web.Response(status=status, body=answer, headers=headers)

    async def wipe(self, request: web.Request) -> web.StreamResponse:
        status, headers, answer = await self.forward("DELETE", request.raw_path, request.headers, b"")
        self.book.reset()
        self.remembered.clear()
        return web.Response(status=status, body=answer, headers=headers)

    # --- webhooks --------------------------------------------------------------------------

    def schedule(self, event: Json) -> None:
        """Queue `event` for every target that wants it; delivery never holds up the API answer."""
        due = asyncio.get_running_loop().time() + WEBHOOK_DELAY_SECONDS
        wanting = [t for t in self.targets.values() if t.events is None or event["type"] in t.events]
        event["pending_webhooks"] = len(wanting)
        for target in wanting:
            target.queue.put_nowait((due, event, target.url, target.secret))
            if target.task is None or target.task.done():
                target.task = asyncio.get_running_loop().create_task(self._deliver(target))

    async def _deliver(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, event, url, secret = await target.queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            body = json.dumps(event, indent=2).encode()
            timestamp = int(time.time())
            signature = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "Stripe-Signature": f"t={timestamp},v1={signature}"}
            try:
                async with self.session.post(url, data=body, headers=headers, timeout=ClientTimeout(total=10)) as r:
                    await r.read()
                    outcome = f"answered {r.status}"
            except (ClientError, asyncio.TimeoutError, ValueError) as error:
                outcome = f"failed: {error!r}"
            logger.info('webhook "%s" %s to %s: %s', event["type"], event["id"], url, outcome)

    # --- the API's frame: auth, errors, request ids, idempotency ---------------------------

    def api(self, handler: Callable[[web.Request, Json, Json], Awaitable[Json]]) -> Handler:
        """A route of the front: `handler(request, params, request_info)` returns the answer's body."""

        async def route(request: web.Request) -> web.StreamResponse:
            if (refusal := unauthorized(request)) is not None:
                return refusal
            request_id = random_id("req_", 14)
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            if key is None:
                return await self._answer(request, handler, request_id, None)
            async with self.key_locks.setdefault(key, asyncio.Lock()):  # one request per key at a time
                return await self._idempotent(request, handler, request_id, key)

        return route

    async def _answer(self, request: web.Request, handler: Callable[..., Awaitable[Json]], request_id: str,
                      key: str | None) -> web.Response:
        raw = await request.post() if request.method == "POST" else request.query
        try:
            params = parse_form(raw.items())
            body = await handler(request, params, {"id": request_id, "idempotency_key": key})
        except StripeError as error:
            return json_response(error.body, error.status, request_id)
        return json_response(body, 200, request_id)

    async def _idempotent(self, request: web.Request, handler: Callable[..., Awaitable[Json]], request_id: str,
                          key: str) -> web.Response:
        endpoint = f"{request.method} {request.path}"
        fingerprint = hashlib.sha256(await request.read()).hexdigest()
        now = time.time()
        for old in [k for k, r in self.remembered.items() if now - r.when > IDEMPOTENCY_TTL_SECONDS]:
            del self.remembered[old]
        seen = self.remembered.get(key)
        if seen is not None:
            if seen.endpoint != endpoint or seen.fingerprint != fingerprint:
                what = "for the same endpoint" if seen.endpoint != endpoint else "with the same parameters"
                return json_response({"error": {"type": "idempotency_error", "message": "Keys for idempotent "
                                      f"requests can only be used {what} they were first used {what.split()[0]}."}},
                                     400, request_id)
            response = web.Response(body=seen.body, status=seen.status, content_type="application/json")
            response.headers["Idempotent-Replayed"] = "true"
            return response
        response = await self._answer(request, handler, request_id, key)
        # Stripe saves an answer once the endpoint began its work: a success, or a declined
        # charge; a rejected parameter is not saved, so a corrected retry runs.
        if response.status < 400 or response.status == 402:
            self.remembered[key] = Remembered(now, endpoint, fingerprint, response.status, bytes(response.body))
        return response

    # --- the invoice routes that need localstripe's customer -------------------------------

    async def create_invoice(self, request: web.Request, params: Json, info: Json) -> Json:
        customer_id = Params(params).text("customer", required=True)
        customer = await self.customer(request, customer_id)
        if customer is None:
            raise StripeError(400, f"No such customer: '{customer_id}'", param="customer", code="resource_missing")
        return self.book.create_invoice(params, info, customer)

    def with_customer(self, action: Callable[[str, Json, Json, Json | None], Json]) -> Handler:
        """finalize and pay: they read the invoice's customer from localstripe (its fields, its
        `sandbox_payment` metadata)."""

        async def handler(request: web.Request, params: Json, info: Json) -> Json:
            invoice_id = request.match_info["id"]
            customer = await self.customer(request, self.book.invoice(invoice_id)["customer"])
            return action(invoice_id, params, info, customer)

        return self.api(handler)

    # --- events ----------------------------------------------------------------------------

    async def list_events(self, request: web.Request) -> web.StreamResponse:
        """localstripe's events (every page) and the front's, filtered, newest first, then paged."""
        params = parse_form(request.query.items())
        # localstripe filters `type` only exactly (no wildcard): then filter here alone.
        here_only = ("limit", "starting_after")
        query = [(k, v) for k, v in request.query.items()
                 if k.split("[")[0] not in here_only and not (k == "type" and "*" in v)]
        theirs: list[Json] = []
        while True:
            cursor = [("starting_after", theirs[-1]["id"])] if theirs else []
            path = "/v1/events?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in [*query, ("limit", "100"), *cursor])
            status, headers, body = await self.forward("GET", path, request.headers, b"")
            if status != 200:
                return web.Response(status=status, body=body, headers=headers)
            got = json.loads(body)
            theirs.extend(got["data"])
            if not got["has_more"] or not got["data"]:
                break
        try:
            # Events carry whole seconds: within one, localstripe's count as the older ones.
            ordered = [((e["created"], 0, i), e) for i, e in enumerate(theirs)]  # localstripe lists oldest first
            ordered += [((e["created"], 1, i), e) for i, e in enumerate(self.book.events)]
            chosen = [e for _, e in sorted(ordered, key=lambda pair: pair[0], reverse=True) if event_matches(e, params)]
            return json_response(page(chosen, params, "/v1/events"))
        except StripeError as error:
            return json_response(error.body, error.status)

    async def retrieve_event(self, request: web.Request) -> web.StreamResponse:
        event = self.book.event(request.match_info["id"])
        if event is None:
            return await self.proxy(request)
        return unauthorized(request) or json_response(event)

    def app(self) -> web.Application:
        book = self.book

        def by_id(action: Callable[[str, Json, Json], Json]) -> Handler:  # book.<action>(id, params, request)
            async def handler(request: web.Request, params: Json, info: Json) -> Json:
                return action(request.match_info["id"], params, info)

            return self.api(handler)

        def listing(action: Callable[[Json, Json], Json]) -> Handler:  # book.<action>(params, request)
            async def handler(request: web.Request, params: Json, info: Json) -> Json:
                return action(params, info)

            return self.api(handler)

        app = web.Application()
        app.on_cleanup.append(lambda _: self.close())
        app.add_routes([
            web.post("/_config/webhooks/{id}", self.config_webhook),
            web.delete("/_config/data", self.wipe),
            web.post("/v1/invoices", self.api(self.create_invoice)),
            web.get("/v1/invoices", listing(book.list_invoices)),
            web.get("/v1/invoices/{id}", by_id(book.retrieve_invoice)),
            web.post("/v1/invoices/{id}", by_id(book.update_invoice)),
            web.delete("/v1/invoices/{id}", by_id(book.delete_invoice)),
            web.post("/v1/invoices/{id}/finalize", self.with_customer(book.finalize)),
            web.post("/v1/invoices/{id}/pay", self.with_customer(book.pay)),
            web.post("/v1/invoices/{id}/void", by_id(book.void)),
            web.post("/v1/invoices/{id}/mark_uncollectible", by_id(book.mark_uncollectible)),
            web.get("/v1/invoices/{id}/lines", by_id(book.list_lines)),
            web.post("/v1/invoiceitems", listing(book.create_item)),
            web.get("/v1/invoiceitems", listing(book.list_items)),
            web.get("/v1/invoiceitems/{id}", by_id(book.retrieve_item)),
            web.post("/v1/invoiceitems/{id}", by_id(book.update_item)),
            web.delete("/v1/invoiceitems/{id}", by_id(book.delete_item)),
            web.get("/v1/events", self.list_events),
            web.get("/v1/events/{id}", self.retrieve_event),
            # Last: a path above with another method falls through to here (aiohttp tries on).
            web.route("*", "/{tail:.*}", self.proxy),
        ])
        return app


async def serve(front: StripeFront, host: str, port: int, child: subprocess.Popen) -> int:
    access = logging.getLogger("stripe_front.access")
    runner = web.AppRunner(front.app(), access_log=access, access_log_format='%a "%r" %s %b %Tfs',
                           handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"Stripe front on http://{host}:{port} (invoices here, the rest to {front.backend})", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    code = 0
    while not stopping.is_set():
        if child.poll() is not None:  # without localstripe the front is useless: let a supervisor see it
            logger.error("localstripe exited with %s; stopping", child.returncode)
            code = 1
            break
        try:
            await asyncio.wait_for(stopping.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass
    await runner.cleanup()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.stripe_front", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="stripe_front %(message)s")

    def interrupted(signum: int, _frame: Any) -> None:
        raise SystemExit(0)  # stopped while starting: the `finally` below still stops localstripe

    signal.signal(signal.SIGTERM, interrupted)
    backend_port = free_port()
    child = start(plain_localstripe_command(backend_port), die_with_parent=True)
    try:
        wait_for_port(backend_port, process=child)
        return asyncio.run(serve(StripeFront(f"http://127.0.0.1:{backend_port}"), args.host, args.port, child))
    except ChildProcessError as error:
        print(f"localstripe did not start: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(child)


if __name__ == "__main__":
    sys.exit(main())
