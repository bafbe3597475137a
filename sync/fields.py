"""Field maps: which local field syncs with which field of an external system, and which way.

An integration names its fields and the kind of value each holds; a setting (one per
integration, e.g. `STRIPE_FIELD_MAP`) may restrict or rename them, like Heroku Connect's
read-only and read-write mappings. Pushes send only fields that go outward, applies take only
fields that come inward.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from django.core.exceptions import ImproperlyConfigured


class Direction(str, Enum):
    BOTH = "both"  # read-write: changes go both ways, merged three-way
    OUTWARD = "outward"  # local -> external only; external changes are ignored
    INWARD = "inward"  # external -> local only; the external value always wins
    NONE = "none"  # not synced

    @property
    def outward(self) -> bool:
        return self in (Direction.BOTH, Direction.OUTWARD)

    @property
    def inward(self) -> bool:
        return self in (Direction.BOTH, Direction.INWARD)


@dataclass(frozen=True)
class FieldMapping:
    local: str
    remote: str
    direction: Direction


@dataclass(frozen=True)
class FieldMap:
    mappings: tuple[FieldMapping, ...]

    def outward(self) -> list[FieldMapping]:
        return [mapping for mapping in self.mappings if mapping.direction.outward]

    def inward(self) -> list[FieldMapping]:
        return [mapping for mapping in self.mappings if mapping.direction.inward]

    def direction_of(self, local: str) -> Direction:
        for mapping in self.mappings:
            if mapping.local == local:
                return mapping.direction
        return Direction.NONE


def field_map_parse(spec: str, *, kinds: dict[str, str], setting: str) -> FieldMap:
    """The field map of an integration whose fields are `kinds` (field name -> kind of value).

    `spec` is a comma-separated list of `local[:remote]:direction` entries, e.g.
    `phone:outward,description:inward,metadata:none`; a field it does not name keeps the default:
    the field of the same name, both ways. A local field may map to a remote field of the same
    kind only, and each remote field to one local field at most.
    """
    chosen = {name: FieldMapping(name, name, Direction.BOTH) for name in kinds}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) == 2:
            parts.insert(1, parts[0])
        if len(parts) != 3:
            raise ImproperlyConfigured(f"{setting}: {entry!r} is not local[:remote]:direction")
        local, remote, direction = parts
        if local not in kinds or remote not in kinds:
            raise ImproperlyConfigured(f"{setting}: {entry!r} names an unknown field (known: {', '.join(kinds)})")
        if kinds[local] != kinds[remote]:
            raise ImproperlyConfigured(f"{setting}: {local} ({kinds[local]}) cannot map to {remote} ({kinds[remote]})")
        try:
            chosen[local] = FieldMapping(local, remote, Direction(direction))
        except ValueError:
            choices = ", ".join(d.value for d in Direction)
            raise ImproperlyConfigured(f"{setting}: direction {direction!r} is not one of {choices}") from None
    remotes = [mapping.remote for mapping in chosen.values() if mapping.direction is not Direction.NONE]
    if len(remotes) != len(set(remotes)):
        raise ImproperlyConfigured(f"{setting}: a remote field is mapped from two local fields")
    return FieldMap(tuple(chosen.values()))
