"""The three-way merge and the field map: pure functions, no database, no network."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from sync.fields import Direction, field_map_parse
from sync.merge import Conflict, changed_since_agreed, merge_three_way

PER_KEY = frozenset({"metadata", "address"})


def merge(base, local, remote, *, pending=False, remote_wins=frozenset()):
    return merge_three_way(
        base=base, local=local, remote=remote, local_pending=pending, per_key=PER_KEY, remote_wins=remote_wins
    )


def test_a_field_changed_on_one_side_takes_that_sides_value():
    outcome = merge({"name": "A", "phone": "1"}, {"name": "A", "phone": "2"}, {"name": "B", "phone": "1"})
    assert outcome.apply_local == {"name": "B"}  # changed remotely: applied
    assert outcome.agreed == {"name": "B"}  # phone changed locally: its push settles it
    assert outcome.conflicts == []


def test_a_field_changed_on_both_sides_is_a_conflict_and_keeps_the_local_value():
    outcome = merge({"name": "A"}, {"name": "Local"}, {"name": "Remote"})
    assert outcome.apply_local == {} and outcome.agreed == {}
    assert outcome.conflicts == [Conflict("name", "Local", "Remote")]


def test_both_sides_agreeing_moves_the_base():
    outcome = merge({"name": "A"}, {"name": "Same"}, {"name": "Same"})
    assert outcome.agreed == {"name": "Same"} and not outcome.apply_local and not outcome.conflicts


def test_unknown_base_takes_remote_unless_a_local_push_is_pending():
    assert merge({}, {"phone": "1"}, {"phone": "2"}).apply_local == {"phone": "2"}
    pending = merge({}, {"phone": "1"}, {"phone": "2"}, pending=True)
    assert pending.apply_local == {} and pending.conflicts == []


def test_metadata_keys_changed_on_different_sides_both_survive():
    base = {"metadata": {"plan": "gold", "seg": "a"}}
    local = {"metadata": {"plan": "gold", "seg": "b", "new_here": "1"}}
    remote = {"metadata": {"plan": "silver", "seg": "a", "new_there": "2"}}
    outcome = merge(base, local, remote)
    assert outcome.apply_local == {"metadata": {"plan": "silver", "seg": "b", "new_here": "1", "new_there": "2"}}
    # Agreed: what both now hold; keys only one side changed keep their old agreement.
    assert outcome.agreed == {"metadata": {"plan": "silver", "seg": "a", "new_there": "2"}}
    assert outcome.conflicts == []


def test_a_metadata_key_removed_remotely_is_removed_locally_and_a_two_sided_change_conflicts():
    base = {"metadata": {"gone": "x", "both": "0"}}
    outcome = merge(base, {"metadata": {"gone": "x", "both": "L"}}, {"metadata": {"both": "R"}})
    assert outcome.apply_local == {"metadata": {"both": "L"}}
    assert outcome.conflicts == [Conflict("metadata.both", "L", "R")]
    assert outcome.agreed == {"metadata": {"both": "0"}}


def test_address_parts_merge_one_by_one():
    base = {"address": {"city": "Paris", "line1": "1 Rue"}}
    outcome = merge(
        base, {"address": {"city": "Paris", "line1": "2 Rue"}}, {"address": {"city": "Lyon", "line1": "1 Rue"}}
    )
    assert outcome.apply_local == {"address": {"city": "Lyon", "line1": "2 Rue"}}


def test_fields_the_remote_side_owns_always_take_its_value():
    owned = frozenset({"description"})
    outcome = merge({"description": "a"}, {"description": "local edit"}, {"description": "remote"}, remote_wins=owned)
    assert outcome.apply_local == {"description": "remote"} and outcome.conflicts == []


def test_a_push_sends_only_what_changed_since_the_agreement():
    base = {"name": "A", "metadata": {"k": "1", "gone": "x"}, "phone": ""}
    local = {"name": "A", "metadata": {"k": "2", "new": "y"}, "phone": "", "email": "e@x"}
    assert changed_since_agreed(base=base, local=local, per_key=PER_KEY) == {
        "metadata": {"k": "2", "new": "y", "gone": None},
        "email": "e@x",  # never agreed: sent
    }


KINDS = {"name": "text", "phone": "text", "description": "text", "email": "email", "metadata": "metadata"}


def test_field_map_defaults_to_every_field_both_ways():
    field_map = field_map_parse("", kinds=KINDS, setting="X")
    assert {m.local: (m.remote, m.direction) for m in field_map.mappings} == {
        name: (name, Direction.BOTH) for name in KINDS
    }


def test_field_map_directions_and_renames():
    spec = "phone:outward, description:inward,metadata:none,name:description:both,description:phone:inward,phone:name:outward"
    field_map = field_map_parse(spec, kinds=KINDS, setting="X")
    assert [m.local for m in field_map.outward()] == ["name", "phone", "email"]
    assert [m.local for m in field_map.inward()] == ["name", "description", "email"]
    assert field_map.direction_of("metadata") is Direction.NONE


@pytest.mark.parametrize(
    "spec",
    ["phone:sideways", "fax:both", "name:metadata:both", "phone", "name:description:both", "a:b:c:d"],
)
def test_a_wrong_field_map_is_refused_at_start(spec):
    with pytest.raises(ImproperlyConfigured):
        field_map_parse(spec, kinds=KINDS, setting="X")
