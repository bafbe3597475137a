"""Throttling of wrong API tokens: DRF throttles run after authentication, so a client guessing
tokens gets 401 after 401 and never meets them. This one counts failed token checks per client
address and answers 429 (with Retry-After) once `API_THROTTLE_FAILED_AUTH` is exceeded."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class FailedAuthenticationThrottle(SimpleRateThrottle):
    scope = "failed_auth"

    def get_cache_key(self, request: Request, view: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def blocked_for(self, request: Request) -> float | None:
        """Seconds this address must wait, or None when it may try (reads the history)."""
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return self.wait() if len(self.history) >= self.num_requests else None

    def record_failure(self) -> None:
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


class ThrottledTokenAuthentication(TokenAuthentication):
    def authenticate(self, request: Request):
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None  # no credentials: nothing to count
        throttle = FailedAuthenticationThrottle()
        wait = throttle.blocked_for(request)
        if wait is not None:
            raise Throttled(wait=wait, detail="Too many failed authentication attempts.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure()
            raise
