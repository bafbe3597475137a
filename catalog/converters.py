from .models import item_id_in_range


class ItemIdConverter:
    """`<item_id:pk>` in a URL: the id of a catalog item, as `<int:pk>` but bounded: an id beyond
    BigAutoField's range matches no route (a 404) instead of overflowing the database look-up
    (SQLite: OverflowError; the customer's key is a link to its item, which Django's own range
    check of integer look-ups does not cover)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        if not item_id_in_range(value):
            raise ValueError(value)  # Django tries the next route; none matches: 404
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
