"""The invoice front's state and rules: Stripe's Invoice and InvoiceItem APIs, in memory.

Pure and synchronous (no HTTP): `sandbox/stripe_front.py` parses requests, looks customers up
in localstripe and calls `InvoiceBook`. Objects carry every key of Stripe's published fixtures
(`tests/fixtures/stripe/invoice.json`, `invoiceitem.json`; `tests/test_stripe_front.py` checks
that), with emulated values, and Stripe's nulls where a feature (tax, discounts, subscriptions,
hosted pages) is not emulated. Every change records an Event and hands it to `emit`.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable
from typing import Any

# The version localstripe's own events carry: one account, one version for every event it sends.
API_VERSION = "2017-08-15"
STATUSES = ("draft", "open", "paid", "uncollectible", "void")
COLLECTION_METHODS = ("charge_automatically", "send_invoice")
# Stripe's default payment terms: a send_invoice invoice created without a due_date is due then.
DEFAULT_DAYS_UNTIL_DUE = 30
EMBEDDED_LINES = 10  # an invoice embeds its first 10 lines; the rest through /lines, as Stripe does
AMOUNT_KEYS = ("total", "subtotal", "amount_due")  # previous_attributes of a change to the lines
_ALPHABET = string.ascii_letters + string.digits

Json = dict[str, Any]


class StripeError(Exception):
    """An answer in Stripe's error shape: `{"error": {"type", "message", "param"?, "code"?}}`."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        type_: str = "invalid_request_error", **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        # Like Stripe, keys that do not apply are left out rather than sent as null.
        fields = {"code": code, "param": param, **extra}
        self.body = {"error": {"type": type_, "message": message, **{k: v for k, v in fields.items() if v is not None}}}


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def missing(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{object_id}'", param=param, code="resource_missing")


def parse_form(pairs: Iterable[tuple[str, str]]) -> Json:
    """Stripe's form encoding: `metadata[k]=v` and `created[gte]=1` nest, `expand[]=x` and
    `types[0]=x` make lists. Values stay strings, as they arrive."""
    root: Json = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (rest[:-1].split("][") if rest.endswith("]") else [])
        node = root
        for part, following in zip(parts, parts[1:] + [None]):
            if following is None:
                if part == "":
                    node.setdefault("", []).append(value)
                else:
                    node[part] = value
            else:
                # A key sent both flat and nested (`a=1&a[b]=2`): the nested part is dropped.
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if set(node) == {""}:
        return list(node[""])
    if node and all(key.isdigit() for key in node):
        return [_lists(node[key]) for key in sorted(node, key=int)]
    return {key: _lists(value) for key, value in node.items()}


def diff(old: Json, new: Json, *, skip: tuple[str, ...] = ()) -> Json:
    """Stripe's `previous_attributes`: the old values of what changed; nested hashes give only
    their changed leaves, a key that was added shows as null, arrays are given whole."""
    changed: Json = {}
    for key in dict.fromkeys([*old, *new]):
        if key in skip or old.get(key) == new.get(key):
            continue
        before, after = old.get(key), new.get(key)
        changed[key] = diff(before, after) if isinstance(before, dict) and isinstance(after, dict) else before
    return changed


def page(items: list[Json], params: Json, url: str) -> Json:
    """One page of a Stripe list (`items` newest first): `limit` 1-100 (default 10), `starting_after`."""
    limit = Params(params).integer("limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise StripeError(400, "This value must be between 1 and 100 (inclusive).", param="limit")
    cursor = params.get("starting_after")
    if cursor is not None:
        ids = [item["id"] for item in items]
        if cursor not in ids:
            raise missing("object", str(cursor), param="starting_after")
        items = items[ids.index(cursor) + 1 :]
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}


def event_matches(event: Json, params: Json) -> bool:
    """`GET /v1/events` filters: `type` (exact, or with `*` wildcards), `created[gt|gte|lt|lte]`."""
    wanted = params.get("type")
    if wanted is not None and not fnmatch.fnmatchcase(event["type"], str(wanted)):
        return False
    created = Params(params["created"] if isinstance(params.get("created"), dict) else {})
    for op, test in {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}.items():
        bound = created.integer(op)
        if bound is not None and not test(event["created"], bound):
            return False
    return True


class Params:
    """A request's parameters, read as Stripe reads them; unknown names are a 400 as in Stripe."""

    def __init__(self, data: Json, allowed: Iterable[str] | None = None) -> None:
        self.data = data
        if allowed is not None:
            unknown = sorted(set(data) - set(allowed) - {"expand"})  # expand: accepted, not applied
            if unknown:
                raise StripeError(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0],
                                  code="parameter_unknown")

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def text(self, name: str, *, required: bool = False, why: str = "") -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise StripeError(400, f"Missing required param: {name}.{why}", param=name, code="parameter_missing")
            return None
        if not isinstance(value, str):
            raise StripeError(400, f"Invalid string: {name}", param=name, code="parameter_invalid_string")
        return value

    def integer(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        try:
            return int(str(value))
        except ValueError:
            raise StripeError(400, f"Invalid integer: {value}", param=name, code="parameter_invalid_integer") from None

    def flag(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if value not in ("true", "false"):
            raise StripeError(400, f"Invalid boolean: {value}", param=name, code="parameter_invalid_boolean")
        return value == "true"

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is not None and value not in choices:
            raise StripeError(400, f"Invalid {name}: must be one of {', '.join(choices)}", param=name)
        return value

    def metadata(self) -> Json | None:
        """`metadata[k]=v` (an empty value removes k), or `metadata=` (removes every key)."""
        value = self.data.get("metadata")
        if value is None or value == "":
            return None if value is None else {}
        if not isinstance(value, dict) or any(not isinstance(v, str) for v in value.values()):
            raise StripeError(400, "Invalid metadata: must be a hash of strings", param="metadata")
        return value


def merged_metadata(current: Json, changes: Json | None) -> Json:
    if changes is None:
        return dict(current)
    return {} if changes == {} else {k: v for k, v in {**current, **changes}.items() if v != ""}


def invoice_prefix(customer_id: str) -> str:
    """Stripe numbers a customer's invoices `<invoice_prefix>-<sequence>`; the prefix is random
    per customer in Stripe (3-12 upper-case letters or digits): here, derived from the id."""
    core = re.sub(r"[^A-Za-z0-9]", "", customer_id.removeprefix("cus_")).upper()[:8]
    return core.ljust(3, "X")


class InvoiceBook:
    """Invoices and their items, Stripe's lifecycle rules, and the events they send.

    Every API method takes the request's `params` (checked for unknown names) and, when it
    changes something, `request` (`{"id", "idempotency_key"}`, copied into its events).
    `emit(event)` is called for every event once it is recorded (the front sends webhooks).
    """

    def __init__(self, emit: Callable[[Json], None]) -> None:
        self.emit = emit
        self.reset()

    def reset(self) -> None:
        self.invoices: dict[str, Json] = {}  # insertion order = creation order
        self.lines: dict[str, list[Json]] = {}
        self.items: dict[str, Json] = {}
        self.next_number: dict[str, int] = {}  # customer → next invoice sequence
        self.events: list[Json] = []  # oldest first

    # --- reading ---------------------------------------------------------------------------

    def invoice(self, invoice_id: str, *, param: str = "invoice", status: int = 404) -> Json:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise missing("invoice", invoice_id, param=param, status=status)
        return invoice

    def export(self, invoice: Json) -> Json:
        """The invoice as the API shows it, a copy (events keep the state they were sent at)."""
        shown = copy.deepcopy(invoice)
        lines = self.lines[invoice["id"]]
        shown["lines"] = {"object": "list", "data": copy.deepcopy(lines[:EMBEDDED_LINES]),
                          "has_more": len(lines) > EMBEDDED_LINES, "total_count": len(lines),
                          "url": f"/v1/invoices/{invoice['id']}/lines"}
        return shown

    def retrieve_invoice(self, invoice_id: str, params: Json, request: Json) -> Json:
        Params(params, ())
        return self.export(self.invoice(invoice_id))

    def list_invoices(self, params: Json, request: Json) -> Json:
        p = Params(params, {"customer", "status", "created", "limit", "starting_after"})
        customer, status = p.text("customer"), p.choice("status", STATUSES)
        chosen = [self.export(invoice) for invoice in reversed(self.invoices.values())
                  if customer in (None, invoice["customer"]) and status in (None, invoice["status"])
                  and event_matches({"type": "", "created": invoice["created"]}, {"created": params.get("created")})]
        return page(chosen, params, "/v1/invoices")

    def list_lines(self, invoice_id: str, params: Json, request: Json) -> Json:
        Params(params, {"limit", "starting_after"})
        return page(copy.deepcopy(self.lines[self.invoice(invoice_id)["id"]]), params,
                    f"/v1/invoices/{invoice_id}/lines")

    def retrieve_item(self, item_id: str, params: Json | None = None, request: Json | None = None) -> Json:
        Params(params or {}, ())
        if item_id not in self.items:
            raise missing("invoiceitem", item_id)
        return self.items[item_id]

    def list_items(self, params: Json, request: Json) -> Json:
        p = Params(params, {"customer", "invoice", "limit", "starting_after"})
        customer, invoice = p.text("customer"), p.text("invoice")
        chosen = [copy.deepcopy(item) for item in reversed(self.items.values())
                  if customer in (None, item["customer"]) and invoice in (None, item["invoice"])]
        return page(chosen, params, "/v1/invoiceitems")

    # --- invoices --------------------------------------------------------------------------

    def create_invoice(self, params: Json, request: Json, customer: Json) -> Json:
        """A draft for `customer` (localstripe's customer object, which the front looked up)."""
        p = Params(params, {"customer", "currency", "description", "collection_method", "due_date", "auto_advance",
                            "pending_invoice_items_behavior", "metadata"})
        # Pending items are not emulated: "include" could only ever add nothing, i.e. "exclude".
        p.choice("pending_invoice_items_behavior", ("exclude", "include"))
        currency = (p.text("currency") or "usd").lower()
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise StripeError(400, f"Invalid currency: {currency}.", param="currency")
        now = int(time.time())
        invoice = {  # the keys of Stripe's published invoice, in its order
            "account_country": "US", "account_name": None, "account_tax_ids": None, "amount_due": 0, "amount_paid": 0,
            "amount_remaining": 0, "amount_shipping": 0, "application": None, "attempt_count": 0, "attempted": False,
            "auto_advance": bool(p.flag("auto_advance")),
            "automatic_tax": {"enabled": False, "liability": None, "status": None, "disabled_reason": None,
                              "provider": None},
            "billing_reason": "manual", "collection_method": "charge_automatically", "created": now,
            "currency": currency, "custom_fields": None, "customer": customer["id"], "customer_address": None,
            "customer_email": None, "customer_name": None, "customer_phone": None,
            "customer_shipping": customer.get("shipping"), "customer_tax_exempt": customer.get("tax_exempt") or "none",
            "customer_tax_ids": [], "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": p.text("description"), "discounts": [], "due_date": None, "effective_at": None,
            "ending_balance": None, "footer": None, "from_invoice": None, "hosted_invoice_url": None,
            "id": random_id("in_"), "invoice_pdf": None, "issuer": {"type": "self"}, "last_finalization_error": None,
            "latest_revision": None, "lines": None, "livemode": False, "metadata": merged_metadata({}, p.metadata()),
            "next_payment_attempt": None, "number": None, "object": "invoice", "on_behalf_of": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": now, "period_start": now, "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0, "receipt_number": None,
            "rendering": {"amount_tax_display": None, "pdf": {"page_size": None}, "template": None,
                          "template_version": None},
            "shipping_cost": None, "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
            "status": "draft", "status_transitions": dict.fromkeys(("finalized_at", "marked_uncollectible_at",
                                                                     "paid_at", "voided_at")),
            "subscription": None, "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": None, "total": 0,
            "total_discount_amounts": [], "total_excluding_tax": 0, "webhooks_delivered_at": None,
            # auto_advance is kept, but nothing advances on its own here: no finalization time to promise.
            "automatically_finalizes_at": None, "total_pretax_credit_amounts": None, "total_taxes": None,
            "amount_overpaid": 0, "parent": None, "customer_account": None,
        }
        _follow_customer(invoice, customer)
        self._set_terms(invoice, p, p.choice("collection_method", COLLECTION_METHODS) or "charge_automatically")
        self.invoices[invoice["id"]] = invoice
        self.lines[invoice["id"]] = []
        self._event("invoice.created", invoice, request)
        return self.export(invoice)

    @staticmethod
    def _set_terms(invoice: Json, p: Params, method: str) -> None:
        """`collection_method` and `due_date`: only send_invoice has a due date, as in Stripe."""
        due_date = p.integer("due_date")
        if due_date is not None and method != "send_invoice":
            raise StripeError(400, "You can only set `due_date` if `collection_method` is `send_invoice`.",
                              param="due_date")
        if due_date is not None and due_date < int(time.time()):
            raise StripeError(400, "The `due_date` must be in the future.", param="due_date")
        invoice["collection_method"] = method
        if method == "charge_automatically":
            invoice["due_date"] = None
        else:
            invoice["due_date"] = due_date or invoice["due_date"] or invoice["created"] + 86400 * DEFAULT_DAYS_UNTIL_DUE

    def update_invoice(self, invoice_id: str, params: Json, request: Json) -> Json:
        p = Params(params, {"description", "metadata", "due_date", "collection_method", "auto_advance"})
        invoice = self.invoice(invoice_id)
        before = self.export(invoice)
        terms = [name for name in ("due_date", "collection_method") if name in p]
        if terms and invoice["status"] != "draft":
            raise StripeError(400, f"You can only update `{terms[0]}` on a draft invoice; {invoice_id} is "
                              f"{invoice['status']}.", param=terms[0], code="invoice_not_editable")
        metadata = merged_metadata(invoice["metadata"], p.metadata())
        if terms:
            method = p.choice("collection_method", COLLECTION_METHODS) or invoice["collection_method"]
            self._set_terms(invoice, p, method)
        if "description" in p:
            invoice["description"] = p.text("description")  # "" unsets, as in Stripe
        if "auto_advance" in p:
            invoice["auto_advance"] = bool(p.flag("auto_advance"))
        invoice["metadata"] = metadata
        if changed := diff(before, self.export(invoice), skip=("lines",)):
            self._event("invoice.updated", invoice, request, previous=changed)
        return self.export(invoice)

    def delete_invoice(self, invoice_id: str, params: Json, request: Json) -> Json:
        Params(params, ())
        invoice = self.invoice(invoice_id)
        if invoice["status"] != "draft":
            raise StripeError(400, f"You can only delete draft invoices; {invoice_id} is {invoice['status']}.",
                              code="invoice_not_editable")
        last = self.export(invoice)  # invoice.deleted carries the last draft state (like customer.deleted)
        del self.invoices[invoice_id]
        for line in self.lines.pop(invoice_id):  # items exist only on their invoice here: they go too
            self.items.pop(line["invoice_item"], None)
        self._record("invoice.deleted", last, request)
        return {"id": invoice_id, "object": "invoice", "deleted": True}

    def finalize(self, invoice_id: str, params: Json, request: Json, customer: Json | None) -> Json:
        Params(params, {"auto_advance"})
        invoice = self.invoice(invoice_id)
        if invoice["status"] != "draft":
            raise StripeError(400, f"This invoice is already finalized ({invoice['status']}); only draft invoices "
                              "can be finalized.", code="invoice_not_editable")
        before = self.export(invoice)
        now = int(time.time())
        if customer is not None:  # the customer_* fields stop following the customer here
            _follow_customer(invoice, customer)
        sequence = self.next_number.get(invoice["customer"], 1)
        self.next_number[invoice["customer"]] = sequence + 1
        invoice.update(status="open", number=f"{invoice_prefix(invoice['customer'])}-{sequence:04d}",
                       effective_at=now, ending_balance=0, amount_remaining=invoice["amount_due"])
        invoice["status_transitions"]["finalized_at"] = now
        self._event("invoice.finalized", invoice, request)
        if invoice["amount_due"] == 0:  # Stripe marks a zero-amount invoice paid as it finalizes it
            self._mark_paid(invoice, now, request)
        self._updated(invoice, before, request)
        return self.export(invoice)

    def pay(self, invoice_id: str, params: Json, request: Json, customer: Json | None) -> Json:
        """Out of band, or "the card": declined when the customer's metadata says
        `sandbox_payment=decline` (localstripe's customers have no usable payment methods)."""
        out_of_band = bool(Params(params, {"paid_out_of_band"}).flag("paid_out_of_band"))
        invoice = self.invoice(invoice_id)
        if invoice["status"] in ("paid", "void"):
            raise StripeError(400, f"Invoice is already {invoice['status']}.", code="invoice_unexpected_state")
        if invoice["status"] == "draft":
            self.finalize(invoice_id, {}, request, customer)  # as Stripe does before paying
            if invoice["status"] == "paid":
                return self.export(invoice)
        before = self.export(invoice)
        if not out_of_band:
            invoice.update(attempt_count=invoice["attempt_count"] + 1, attempted=True)
            if ((customer or {}).get("metadata") or {}).get("sandbox_payment") == "decline":
                self._event("invoice.payment_failed", invoice, request)
                self._updated(invoice, before, request)
                raise StripeError(402, "Your card was declined.", type_="card_error", code="card_declined",
                                  decline_code="generic_decline")
        self._mark_paid(invoice, int(time.time()), request)
        if not out_of_band:
            self._event("invoice.payment_succeeded", invoice, request)
        self._updated(invoice, before, request)
        return self.export(invoice)

    def _mark_paid(self, invoice: Json, now: int, request: Json) -> None:
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
        invoice["status_transitions"]["paid_at"] = now
        self._event("invoice.paid", invoice, request)

    def void(self, invoice_id: str, params: Json, request: Json) -> Json:
        return self._transition(invoice_id, params, ("open", "uncollectible"), "void", "voided_at", request)

    def mark_uncollectible(self, invoice_id: str, params: Json, request: Json) -> Json:
        return self._transition(invoice_id, params, ("open",), "uncollectible", "marked_uncollectible_at", request)

    def _transition(self, invoice_id: str, params: Json, sources: tuple[str, ...], target: str, stamp: str,
                    request: Json) -> Json:
        Params(params, ())
        invoice = self.invoice(invoice_id)
        if invoice["status"] not in sources:
            raise StripeError(400, f"Only {' or '.join(sources)} invoices can become {target}; {invoice_id} is "
                              f"{invoice['status']}.", code="invoice_unexpected_state")
        before = self.export(invoice)
        invoice["status"] = target
        invoice["status_transitions"][stamp] = int(time.time())
        self._event("invoice.voided" if target == "void" else "invoice.marked_uncollectible", invoice, request)
        self._updated(invoice, before, request)
        return self.export(invoice)

    # --- invoice items ---------------------------------------------------------------------

    def create_item(self, params: Json, request: Json) -> Json:
        p = Params(params, {"customer", "invoice", "currency", "description", "quantity", "unit_amount",
                            "unit_amount_decimal", "amount", "metadata"})
        customer = p.text("customer", required=True)
        invoice_id = p.text("invoice", required=True, why=" This sandbox has no pending invoice items: create the "
                           "draft invoice first and pass its id.")
        invoice = self.invoice(invoice_id, param="invoice", status=400)
        if invoice["customer"] != customer:
            raise StripeError(400, f"The invoice {invoice_id} belongs to another customer than {customer}.",
                              param="invoice")
        _require_draft(invoice)
        currency = (p.text("currency") or invoice["currency"]).lower()
        if currency != invoice["currency"]:
            raise StripeError(400, f"The currency ({currency}) must match the invoice's ({invoice['currency']}).",
                              param="currency")
        now = int(time.time())
        item_id = random_id("ii_")
        item = {  # the keys of Stripe's published invoice item, in its order
            "amount": 0, "currency": currency, "customer": customer, "date": now, "description": None,
            "discountable": True, "discounts": [], "id": item_id, "invoice": invoice_id, "livemode": False,
            "metadata": {}, "object": "invoiceitem", "period": {"end": now, "start": now}, "proration": False,
            "quantity": 1, "tax_rates": [], "test_clock": None, "parent": None,
            "pricing": {"type": "price_details", "unit_amount_decimal": None}, "net_amount": 0,
            "customer_account": None, "quantity_decimal": "1",
        }
        line = {  # the keys of the published invoice's line
            "amount": 0, "currency": currency, "description": None, "discount_amounts": [], "discountable": True,
            "discounts": [], "id": random_id("il_"), "invoice": invoice_id, "livemode": False, "metadata": {},
            "object": "line_item", "period": {"end": now, "start": now}, "quantity": 1, "subscription": None,
            "pretax_credit_amounts": None, "taxes": None,
            "parent": {"invoice_item_details": {"invoice_item": item_id, "proration": False,
                                                "proration_details": {"credited_items": None}, "subscription": None},
                       "subscription_item_details": None, "type": "invoice_item_details"},
            "pricing": None, "subtotal": 0, "quantity_decimal": "1",
            # The pre-2025 names of the same facts, which many clients still read.
            "invoice_item": item_id, "type": "invoiceitem",
        }
        self._set_item(item, line, p, quantity=1, unit_amount=None)
        self.items[item_id] = item
        self._change_lines(invoice, request, lambda lines: lines.append(line))
        return copy.deepcopy(item)

    def update_item(self, item_id: str, params: Json, request: Json) -> Json:
        p = Params(params, {"description", "quantity", "unit_amount", "unit_amount_decimal", "amount", "metadata"})
        item = self.retrieve_item(item_id)
        invoice = self.invoice(item["invoice"])
        _require_draft(invoice)
        line = next(line for line in self.lines[invoice["id"]] if line["invoice_item"] == item_id)
        self._change_lines(invoice, request, lambda lines: self._set_item(
            item, line, p, quantity=item["quantity"], unit_amount=int(item["pricing"]["unit_amount_decimal"])))
        return copy.deepcopy(item)

    def delete_item(self, item_id: str, params: Json, request: Json) -> Json:
        Params(params, ())
        invoice = self.invoice(self.retrieve_item(item_id)["invoice"])
        _require_draft(invoice)
        del self.items[item_id]
        self._change_lines(invoice, request, lambda lines: lines.remove(
            next(line for line in lines if line["invoice_item"] == item_id)))
        return {"id": item_id, "object": "invoiceitem", "deleted": True}

    @staticmethod
    def _set_item(item: Json, line: Json, p: Params, *, quantity: int, unit_amount: int | None) -> None:
        """Apply the parameters to an item and its line: `unit_amount` × `quantity`, or an
        `amount` for a quantity of one (Stripe's two ways); validated before anything changes."""
        quantity = quantity if p.integer("quantity") is None else p.integer("quantity")
        amount, new_unit = p.integer("amount"), p.integer("unit_amount")
        decimal = p.text("unit_amount_decimal") if "unit_amount_decimal" in p else None
        if decimal is not None:
            # Today's API prices an item by `unit_amount_decimal` (a decimal string of the
            # currency's minor unit); the sandbox takes whole minor units only.
            if new_unit is not None:
                raise StripeError(400, "Pass only one of unit_amount and unit_amount_decimal.", param="unit_amount")
            try:
                value = float(decimal)
            except ValueError:
                value = float("nan")
            if not value.is_integer():
                raise StripeError(400, f"Invalid decimal: {decimal} (this sandbox takes whole minor units).",
                                  param="unit_amount_decimal")
            new_unit = int(value)
        if quantity < 0:
            raise StripeError(400, "Invalid quantity: must be a non-negative integer.", param="quantity")
        if amount is not None and (new_unit is not None or quantity != 1):
            raise StripeError(400, "`amount` is the total of a quantity of 1: with `quantity`, pass `unit_amount`.",
                              param="amount")
        unit_amount = amount if amount is not None else unit_amount if new_unit is None else new_unit
        if unit_amount is None:
            raise StripeError(400, "Missing required param: amount or unit_amount.", param="amount",
                              code="parameter_missing")
        metadata = merged_metadata(item["metadata"], p.metadata())
        description = p.text("description") if "description" in p else item["description"]
        pricing = {"type": "price_details", "unit_amount_decimal": str(unit_amount)}
        item.update(amount=quantity * unit_amount, net_amount=quantity * unit_amount, quantity=quantity,
                    quantity_decimal=str(quantity), metadata=metadata, description=description, pricing=pricing)
        line.update(amount=item["amount"], subtotal=item["amount"], quantity=quantity, quantity_decimal=str(quantity),
                    metadata=dict(metadata), description=description, pricing=dict(pricing))

    def _change_lines(self, invoice: Json, request: Json, change: Callable[[list[Json]], None]) -> None:
        before = {key: invoice[key] for key in AMOUNT_KEYS}
        change(self.lines[invoice["id"]])
        subtotal = sum(line["amount"] for line in self.lines[invoice["id"]])
        # No tax, discounts or customer balance here: the total is the lines' sum; a negative
        # total (credits) is not owed, so nothing is due.
        invoice.update(subtotal=subtotal, subtotal_excluding_tax=subtotal, total=subtotal,
                       total_excluding_tax=subtotal, amount_due=max(0, subtotal), amount_remaining=max(0, subtotal))
        # Only the amounts (not the old lines) as previous_attributes; {} when only a line's text changed.
        previous = {key: value for key, value in before.items() if invoice[key] != value}
        self._event("invoice.updated", invoice, request, previous=previous)

    # --- events ----------------------------------------------------------------------------

    def _updated(self, invoice: Json, before: Json, request: Json) -> None:
        self._event("invoice.updated", invoice, request, previous=diff(before, self.export(invoice), skip=("lines",)))

    def _event(self, event_type: str, invoice: Json, request: Json, *, previous: Json | None = None) -> None:
        self._record(event_type, self.export(invoice), request, previous=previous)

    def _record(self, event_type: str, obj: Json, request: Json, *, previous: Json | None = None) -> None:
        data: Json = {"object": obj} if previous is None else {"object": obj, "previous_attributes": previous}
        event = {"id": random_id("evt_"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                 "data": data, "livemode": False, "pending_webhooks": 0, "request": dict(request), "type": event_type}
        self.events.append(event)
        self.emit(event)

    def event(self, event_id: str) -> Json | None:
        return next((event for event in self.events if event["id"] == event_id), None)


def _follow_customer(invoice: Json, customer: Json) -> None:
    """Until finalization an invoice's customer_* fields follow the customer (Stripe's API
    reference); here they are read at creation and again at finalization, not in between."""
    address = customer.get("address")
    invoice.update(customer_email=customer.get("email"), customer_name=customer.get("name"),
                   customer_phone=customer.get("phone"), customer_address={
                       key: address.get(key) for key in ("city", "country", "line1", "line2", "postal_code", "state")
                   } if isinstance(address, dict) else None)


def _require_draft(invoice: Json) -> None:
    if invoice["status"] != "draft":
        raise StripeError(400, f"Invoice items can only be added to, changed on or removed from draft invoices; "
                          f"{invoice['id']} is {invoice['status']}.", param="invoice", code="invoice_not_editable")
