"""The inbox's decision (apply, or why not): pure functions, no database, no network."""

from datetime import datetime, timedelta, timezone

from sync.inbox import IncomingEvent, inbox_skip_reason, payload_ambiguous

NOON = datetime(2026, 12, 6, 12, 0, 0, tzinfo=timezone.utc)


def event(*, at=NOON, deletes=False):
    return IncomingEvent(event_id="evt_1", event_type="thing.updated", object_id="obj_1", occurred_at=at, deletes=deletes)


def decide(incoming, *, seen=False, tombstoned=None, latest=None, deleted_earlier=False):
    return inbox_skip_reason(
        incoming, seen=seen, tombstoned=tombstoned, latest=latest, deleted_earlier=deleted_earlier, source="acme"
    )


def test_a_new_event_about_a_live_object_is_applied():
    assert decide(event()) is None
    assert decide(event(), latest=NOON - timedelta(seconds=1)) is None


def test_a_repeat_is_a_duplicate_whatever_else_is_true():
    assert decide(event(), seen=True, tombstoned="ignored: deleted locally", deleted_earlier=True) == "duplicate"


def test_news_of_a_tombstoned_object_is_ignored_with_the_tombstones_reason():
    assert decide(event(), tombstoned="ignored: deleted locally") == "ignored: deleted locally"
    assert decide(event(deletes=True), tombstoned="ignored: deleted in Acme") == "ignored: deleted in Acme"


def test_an_update_after_a_handled_delete_is_ignored_but_a_second_delete_is_not():
    assert decide(event(), deleted_earlier=True) == "ignored: deleted in Acme"
    assert decide(event(deletes=True), deleted_earlier=True) is None


def test_an_event_older_than_one_handled_is_stale_and_one_without_a_time_is_not():
    assert decide(event(), latest=NOON + timedelta(seconds=1)) == "ignored: stale"
    assert decide(event(at=None), latest=NOON) is None
    assert decide(event(), latest=NOON) is None  # same second: not stale, but ambiguous (below)


def test_a_payload_of_the_same_second_as_newer_news_or_our_own_write_is_ambiguous():
    assert payload_ambiguous(NOON, latest=NOON, last_pushed_at=None)
    assert payload_ambiguous(NOON, latest=None, last_pushed_at=NOON)
    assert payload_ambiguous(None, latest=None, last_pushed_at=None)  # no time at all: read the object
    assert not payload_ambiguous(NOON, latest=NOON - timedelta(seconds=1), last_pushed_at=NOON - timedelta(seconds=1))
    assert not payload_ambiguous(NOON, latest=None, last_pushed_at=None)
