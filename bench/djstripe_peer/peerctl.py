"""The dj-stripe peer's set-up and probe, run with the peer's own Python (bench/djstripe.py):

    python peerctl.py seed --customers N --prefix P --secret whsec_... --uuid UUID --url URL
    python peerctl.py probe --uuid UUID --bodies FILE    (lines "Stripe-Signature<TAB>body")

`seed` leaves the database as a dj-stripe site that has been running a while: its Stripe account
resolved, a webhook endpoint registered, N customers synced. `probe` posts webhooks through
dj-stripe's view in-process and prints, per request, the status and the SQL it ran (JSON)."""

import argparse
import json
import os
import sys
import time
from collections import Counter
from unittest import mock

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from django.db import connection, transaction  # after django.setup()
from django.test import Client
from django.test.utils import CaptureQueriesContext
from djstripe.models import Account, Customer, WebhookEndpoint
from djstripe.settings import djstripe_settings


def seed(*, customers: int, prefix: str, secret: str, uuid: str, url: str) -> None:
    api_key = djstripe_settings.STRIPE_SECRET_KEY
    # What dj-stripe does on the first webhook (GET /v1/account, stored with the API key), done
    # here so the measured requests do not race to create the same rows.
    account = Account.get_or_retrieve_for_api_key(api_key)
    endpoint = {
        "id": "we_bench",
        "object": "webhook_endpoint",
        "api_version": "2024-06-20",
        "application": None,
        "created": int(time.time()),
        "description": "bench",
        "enabled_events": ["customer.created", "customer.updated", "customer.deleted"],
        "livemode": False,
        "metadata": {"djstripe_uuid": uuid},
        "status": "enabled",
        "url": url,
    }
    # As dj-stripe's admin creates one (minus the Stripe call): Stripe's object, plus the secret
    # Stripe answers only on creation, and the uuid that is in the endpoint's URL.
    WebhookEndpoint.sync_from_stripe_data(endpoint, api_key=api_key)
    WebhookEndpoint.objects.filter(id="we_bench").update(secret=secret)

    created = int(time.time()) - 86400
    batch = []
    # dj-stripe's own conversion of each Stripe object to its row; the owner account it would
    # look up per object (two queries) is the one resolved above.
    with mock.patch.object(Customer, "_find_owner_account", classmethod(lambda cls, *a, **k: account)):
        for n in range(1, customers + 1):
            data = stripe_customer(n=n, prefix=prefix, created=created)
            batch.append(Customer(**Customer._stripe_object_to_record(data, api_key=api_key)))
    with transaction.atomic():
        Customer.objects.bulk_create(batch, batch_size=2000)
    print(json.dumps({"account": account.id, "customers": Customer.objects.count()}))


def stripe_customer(*, n: int, prefix: str, created: int) -> dict:
    """Customer `cus_{prefix}{n}` in Stripe's full shape, as the bench's stand-in answers it."""
    return {
        "id": f"cus_{prefix}{n}",
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": f"{prefix}{n}@example.com",
        "invoice_prefix": f"B{n:07X}",
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": f"{prefix} {n}",
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def probe(*, uuid: str, bodies: str) -> None:
    client = Client()
    with open(bodies, "rb") as lines:
        for line in lines:
            signature, body = line.rstrip(b"\n").split(b"\t", 1)
            with CaptureQueriesContext(connection) as queries:
                response = client.post(
                    f"/stripe/webhook/{uuid}/",
                    data=body,
                    content_type="application/json",
                    headers={"Stripe-Signature": signature.decode()},
                    HTTP_HOST="127.0.0.1",
                )
            statements = [query["sql"] for query in queries.captured_queries]
            kinds = Counter(sql.split(None, 1)[0].upper() for sql in statements)
            print(
                json.dumps(
                    {"status": response.status_code, "queries": len(statements), "kinds": kinds, "sql": statements}
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="peerctl.py")
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed")
    seeding.add_argument("--customers", type=int, required=True)
    seeding.add_argument("--prefix", required=True)
    seeding.add_argument("--secret", required=True)
    seeding.add_argument("--uuid", required=True)
    seeding.add_argument("--url", required=True)
    probing = commands.add_parser("probe")
    probing.add_argument("--uuid", required=True)
    probing.add_argument("--bodies", required=True)
    args = vars(parser.parse_args())
    {"seed": seed, "probe": probe}[args.pop("command")](**args)


if __name__ == "__main__":
    sys.exit(main())
