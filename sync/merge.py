"""The per-field three-way merge of a remote change into a local item: pure, no database.

Both sides' values are compared with the values they last agreed on (the merge base, kept on
the item's mapping): a field changed on one side only takes that side's value; one changed on
both sides is a conflict, and the local value is kept (it is sent on to the other side).
Dict-valued fields named in `per_key` (metadata, an address) are merged key by key, so a key
changed remotely and another changed locally both survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class Conflict:
    field: str  # "name", or "metadata.plan" for one key of a per-key field
    local_value: Any
    remote_value: Any


@dataclass
class MergeOutcome:
    # Remote values to write locally, by field (a per-key field: its whole merged dict).
    apply_local: dict[str, Any] = field(default_factory=dict)
    # The new merge base of each field whose agreement changed (a per-key field: whole dict).
    agreed: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def merge_three_way(
    *,
    base: dict[str, Any],
    local: dict[str, Any],
    remote: dict[str, Any],
    local_pending: bool,
    per_key: frozenset[str] = frozenset(),
    remote_wins: frozenset[str] = frozenset(),
) -> MergeOutcome:
    """Merge `remote` into `local` against `base`, for the fields of `remote`.

    A field missing from `base` has no known agreement (never synced, or synced by an older
    version of the hub): the remote value is taken unless a local change is still on its way
    (`local_pending`), in which case the local value stands and its push settles it.
    Fields in `remote_wins` (synced from the remote side only) always take the remote value.
    """
    outcome = MergeOutcome()
    for name, remote_value in remote.items():
        local_value = local.get(name)
        if name in remote_wins:
            if remote_value != local_value:
                outcome.apply_local[name] = remote_value
            outcome.agreed[name] = remote_value
        elif name in per_key:
            _merge_per_key(
                outcome,
                name,
                base.get(name, _MISSING),
                local_value or {},
                remote_value or {},
                local_pending=local_pending,
            )
        else:
            decision = _decide(base.get(name, _MISSING), local_value, remote_value, local_pending=local_pending)
            if decision == "agree":
                outcome.agreed[name] = remote_value
            elif decision == "take_remote":
                outcome.apply_local[name] = outcome.agreed[name] = remote_value
            elif decision == "conflict":
                outcome.conflicts.append(Conflict(name, local_value, remote_value))
    return outcome


def _decide(base: Any, local: Any, remote: Any, *, local_pending: bool) -> str:
    """agree | take_remote | keep_local | conflict, for one value."""
    if remote == local:
        return "agree"
    if base is _MISSING:
        return "keep_local" if local_pending else "take_remote"
    if base == remote:
        return "keep_local"  # only the local side changed; its push sends it
    if base == local:
        return "take_remote"
    return "conflict"


def _merge_per_key(
    outcome: MergeOutcome, name: str, base: Any, local: dict[str, Any], remote: dict[str, Any], *, local_pending: bool
) -> None:
    known = isinstance(base, dict)
    base_dict: dict[str, Any] = base if known else {}
    merged, agreed = dict(local), dict(base_dict)
    for key in sorted(set(local) | set(remote) | set(base_dict)):
        # Within a known base, an absent key is a known state: absent (None).
        key_base = base_dict.get(key) if known else _MISSING
        local_value, remote_value = local.get(key), remote.get(key)
        decision = _decide(key_base, local_value, remote_value, local_pending=local_pending)
        if decision == "conflict":
            outcome.conflicts.append(Conflict(f"{name}.{key}", local_value, remote_value))
        elif decision in ("agree", "take_remote"):
            for values in (merged, agreed) if decision == "take_remote" else (agreed,):
                if remote_value is None:
                    values.pop(key, None)
                else:
                    values[key] = remote_value
    if merged != local:
        outcome.apply_local[name] = merged
    if not known or agreed != base_dict:
        outcome.agreed[name] = agreed


def changed_since_agreed(
    *, base: dict[str, Any], local: dict[str, Any], per_key: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The local fields that differ from the merge base: what a push must send. A per-key
    field maps to the keys that changed, a removed key to None."""
    changed: dict[str, Any] = {}
    for name, value in local.items():
        if name not in base:
            changed[name] = value
        elif name in per_key:
            old, new = base[name] or {}, value or {}
            keys = {key: new.get(key) for key in set(old) | set(new) if old.get(key) != new.get(key)}
            if keys:
                changed[name] = keys
        elif base[name] != value:
            changed[name] = value
    return changed
