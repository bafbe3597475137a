"""Bench data: customers inserted in bulk (plain SQL: Django cannot bulk-create a multi-table
inherited model), and signed Stripe webhook bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.db import connection


def insert_customers(*, count: int, linked: int = 0, prefix: str = "bench") -> tuple[int, int]:
    """Insert `count` customers named `{prefix} {n}` (email `{prefix}{n}@example.com`); the first
    `linked` of them get a synced Stripe mapping to `cus_{prefix}{n}`. Returns the (first, last)
    item id. No outbox rows: this is existing data, not changes."""
    from django.contrib.contenttypes.models import ContentType

    from catalog.models import Customer

    ctype = ContentType.objects.get_for_model(Customer, for_concrete_model=False).pk
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH items AS (
                INSERT INTO catalog_catalogitem (polymorphic_ctype_id, catalog_type, created_at, updated_at)
                SELECT %s, 'customer', now() - interval '1 day', now() - interval '1 day'
                FROM generate_series(1, %s)
                RETURNING id
            ), numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM items)
            INSERT INTO catalog_customer (
                catalogitem_ptr_id, name, email, email_key, phone, description, address_line1, address_line2,
                address_city, address_state, address_postal_code, address_country, metadata, preferred_locales
            )
            SELECT id, %s || ' ' || n, %s || n || '@example.com', lower(%s || n || '@example.com'),
                   '', '', '', '', '', '', '', '', '{}', '[]'
            FROM numbered
            RETURNING catalogitem_ptr_id
            """,
            # email_key as Customer.save sets it (customer_email_key): for ASCII, casefold is lower().
            [ctype, count, prefix, prefix, prefix],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
        if linked:
            cursor.execute(
                """
                INSERT INTO catalog_catalogintegration (catalog_item_id, integration_type, integration_id, status,
                    last_synced_at, last_error, pending_create_key, synced_fields, created_at, updated_at)
                SELECT c.catalogitem_ptr_id, 'stripe', 'cus_' || %s || (c.catalogitem_ptr_id - %s + 1), 'synced',
                    now() - interval '1 hour', '', '', jsonb_build_object('name', c.name, 'email', c.email),
                    now() - interval '1 hour', now() - interval '1 hour'
                FROM catalog_customer c WHERE c.catalogitem_ptr_id BETWEEN %s AND %s
                """,
                [prefix, ids[0], ids[0], ids[0] + linked - 1],
            )
    return ids[0], ids[-1]


def stripe_customer(*, n: int, prefix: str, name: str) -> dict:
    return {
        "id": f"cus_{prefix}{n}",
        "object": "customer",
        "created": int(time.time()) - 86400,
        "email": f"{prefix}{n}@example.com",
        "livemode": False,
        "metadata": {},
        "name": name,
    }


def customer_event(*, event_id: str, customer: dict, created: int, type_: str = "customer.updated") -> dict:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": type_,
        "data": {"object": customer},
    }


def sign(body: bytes, *, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def signed_update_bodies(*, count: int, prefix: str, run: str, secret: str, start: int = 1) -> list[tuple[str, bytes]]:
    """`count` signed `customer.updated` webhooks, each for a different linked customer
    (`cus_{prefix}{start}`...), each renaming it: (Stripe-Signature, body)."""
    now = int(time.time())
    bodies = []
    for n in range(start, start + count):
        customer = stripe_customer(n=n, prefix=prefix, name=f"{prefix} {n} {run}")
        body = json.dumps(customer_event(event_id=f"evt_{run}_{n}", customer=customer, created=now)).encode()
        bodies.append((sign(body, secret=secret, timestamp=now), body))
    return bodies
