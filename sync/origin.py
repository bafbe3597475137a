"""Who made a local change, and through which door: recorded on the task messages the change
enqueues, so the audit trail (and an item's timeline) can say "console · alice" or "API · bob"
for every outward sync, not only that one ran."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

_request: ContextVar[HttpRequest | None] = ContextVar("change_request", default=None)
_label: ContextVar[str] = ContextVar("change_origin", default="")

# The first path segment of a request, and the door it names on a timeline.
CHANNELS = {"api": "API", "admin": "admin", "webhooks": "webhook"}
ORIGIN_MAX_LENGTH = 150


class ChangeOriginMiddleware:
    """Remember the request being served, so that a change it makes knows its author. Placed
    after the authentication middleware; the API's own authentication (tokens) is read later,
    when the change is made, since DRF passes the user it authenticated on to the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


@contextmanager
def change_origin(label: str) -> Iterator[None]:
    """Within this block, changes are labelled `label` (a command, a replay, a conflict
    resolution), whatever request is being served."""
    token = _label.set(label)
    try:
        yield
    finally:
        _label.reset(token)


def change_origin_label() -> str:
    """`channel · username` of the change being made now; empty outside any request or block."""
    label = _label.get()
    if label:
        return label[:ORIGIN_MAX_LENGTH]
    request = _request.get()
    if request is None:
        return ""
    segment = request.path.strip("/").split("/", 1)[0]
    channel = CHANNELS.get(segment, "console")
    user = getattr(request, "user", None)
    username = user.get_username() if user is not None and user.is_authenticated else ""
    return f"{channel} · {username}"[:ORIGIN_MAX_LENGTH] if username else channel
