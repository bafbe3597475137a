"""Bench data for scenario 9 (staff pages at scale): the audit trail (`SyncEvent`), dead letters,
merge conflicts, backlog samples and a mix of mapping statuses, each inserted by one
INSERT ... SELECT over generate_series (no rows travel from Python), as months of a running
hub would have left them.

Ids follow time, as in a real trail (rows are appended as operations finish): the rows are
generated in time order, so `ORDER BY -id` and `created_at` ranges meet the data as they would
in production.
"""

from __future__ import annotations

from django.db import connection

# Failure messages, a few kinds (the dead letters' `?error=timeout` filter finds a quarter).
ERRORS = [
    "timeout: Stripe did not answer within 10 s",
    "Stripe answered 500: An unknown error occurred",
    "Stripe answered 429: Too many requests hit the API too quickly",
    "No such customer: the mapping points at a customer deleted in Stripe",
]
# The share of the trail's rows that end dead-lettered (each with its DeadLetter row), 0.2 %
# (2,000 of 1,000,000), and of those retried, about 3 %. Dead letters fall on one customer in
# DEAD_LETTER_CUSTOMERS (ids ending in DEAD_LETTER_REMAINDER), as problems cluster on a few: a
# page of another customer runs the same statements whatever the data set's size (the item page
# reads dead letters only when its timeline shows one), which scenario 9 compares.
DEAD_LETTERED_SHARE = 0.002
RETRYING_SHARE = 0.03
DEAD_LETTER_CUSTOMERS = 10
DEAD_LETTER_REMAINDER = 3
# The hot item's own rows: one in DEAD_EVERY is dead-lettered, one in RETRY_EVERY retried.
HOT_DEAD_EVERY = 40
HOT_RETRY_EVERY = 10
CONSUMER_GROUPS = [
    ("synchub-stripe-outward", "stripe_customer_outward"),
    ("synchub-stripe-customer-inward", "stripe_customer_inward"),
]


def may_dead_letter(item_id: int) -> bool:
    """Whether the random rows of `item_id` can end dead-lettered (see DEAD_LETTER_CUSTOMERS)."""
    return item_id % DEAD_LETTER_CUSTOMERS == DEAD_LETTER_REMAINDER


def _array(values: list[str]) -> str:
    """A PostgreSQL text array literal of `values` (bench constants: no quotes inside)."""
    return "ARRAY[" + ", ".join(f"'{value}'" for value in values) + "]::text[]"


def insert_sync_events(
    *, count: int, first_id: int, last_id: int, hot_id: int, hot_events: int, recent: int, days: int = 30
) -> None:
    """`count` audit rows about the customers `first_id`..`last_id`, the oldest `days` ago: the
    last `recent` of them in the last hour, the others evenly over the time before; every
    (count // hot_events)-th row is about `hot_id`. 60 % outward (pushes to Stripe), 40 % inward
    (Stripe events applied); outcomes mostly succeeded."""
    hot_every = max(1, count // hot_events)
    older = count - recent
    errors = _array(ERRORS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO sync_syncevent (created_at, direction, integration, task, item_id, action, outcome, error,
                duration_ms, attempt, message_id, external_id, external_event_id, fields, origin)
            SELECT s.at, s.direction, 'stripe',
                CASE s.direction WHEN 'outward' THEN 'stripe.push_customer' ELSE 'stripe.apply_event' END,
                s.item_id,
                CASE s.direction
                    WHEN 'outward' THEN (ARRAY['create', 'update', 'update', 'update', 'delete'])[1 + s.g %% 5]
                    ELSE (ARRAY['customer.updated', 'customer.updated', 'customer.created', 'customer.deleted'])
                         [1 + s.g %% 4]
                END,
                s.outcome,
                CASE WHEN s.outcome = 'succeeded' THEN '' ELSE ({errors})[1 + s.g %% {len(ERRORS)}] END,
                round((2 + 60 * random())::numeric, 3)::float8,
                CASE s.outcome WHEN 'succeeded' THEN 1 WHEN 'retrying' THEN 1 + s.g %% 4 ELSE 5 END,
                md5('event ' || s.g),
                'cus_staff' || s.item_id,
                CASE s.direction WHEN 'inward' THEN 'evt_' || md5('stripe ' || s.g) ELSE '' END,
                '["name", "email"]'::jsonb,
                CASE WHEN s.direction = 'inward' THEN 'stripe'
                     ELSE (ARRAY['console · alice', 'API · bob', 'console · carol'])[1 + s.g %% 3] END
            FROM (
                SELECT d.g,
                    CASE WHEN d.g <= %(older)s
                        THEN now() - make_interval(days => %(days)s)
                             + (d.g - 1) * ((make_interval(days => %(days)s) - interval '1 hour')
                                            / greatest(%(older)s, 1))
                        ELSE now() - interval '1 hour'
                             + (d.g - %(older)s) * (interval '1 hour' / greatest(%(recent)s, 1))
                    END AS at,
                    d.item AS item_id,
                    CASE WHEN d.way < 0.6 THEN 'outward' ELSE 'inward' END AS direction,
                    CASE WHEN d.g %% %(hot_every)s = 0 THEN
                        CASE WHEN (d.g / %(hot_every)s) %% {HOT_DEAD_EVERY} = 0 THEN 'dead_lettered'
                             WHEN (d.g / %(hot_every)s) %% {HOT_RETRY_EVERY} = 5 THEN 'retrying'
                             ELSE 'succeeded' END
                    WHEN d.item %% {DEAD_LETTER_CUSTOMERS} = {DEAD_LETTER_REMAINDER}
                         AND d.fate < {DEAD_LETTERED_SHARE * DEAD_LETTER_CUSTOMERS} THEN 'dead_lettered'
                    WHEN d.retry < {RETRYING_SHARE} THEN 'retrying'
                    ELSE 'succeeded'
                    END AS outcome
                FROM (
                    SELECT g, random() AS way, random() AS fate, random() AS retry,
                        CASE WHEN g %% %(hot_every)s = 0 THEN %(hot_id)s::bigint
                             ELSE %(first)s + floor(random() * (%(last)s - %(first)s + 1))::bigint END AS item
                    FROM generate_series(1, %(count)s) AS g
                ) AS d
            ) AS s
            ORDER BY s.g
            """,
            {
                "count": count,
                "older": older,
                "recent": recent,
                "days": days,
                "hot_every": hot_every,
                "hot_id": hot_id,
                "first": first_id,
                "last": last_id,
            },
        )


def insert_dead_letters(*, replayed_share: float = 0.3) -> int:
    """A DeadLetter for every dead-lettered row of the trail (the worker records both), a share
    of them replayed since; returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO sync_deadletter (message_id, task, topic, key, kwargs, attempts, error, created_at, replayed_at)
            SELECT e.message_id, e.task,
                CASE e.direction WHEN 'outward' THEN 'stripe_customer_outward' ELSE 'stripe_customer_inward' END,
                e.item_id::text, jsonb_build_object('item_id', e.item_id, 'action', e.action), e.attempt, e.error,
                e.created_at, CASE WHEN random() < %s THEN e.created_at + interval '2 hours' END
            FROM sync_syncevent e WHERE e.outcome = 'dead_lettered' ORDER BY e.id
            """,
            [replayed_share],
        )
        return cursor.rowcount


def insert_conflicts(
    *, count: int, first_id: int, last_id: int, hot_id: int, hot_share: int = 100, days: int = 30
) -> None:
    """`count` merge conflicts over the customers (one in `hot_share` about `hot_id`), evenly over
    the last `days` days; two in five resolved by staff since."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO sync_syncconflict (catalog_item_id, integration_type, field, local_value, remote_value, kept,
                remote_event_id, created_at, resolved_at, resolution, resolved_by)
            SELECT s.item_id, 'stripe', (ARRAY['name', 'email', 'phone', 'description'])[1 + s.g %% 4],
                to_jsonb('local value ' || s.g), to_jsonb('remote value ' || s.g), 'local', 'evt_conflict_' || s.g,
                s.at, CASE WHEN s.g %% 5 < 2 THEN s.at + interval '2 hours' END,
                CASE WHEN s.g %% 5 = 0 THEN 'local' WHEN s.g %% 5 = 1 THEN 'remote' ELSE '' END,
                CASE WHEN s.g %% 5 < 2 THEN 'alice' ELSE '' END
            FROM (
                SELECT g,
                    now() - make_interval(days => %(days)s) + g * (make_interval(days => %(days)s) / %(count)s) AS at,
                    CASE WHEN g %% %(hot_share)s = 0 THEN %(hot_id)s::bigint
                         ELSE %(first)s + floor(random() * (%(last)s - %(first)s + 1))::bigint END AS item_id
                FROM generate_series(1, %(count)s) AS g
            ) AS s
            ORDER BY s.g
            """,
            {
                "count": count,
                "days": days,
                "hot_share": hot_share,
                "hot_id": hot_id,
                "first": first_id,
                "last": last_id,
            },
        )


def insert_backlog_samples(*, minutes: int = 60, every_seconds: int = 15) -> None:
    """What the relay's sampler leaves: every `every_seconds` over the last `minutes`, the outbox
    and each consumer group's lag, rising and falling."""
    sources = [("outbox", ""), *CONSUMER_GROUPS]
    with connection.cursor() as cursor:
        for index, (source, topic) in enumerate(sources):
            cursor.execute(
                """
                INSERT INTO sync_backlogsample (source, topic, size, measured_at)
                SELECT %s, %s, greatest(0, round(200 + 180 * sin(k / 20.0 + %s) + 40 * random()))::bigint,
                    date_trunc('second', now()) - k * make_interval(secs => %s)
                FROM generate_series(0, %s) AS k
                """,
                [source, topic, index, every_seconds, minutes * 60 // every_seconds - 1],
            )


def vary_mapping_statuses(*, first_id: int, last_id: int) -> None:
    """Most mappings synced; about 2 % failed (with their error), 1 % pending."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE catalog_catalogintegration
            SET status = CASE WHEN catalog_item_id %% 50 = 0 THEN 'failed' ELSE 'pending' END,
                last_error = CASE WHEN catalog_item_id %% 50 = 0 THEN %s ELSE '' END
            WHERE catalog_item_id BETWEEN %s AND %s AND (catalog_item_id %% 50 = 0 OR catalog_item_id %% 97 = 0)
            """,
            [ERRORS[0], first_id, last_id],
        )


def truncate_audit() -> None:
    """Empty the trail, dead letters, conflicts and samples (customers stay)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE sync_syncevent, sync_deadletter, sync_syncconflict, sync_backlogsample RESTART IDENTITY"
        )


def analyze() -> None:
    """Fresh statistics for the planner after a bulk load (autovacuum would get there later)."""
    with connection.cursor() as cursor:
        for table in (
            "sync_syncevent",
            "sync_deadletter",
            "sync_syncconflict",
            "sync_backlogsample",
            "catalog_catalogitem",
            "catalog_customer",
            "catalog_catalogintegration",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
