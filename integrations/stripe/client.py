import hashlib
import json
import os
import threading
import time
from functools import cache
from io import BytesIO
from typing import TYPE_CHECKING, Any, Mapping

import stripe
from django.conf import settings
from requests.structures import CaseInsensitiveDict

from sync.metrics import external_request_observe, external_requests_start_at_zero
from sync.ratelimit import TokenBucket, shared_bucket

from . import INTEGRATION_TYPE

if TYPE_CHECKING:
    import pycurl

# The methods the stripe library sends (pycurl's options below).
external_requests_start_at_zero(integration=INTEGRATION_TYPE, methods=("GET", "POST", "DELETE"))


@cache
def _retryable_curl_errors() -> frozenset[int]:
    """libcurl failures after which nothing (or not all) of the request reached Stripe, or its
    answer was lost: the library retries them (with the same idempotency key) up to
    STRIPE_MAX_NETWORK_RETRIES."""
    import pycurl

    return frozenset(
        {
            pycurl.E_COULDNT_CONNECT,
            pycurl.E_COULDNT_RESOLVE_HOST,
            pycurl.E_COULDNT_RESOLVE_PROXY,
            pycurl.E_OPERATION_TIMEDOUT,
            pycurl.E_GOT_NOTHING,
            pycurl.E_SEND_ERROR,
            pycurl.E_RECV_ERROR,
            pycurl.E_PARTIAL_FILE,
        }
    )


class StripeHttpClient(stripe.HTTPClient):
    """The stripe library's HTTP transport, on libcurl (pycurl) instead of requests.

    Why: against a Stripe that answers at once, requests and its urllib3 pool cost 0.73 ms of
    the worker's CPU per API call and libcurl 0.29 ms (bench/analysis.md); the outward drain is
    bound by that CPU. The library's own `PycurlClient` shares one handle between threads and
    fixes its timeout at 80 s, hence this one:

    - one curl handle per thread, so each thread keeps its own connection alive;
    - `timeout` seconds for the whole request (`STRIPE_TIMEOUT_SECONDS`);
    - a token from `bucket` (if any) before every HTTP request, including the library's own
      retries (each is a request Stripe counts);
    - each request's latency and outcome in `synchub_external_request_seconds`;
    - the proxy environment (`https_proxy`, `no_proxy`...) as libcurl reads it.

    Errors where the request may not have reached Stripe, or its answer was lost, are raised as
    retryable `APIConnectionError`s, so the library retries them with the same idempotency key.
    """

    name = "synchub-pycurl"

    def __init__(self, *, bucket: TokenBucket | None = None, timeout: float = 80.0) -> None:
        # Imported here, like the library's own PycurlClient: libcurl and its TLS stack add
        # ~10 MB to a process, and the web server and the inward worker rarely call Stripe.
        import pycurl

        self.pycurl = pycurl
        super().__init__(verify_ssl_certs=True)
        self.bucket = bucket
        self.timeout_ms = max(1, round(timeout * 1000))
        self._handles = threading.local()

    def _curl(self) -> "pycurl.Curl":
        handle = getattr(self._handles, "curl", None)
        if handle is None or self._handles.pid != os.getpid():  # a forked child opens its own
            handle = self._handles.curl = self.pycurl.Curl()
            self._handles.pid = os.getpid()
        return handle

    def request(self, method: str, url: str, headers: Mapping[str, str], post_data=None):
        content, status, response_headers = self._perform(method, url, headers, post_data)
        return content.decode("utf-8"), status, response_headers

    def request_stream(self, method: str, url: str, headers: Mapping[str, str], post_data=None):
        content, status, response_headers = self._perform(method, url, headers, post_data)
        return BytesIO(content), status, response_headers

    def _perform(self, method: str, url: str, headers: Mapping[str, str], post_data) -> tuple[bytes, int, CaseInsensitiveDict]:
        if self.bucket is not None:
            self.bucket.acquire()
        started = time.monotonic()
        status = None
        try:
            content, status, response_headers = self._transfer(method, url, headers, post_data)
            return content, status, response_headers
        finally:
            external_request_observe(
                integration=INTEGRATION_TYPE, method=method, status=status, seconds=time.monotonic() - started
            )

    def _transfer(self, method: str, url: str, headers: Mapping[str, str], post_data) -> tuple[bytes, int, CaseInsensitiveDict]:
        pycurl = self.pycurl
        curl = self._curl()
        curl.reset()  # options only; the handle keeps its open connection
        body = BytesIO()
        header_lines: list[bytes] = []
        if method == "get":
            curl.setopt(pycurl.HTTPGET, 1)
        elif method == "post":
            curl.setopt(pycurl.POST, 1)
            curl.setopt(pycurl.POSTFIELDS, post_data or "")
        else:
            curl.setopt(pycurl.CUSTOMREQUEST, method.upper())
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.WRITEFUNCTION, body.write)
        curl.setopt(pycurl.HEADERFUNCTION, header_lines.append)
        curl.setopt(pycurl.HTTPHEADER, [f"{key}: {value}" for key, value in headers.items()])
        curl.setopt(pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: we run in threads
        curl.setopt(pycurl.TIMEOUT_MS, self.timeout_ms)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, min(self.timeout_ms, 30_000))
        if url.startswith("https:"):
            curl.setopt(pycurl.CAINFO, stripe.ca_bundle_path)
        try:
            curl.perform()
        except pycurl.error as exc:
            code, message = exc.args
            raise stripe.APIConnectionError(
                f"Network error talking to Stripe ({url}): {message} (curl error {code})",
                should_retry=code in _retryable_curl_errors(),
            ) from exc
        return body.getvalue(), curl.getinfo(pycurl.RESPONSE_CODE), _parse_headers(header_lines)

    def close(self) -> None:
        handle = getattr(self._handles, "curl", None)
        if handle is not None:
            handle.close()
            self._handles.curl = None


def _parse_headers(lines: list[bytes]) -> CaseInsensitiveDict:
    """The headers of the last response in `lines` (as libcurl hands them over, status lines
    included), case-insensitive like requests' (the library looks up `Request-Id` and
    `stripe-should-retry`)."""
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    for raw in lines:
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if line.startswith("HTTP/"):
            headers = CaseInsensitiveDict()
        elif ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
    return headers


def stripe_rate_limit() -> TokenBucket:
    """The process's Stripe request budget (`STRIPE_RATE_LIMIT_PER_SECOND`, 0 = unlimited),
    shared by its threads and by everything else in it that calls Stripe through
    `stripe_client()` (the worker's tasks, a reconciliation job)."""
    return shared_bucket(float(settings.STRIPE_RATE_LIMIT_PER_SECOND))


@cache
def stripe_client() -> stripe.StripeClient:
    """The process's Stripe client: the library's own network retries, a bounded timeout,
    `STRIPE_API_BASE` to point it at an emulator, and the client-side rate limit."""
    base_addresses = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    bucket = stripe_rate_limit()
    http_client = StripeHttpClient(
        bucket=None if bucket.unlimited else bucket,
        timeout=settings.STRIPE_TIMEOUT_SECONDS,
    )
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses=base_addresses,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=http_client,
        # Pinned, so a change of the account's default version cannot change what we read.
        stripe_version=settings.STRIPE_API_VERSION or None,
    )


def idempotency_options(event_id: str, action: str, params: dict[str, Any] | None = None) -> dict[str, str]:
    """The request options of a Stripe write: an idempotency key derived from our event (a
    redelivered message repeats the call safely) and, for updates, from what is sent: Stripe
    refuses a key reused with other parameters."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12] if params else ""
    return {"idempotency_key": f"synchub-{event_id}-{action}{'-' + digest if digest else ''}"}


def stripe_webhook_secrets() -> list[str]:
    """The signing secrets webhooks may carry: several while one is being rotated."""
    return [value.strip() for value in settings.STRIPE_WEBHOOK_SECRET.split(",") if value.strip()]
