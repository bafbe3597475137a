"""The invoice front (sandbox/stripe_front.py): Stripe's Invoice API in front of localstripe,
driven with the real `stripe` client, its webhooks checked with `stripe.Webhook.construct_event`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from sandbox.processes import free_port, localstripe_command, start, stop, wait_for_port
from sandbox.stripe_invoices import invoice_prefix

from .helpers import wait_until

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stripe"
SECRET = "whsec_front_test"
DAY = 86400


class Receiver:
    """A webhook endpoint on a thread: keeps every (raw body, Stripe-Signature) it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[Any]:
        """Every delivery, verified as the hub verifies them (raises if one is not signed right)."""
        return [stripe.Webhook.construct_event(body, header, SECRET) for body, header in list(self.received)]

    def types_for(self, object_id: str) -> list[str]:
        return [e.type for e in self.events() if e.data.object.id == object_id]


def register(base: str, hook_id: str, url: str) -> None:
    data = urllib.parse.urlencode({"url": url, "secret": SECRET}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{base}/_config/webhooks/{hook_id}", data=data), timeout=10).read()


@pytest.fixture
def receiver(stripe_base):
    receiver = Receiver()
    register(stripe_base, "test", receiver.url)
    yield receiver
    register(stripe_base, "test", "http://127.0.0.1:9/gone")  # the session's emulator outlives this test
    receiver.server.shutdown()


def raw(base: str, method: str, path: str, params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A call without the library, to see status, body and headers exactly."""
    data = urllib.parse.urlencode(params or {}).encode() if method == "POST" else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer sk_test_unit", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def new_customer(client: stripe.StripeClient, **params: Any) -> str:
    return client.v1.customers.create(params={"email": "billing@example.com", "name": "Ada Billing", **params}).id


def draft_with_item(client: stripe.StripeClient, customer: str, amount: int = 2000) -> str:
    invoice = client.v1.invoices.create(params={"customer": customer})
    client.v1.invoice_items.create(params={"customer": customer, "invoice": invoice.id, "amount": amount})
    return invoice.id


def test_invoice_lifecycle_and_its_webhooks(stripe_sandbox, receiver):
    client = stripe_sandbox
    customer = new_customer(client)
    due = int(time.time()) + 14 * DAY
    invoice = client.v1.invoices.create(params={
        "customer": customer, "collection_method": "send_invoice", "due_date": due, "description": "Consulting",
        "metadata": {"po": "PO-1"}, "currency": "eur",
    })
    assert (invoice.status, invoice.number, invoice.due_date, invoice.currency) == ("draft", None, due, "eur")
    assert (invoice.total, invoice.amount_due, invoice.lines.data) == (0, 0, [])
    assert invoice.metadata.to_dict() == {"po": "PO-1"}
    assert invoice.customer_email == "billing@example.com" and invoice.livemode is False
    assert invoice.status_transitions.to_dict() == dict.fromkeys(
        ("finalized_at", "marked_uncollectible_at", "paid_at", "voided_at"))

    hours = client.v1.invoice_items.create(params={
        "customer": customer, "invoice": invoice.id, "unit_amount": 1000, "quantity": 3, "description": "Hours"})
    travel = client.v1.invoice_items.create(params={"customer": customer, "invoice": invoice.id, "amount": 500})
    assert (hours.amount, hours.quantity, hours.invoice) == (3000, 3, invoice.id)
    assert (travel.amount, travel.currency) == (500, "eur")
    travel = client.v1.invoice_items.update(travel.id, params={"amount": 750, "metadata": {"k": "v"}})
    assert travel.amount == 750
    client.v1.invoices.update(invoice.id, params={"description": "Consulting, May", "metadata": {"po": ""}})

    invoice = client.v1.invoices.finalize_invoice(invoice.id)
    assert invoice.status == "open" and invoice.number == f"{invoice_prefix(customer)}-0001"
    assert (invoice.subtotal, invoice.total, invoice.amount_due, invoice.amount_remaining) == (3750, 3750, 3750, 3750)
    assert invoice.status_transitions.finalized_at and invoice.effective_at == invoice.status_transitions.finalized_at
    assert (invoice.description, invoice.metadata.to_dict()) == ("Consulting, May", {})
    lines = client.v1.invoices.line_items.list(invoice.id)
    assert [(line.invoice_item, line.type, line.amount) for line in lines.data] == [
        (hours.id, "invoiceitem", 3000), (travel.id, "invoiceitem", 750)]
    assert lines.data[1].metadata.to_dict() == {"k": "v"}

    invoice = client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 3750, 0)
    assert invoice.status_transitions.paid_at

    voided = client.v1.invoices.finalize_invoice(draft_with_item(client, customer))
    assert voided.number == f"{invoice_prefix(customer)}-0002"
    voided = client.v1.invoices.void_invoice(voided.id)
    assert voided.status == "void" and voided.status_transitions.voided_at and voided.amount_remaining == 2000

    doubtful = client.v1.invoices.finalize_invoice(draft_with_item(client, customer))
    doubtful = client.v1.invoices.mark_uncollectible(doubtful.id)
    assert doubtful.status == "uncollectible" and doubtful.status_transitions.marked_uncollectible_at

    dropped = client.v1.invoices.create(params={"customer": customer})
    assert client.v1.invoices.delete(dropped.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.invoices.retrieve(dropped.id)
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"

    listed = client.v1.invoices.list(params={"customer": customer})
    assert [i.id for i in listed.data] == [doubtful.id, voided.id, invoice.id]
    assert [i.id for i in client.v1.invoices.list(params={"customer": customer, "status": "void"}).data] == [voided.id]

    expected = {
        invoice.id: ["invoice.created", "invoice.updated", "invoice.updated", "invoice.updated", "invoice.updated",
                     "invoice.finalized", "invoice.updated", "invoice.paid", "invoice.updated"],
        voided.id: ["invoice.created", "invoice.updated", "invoice.finalized", "invoice.updated", "invoice.voided",
                    "invoice.updated"],
        doubtful.id: ["invoice.created", "invoice.updated", "invoice.finalized", "invoice.updated",
                      "invoice.marked_uncollectible", "invoice.updated"],
        dropped.id: ["invoice.created", "invoice.deleted"],
    }
    wait_until(lambda: all(len(receiver.types_for(i)) >= len(t) for i, t in expected.items()), timeout=15,
               message="the invoice webhooks")
    time.sleep(0.5)  # nothing more is coming
    assert {i: receiver.types_for(i) for i in expected} == expected
    # localstripe's own customer events still arrive through the same registration.
    wait_until(lambda: [e for e in receiver.events() if e.type == "customer.created" and e.data.object.id == customer],
               timeout=10, message="customer.created from localstripe")

    events = {e.id: e for e in receiver.events()}
    sent = [e for e in events.values() if e.data.object.id == invoice.id]
    assert all(e.api_version == "2017-08-15" and e.livemode is False for e in sent)
    updates = [e.data.to_dict()["previous_attributes"] for e in sent if e.type == "invoice.updated"]
    assert updates[0] == {"total": 0, "subtotal": 0, "amount_due": 0}  # the first item
    assert updates[2] == {"total": 3500, "subtotal": 3500, "amount_due": 3500}  # the item's new amount
    assert updates[3] == {"description": "Consulting", "metadata": {"po": "PO-1"}}
    assert updates[4]["status"] == "draft" and updates[4]["number"] is None
    assert updates[4]["status_transitions"] == {"finalized_at": None}
    finalized = next(e for e in sent if e.type == "invoice.finalized")
    assert finalized.data.object.status == "open" and "previous_attributes" not in finalized.data.to_dict()
    deleted = next(e for e in events.values() if e.type == "invoice.deleted")
    assert deleted.data.object.id == dropped.id and deleted.data.object.status == "draft"


def test_declined_card_payment(stripe_sandbox, receiver):
    client = stripe_sandbox
    customer = new_customer(client, metadata={"sandbox_payment": "decline"})
    invoice_id = draft_with_item(client, customer, amount=1500)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.invoices.pay(invoice_id)  # a draft: finalized first, then the card is declined
    assert declined.value.http_status == 402 and declined.value.code == "card_declined"
    invoice = client.v1.invoices.retrieve(invoice_id)
    assert (invoice.status, invoice.attempt_count, invoice.attempted, invoice.amount_paid) == ("open", 1, True, 0)
    # Each webhook is sent on its own, so two sent within a moment may arrive in either order.
    wait_until(
        lambda: sorted(receiver.types_for(invoice_id)[-3:])
        == ["invoice.payment_failed", "invoice.updated", "invoice.updated"],
        timeout=10,
        message="invoice.payment_failed between two invoice.updated",
    )

    # The card works once the customer's metadata no longer declines it.
    client.v1.customers.update(customer, params={"metadata": {"sandbox_payment": ""}})
    invoice = client.v1.invoices.pay(invoice_id)
    assert (invoice.status, invoice.attempt_count, invoice.amount_paid) == ("paid", 2, 1500)
    wait_until(lambda: receiver.types_for(invoice_id)[-3:] == [
        "invoice.paid", "invoice.payment_succeeded", "invoice.updated"], timeout=10, message="paid events")


def test_idempotency_key_repeats_the_first_answer(stripe_sandbox, stripe_base):
    client = stripe_sandbox
    customer = new_customer(client)
    options = {"idempotency_key": "front-create-1"}
    first = client.v1.invoices.create(params={"customer": customer}, options=options)
    again = client.v1.invoices.create(params={"customer": customer}, options=options)
    assert again.id == first.id
    assert [i.id for i in client.v1.invoices.list(params={"customer": customer}).data] == [first.id]
    with pytest.raises(stripe.IdempotencyError):
        client.v1.invoices.create(params={"customer": customer, "description": "other"}, options=options)
    status, body, headers = raw(stripe_base, "POST", "/v1/invoices", {"customer": customer},
                                {"Idempotency-Key": "front-create-1"})
    assert status == 200 and body["id"] == first.id and headers.get("Idempotent-Replayed") == "true"


def test_errors_are_stripe_shaped(stripe_sandbox, stripe_base):
    client = stripe_sandbox
    customer = new_customer(client)
    cases = [
        ({"customer": "cus_doesnotexist"}, 400, "resource_missing", "customer"),
        ({}, 400, "parameter_missing", "customer"),
        ({"customer": customer, "due_date": int(time.time()) + DAY}, 400, None, "due_date"),
        ({"customer": customer, "collection_method": "by_pigeon"}, 400, None, "collection_method"),
        ({"customer": customer, "unknown_thing": "x"}, 400, "parameter_unknown", "unknown_thing"),
    ]
    for params, status, code, param in cases:
        got_status, body, _ = raw(stripe_base, "POST", "/v1/invoices", params)
        assert (got_status, body["error"].get("code"), body["error"].get("param")) == (status, code, param), body
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.invoices.create(params={"customer": "cus_doesnotexist"})
    assert unknown.value.http_status == 400 and unknown.value.param == "customer"

    invoice = client.v1.invoices.finalize_invoice(draft_with_item(client, customer))
    for params, code, param in [
        ({"customer": customer, "invoice": invoice.id, "amount": 100}, "invoice_not_editable", "invoice"),
        ({"customer": customer, "amount": 100}, "parameter_missing", "invoice"),  # pending items: not here
    ]:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.invoice_items.create(params=params)
        assert (refused.value.http_status, refused.value.code, refused.value.param) == (400, code, param)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.invoices.delete(invoice.id)
    assert refused.value.http_status == 400
    client.v1.invoices.void_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert refused.value.http_status == 400
    assert raw(stripe_base, "GET", "/v1/invoices/in_nothing")[0] == 404
    status, body, _ = raw(stripe_base, "GET", "/v1/invoices", headers={"Authorization": ""})
    assert status == 401 and body["error"]["type"] == "invalid_request_error"


def test_events_api_lists_the_invoice_events_with_localstripes(stripe_sandbox):
    client = stripe_sandbox
    customer = new_customer(client)
    invoice = client.v1.invoices.finalize_invoice(draft_with_item(client, customer))
    finalized = client.v1.events.list(params={"type": "invoice.finalized"})
    assert [e.data.object.id for e in finalized.data] == [invoice.id]
    assert client.v1.events.retrieve(finalized.data[0].id).type == "invoice.finalized"
    every = client.v1.events.list(params={"limit": 100}).data
    types = [e.type for e in every]
    assert types[-1] == "customer.created" and types[0] == "invoice.updated"  # newest first, both sources
    assert [e.type for e in client.v1.events.list(params={"type": "invoice.*", "limit": 100}).data] == [
        "invoice.updated", "invoice.finalized", "invoice.updated", "invoice.created"]
    page_one = client.v1.events.list(params={"limit": 2})
    page_two = client.v1.events.list(params={"limit": 100, "starting_after": page_one.data[-1].id})
    assert page_one.has_more and [e.id for e in [*page_one.data, *page_two.data]] == [e.id for e in every]
    recent = client.v1.events.list(params={"created": {"gte": int(time.time()) + 60}})
    assert recent.data == []


def test_objects_carry_every_key_of_the_published_fixtures(stripe_sandbox, stripe_base):
    client = stripe_sandbox
    customer = new_customer(client)
    invoice_id = draft_with_item(client, customer)
    invoice = raw(stripe_base, "GET", f"/v1/invoices/{invoice_id}")[1]
    item = raw(stripe_base, "GET", f"/v1/invoiceitems/{invoice['lines']['data'][0]['invoice_item']}")[1]
    published = json.loads((FIXTURES / "invoice.json").read_text())
    assert list(invoice) == list(published)  # the same keys, in the same order
    for key in ("automatic_tax", "status_transitions", "rendering", "payment_settings", "issuer"):
        assert set(invoice[key]) == set(published[key]), key
    # `total_count` (a list's count) and the line's `invoice_item` and `type` (their pre-2025 names) are extra.
    assert set(invoice["lines"]) == set(published["lines"]) | {"total_count"}
    assert set(invoice["lines"]["data"][0]) == set(published["lines"]["data"][0]) | {"invoice_item", "type"}
    assert set(item) == set(json.loads((FIXTURES / "invoiceitem.json").read_text()))
    event = json.loads((FIXTURES / "invoice_created.json").read_text())
    ours = client.v1.events.list(params={"type": "invoice.created"}).data[0].to_dict(recursive=True)
    assert set(ours) == set(event) and set(ours["request"]) == set(event["request"])
    assert ours["request"]["id"].startswith("req_")


def test_other_requests_pass_through_unchanged(stripe_sandbox, stripe_base):
    client = stripe_sandbox
    customer = new_customer(client, metadata={"tier": "gold"})
    assert client.v1.customers.retrieve(customer).metadata["tier"] == "gold"
    status, body, _ = raw(stripe_base, "GET", "/v1/customers/cus_absent")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"  # localstripe's own answer
    assert raw(stripe_base, "GET", "/v1/customers", headers={"Authorization": ""})[0] == 401


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, the front, may not have reaped it yet).
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


@pytest.mark.parametrize("how", ["stop", "sigkill", "child dies"])
def test_the_front_and_its_localstripe_end_together(tmp_path, how):
    port = free_port()
    front = start(localstripe_command(port), log_path=tmp_path / "front.log")
    wait_for_port(port, process=front)
    [backend] = children(front.pid)
    assert "localstripe" in Path(f"/proc/{backend}/cmdline").read_text()
    if how == "stop":
        assert stop(front) == 0
    elif how == "sigkill":
        front.send_signal(signal.SIGKILL)
        front.wait()
    else:
        os.kill(backend, signal.SIGKILL)
        assert front.wait(timeout=10) == 1  # the front is nothing without it: a supervisor must see
    wait_until(lambda: not alive(backend), timeout=10, message="localstripe gone")
