from rest_framework.filters import OrderingFilter


class StableOrderingFilter(OrderingFilter):
    """Ordering with the primary key as the last tiebreaker, so pages never overlap or skip rows
    when the chosen field has equal values."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering.append("-id")
        return ordering
