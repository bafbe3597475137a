"""Reading JSON that users send: only what can be stored and answered gets through."""

import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

NESTED_TOO_DEEPLY = "JSON parse error - nested too deeply."
LONE_SURROGATE = "JSON parse error - a \\u escape in a string is half a surrogate pair, no character."


# A `\\u` escape of a surrogate (D800-DFFF): in decoded text, the only way JSON can hold one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def has_lone_surrogate(data: Any, *, source: str | None = None) -> bool:
    """Whether parsed JSON holds a string with half a surrogate pair (`"\\ud800"`): JSON's syntax
    allows it, but it is no character, so neither the database nor a UTF-8 answer (an error
    message quoting it) can take it: a UnicodeEncodeError, a 500. Iterative: no depth limit.

    `source`, the decoded text `data` was parsed from, lets a text without any surrogate escape
    (nearly every one) skip the walk: one regex search instead of a visit of every string, which
    was a fifth of the webhook view's own CPU."""
    if source is not None and not _SURROGATE_ESCAPE.search(source):
        return False
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus two 400s instead of 500s: a body nested deeper than Python's
    recursion limit (about a thousand levels; `[[[[...` of 100 kB is enough; RecursionError), and
    a string with a lone surrogate escape."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(NESTED_TOO_DEEPLY) from None
        if has_lone_surrogate(data):
            raise ParseError(LONE_SURROGATE)
        return data
