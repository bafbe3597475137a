"""Reconciliation: compare the catalog with an external system and repair the differences
through the normal sync paths (outward tasks, inward tasks), never a side channel.

Integrations declare a `Reconciler` factory per catalog model in their contract
(`sync.integrations.CatalogSync.reconciler`); `manage.py sync_reconcile` runs them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MISSING_REMOTE = "missing_remote"  # local item the external system does not have
MISSING_LOCAL = "missing_local"  # external item the catalog does not have
FIELD_DIFF = "field_diff"  # linked, but fields differ
ORPHAN_MAPPING = "orphan_mapping"  # mapping to an external id that no longer exists
DUPLICATE_REMOTE = "duplicate_remote"  # several external items for one local one (or one email)
KINDS = (MISSING_REMOTE, MISSING_LOCAL, FIELD_DIFF, ORPHAN_MAPPING, DUPLICATE_REMOTE)
REPAIRABLE = frozenset({MISSING_REMOTE, MISSING_LOCAL, FIELD_DIFF, ORPHAN_MAPPING})


@dataclass(frozen=True)
class Difference:
    kind: str
    item_id: int | None
    external_id: str | None
    detail: str


class Reconciler(Protocol):
    def compare(self, *, progress: Callable[[str], None]) -> list[Difference]: ...

    def repair(self, differences: list[Difference]) -> int:
        """Enqueue the repair of each repairable difference; return how many were enqueued."""
        ...


def summarize(differences: list[Difference]) -> dict[str, int]:
    counts = Counter(difference.kind for difference in differences)
    return {kind: counts.get(kind, 0) for kind in KINDS}
