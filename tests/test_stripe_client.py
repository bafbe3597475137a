"""The Stripe HTTP transport (libcurl under the stripe library), against a small recording HTTP
server: what reaches the wire, the library's retries with it, timeouts, the rate limit's tokens,
the proxy environment and kept-alive connections."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from integrations.stripe import client as client_module
from integrations.stripe.client import StripeHttpClient


class RecordingServer:
    """Answers each request with the next of `answers` ((status, headers, body), the last one
    repeated; a `delay` in the headers dict sleeps first) and records what it received."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict, dict]] = [(200, {}, {"id": "cus_1", "object": "customer"})]
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length).decode(),
                        "client_port": self.client_address[1],
                    }
                )
                index = min(len(server.requests), len(server.answers)) - 1
                status, headers, body = server.answers[index]
                headers = dict(headers)
                time.sleep(headers.pop("delay", 0))
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout test)
                    pass

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    recording = RecordingServer()
    yield recording
    recording.close()


def client_for(base: str, *, retries: int = 0, **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_transport",
        base_addresses={"api": base},
        max_network_retries=retries,
        http_client=StripeHttpClient(**kwargs),
    )


def test_a_create_reaches_the_wire_with_its_form_and_headers(server):
    customer = client_for(server.base).v1.customers.create(
        params={"name": "Ada", "email": "ada@example.com", "metadata": {"local_id": "7"}},
        options={"idempotency_key": "create-7"},
    )
    assert customer.id == "cus_1"
    [request] = server.requests
    assert request["method"] == "POST" and request["path"] == "/v1/customers"
    assert "name=Ada" in request["body"] and "metadata[local_id]=7" in request["body"].replace("%5B", "[").replace("%5D", "]")
    assert request["headers"]["Idempotency-Key"] == "create-7"
    assert request["headers"]["Authorization"] == "Bearer sk_test_transport"


def test_error_answers_keep_their_stripe_error_and_request_id(server):
    server.answers = [(404, {"Request-Id": "req_404"}, {"error": {"type": "invalid_request_error", "message": "No such customer: 'cus_x'", "code": "resource_missing"}})]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client_for(server.base).v1.customers.retrieve("cus_x")
    assert raised.value.code == "resource_missing" and raised.value.request_id == "req_404"
    assert raised.value.http_status == 404


def test_the_library_retries_when_stripe_asks_with_the_same_idempotency_key(server):
    server.answers = [
        (503, {"Stripe-Should-Retry": "true"}, {"error": {"type": "api_error", "message": "busy"}}),
        (200, {}, {"id": "cus_1", "object": "customer"}),
    ]
    client_for(server.base, retries=2).v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "k-1"})
    assert [r["headers"]["Idempotency-Key"] for r in server.requests] == ["k-1", "k-1"]


def test_a_stalled_answer_times_out_after_the_configured_time_as_a_retryable_error(server):
    server.answers = [(200, {"delay": 3}, {"id": "cus_1", "object": "customer"})]
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError) as raised:
        client_for(server.base, timeout=0.3).v1.customers.retrieve("cus_1")
    assert time.monotonic() - started < 2
    assert raised.value.should_retry is True


def test_a_refused_connection_is_a_retryable_connection_error():
    from sandbox.processes import free_port

    with pytest.raises(stripe.APIConnectionError) as raised:
        client_for(f"http://127.0.0.1:{free_port()}").v1.customers.retrieve("cus_1")
    assert raised.value.should_retry is True


def test_each_thread_keeps_its_connection_alive(server):
    client = client_for(server.base)
    for _ in range(10):
        client.v1.customers.retrieve("cus_1")
    ports = {r["client_port"] for r in server.requests}
    assert len(server.requests) == 10 and len(ports) == 1

    other = []
    thread = threading.Thread(target=lambda: other.append(client.v1.customers.retrieve("cus_1")))
    thread.start()
    thread.join()
    assert other and server.requests[-1]["client_port"] not in ports


def test_the_proxy_environment_is_honoured(server, monkeypatch):
    monkeypatch.setenv("http_proxy", server.base)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    client_for("http://api.stripe.invalid").v1.customers.retrieve("cus_1")
    [request] = server.requests
    assert request["path"] == "http://api.stripe.invalid/v1/customers/cus_1"  # a proxy's absolute form

    monkeypatch.setenv("no_proxy", "api.stripe.invalid")
    with pytest.raises(stripe.APIConnectionError):  # straight to a host that does not exist
        client_for("http://api.stripe.invalid").v1.customers.retrieve("cus_1")
    assert len(server.requests) == 1


def test_a_token_is_taken_for_every_http_request_retries_included(server, settings, monkeypatch):
    settings.STRIPE_RATE_LIMIT_PER_SECOND = 7
    settings.STRIPE_API_BASE = server.base
    settings.STRIPE_MAX_NETWORK_RETRIES = 2
    client_module.stripe_client.cache_clear()
    try:
        http_client = client_module.stripe_client()._requestor._client
        assert isinstance(http_client, StripeHttpClient)
        assert http_client.bucket is client_module.stripe_rate_limit() and http_client.bucket.rate == 7
        taken = []
        monkeypatch.setattr(http_client.bucket, "acquire", lambda timeout=None: taken.append(1) or True)
        server.answers = [
            (500, {}, {"error": {"type": "api_error", "message": "boom"}}),
            (200, {}, {"id": "cus_1", "object": "customer"}),
        ]
        client_module.stripe_client().v1.customers.update("cus_1", params={"name": "x"})
        assert len(server.requests) == 2 and len(taken) == 2
    finally:
        client_module.stripe_client.cache_clear()

    settings.STRIPE_RATE_LIMIT_PER_SECOND = 0
    try:
        assert client_module.stripe_client()._requestor._client.bucket is None
    finally:
        client_module.stripe_client.cache_clear()
