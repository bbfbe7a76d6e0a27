"""CORS: pages of allowed origins read the gateway, others are refused; checked with plain
HTTP preflights and with Chromium on pages of other origins."""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from mistral_workflows.dev import free_port
from mistral_workflows.gateway import mint_token
from tests.gateway.gateway_support import SECRET, Gateway, gateway_process
from tests.gateway.ops_support import STREAM, publish
from tests.gateway.test_live_page import browser_page, chromium  # noqa: F401 (fixture)
from tests.support import unique

ALLOWED = "https://app.example.com"
FROM_VARIABLE = "https://from-the-variable.example"
LIST = "/v1/workflows/events/list"
TOKEN = mint_token(SECRET.encode(), "default", ttl=600)


def preflight(url: str, origin: str, headers: str = "authorization, last-event-id") -> Any:
    return httpx.options(
        url + STREAM,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": headers,
        },
        timeout=10,
    )


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """An HTTP server on another loopback port serving an empty page: another origin."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>another origin</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def allowed_page() -> Iterator[str]:
    with page_server() as origin:
        yield origin


@pytest.fixture(scope="module")
def cors_gateway(nats_url: str, allowed_page: str) -> Iterator[Gateway]:
    """A gateway requiring tokens that allows two origins by flag (the variable, set to
    another origin, is replaced by the flags)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS", FROM_VARIABLE)
        flags = ["--cors-origin", ALLOWED, "--cors-origin", allowed_page]
        with gateway_process(nats_url, SECRET, *flags) as running:
            yield running


def test_preflights_follow_the_allowed_origins(cors_gateway):
    """An allowed origin's preflight for Authorization and Last-Event-ID gets 204 naming
    them; another origin, or a header the gateway does not take, gets a JSON 403."""
    allowed = preflight(cors_gateway.url, ALLOWED)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    named = {h.strip() for h in allowed.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "last-event-id"} <= named
    assert "GET" in allowed.headers["access-control-allow-methods"]
    assert "Origin" in allowed.headers["vary"]

    for origin in ("https://evil.example", "http://127.0.0.1:1", ALLOWED + ":8443", FROM_VARIABLE):
        refused = preflight(cors_gateway.url, origin)
        assert refused.status_code == 403, origin
        assert refused.json()["error"] == "cors_forbidden"
        assert "access-control-allow-origin" not in refused.headers
    odd = preflight(cors_gateway.url, ALLOWED, "authorization, x-secret-header")
    assert odd.status_code == 403 and "x-secret-header" in odd.json()["reason"]


def test_requests_of_allowed_origins_are_marked_and_others_refused(cors_gateway, nats_url):
    """A read from an allowed origin carries Access-Control-Allow-Origin; one from another
    origin is refused with a JSON 403 before anything is read; one without Origin (not a
    browser page of another origin) is untouched."""
    params = {"workflow_exec_id": unique("gw-cors")}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    marked = httpx.get(cors_gateway.url + LIST, params=params, headers={**auth, "Origin": ALLOWED})
    assert marked.status_code == 200
    assert marked.headers["access-control-allow-origin"] == ALLOWED
    other = {**auth, "Origin": "https://evil.example"}
    refused = httpx.get(cors_gateway.url + LIST, params=params, headers=other)
    assert refused.status_code == 403 and refused.json()["error"] == "cors_forbidden"
    plain = httpx.get(cors_gateway.url + LIST, params=params, headers=auth)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_nothing_is_open_by_default_beyond_loopback_development_mode(
    gateway, secured_gateway, monkeypatch, nats_url
):
    """Development mode allows loopback origins only; a gateway with a secret and no
    origins allows none; the variable alone allows its origins."""
    assert preflight(gateway.url, "http://localhost:3000").status_code == 204
    assert preflight(gateway.url, "http://[::1]:5173").status_code == 204
    assert preflight(gateway.url, "https://evil.example").status_code == 403
    assert preflight(secured_gateway.url, "http://localhost:3000").status_code == 403
    assert preflight(secured_gateway.url, ALLOWED).status_code == 403
    monkeypatch.setenv("MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS", f"{ALLOWED}, https://b.example")
    with gateway_process(nats_url, SECRET) as from_variable:
        assert preflight(from_variable.url, "https://b.example").status_code == 204
        assert preflight(from_variable.url, ALLOWED).status_code == 204
        assert preflight(from_variable.url, "http://localhost:3000").status_code == 403


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/path", "ftp://x"])
def test_a_bad_origin_is_refused_at_start(origin):
    """An origin that is not scheme://host[:port] stops the command with its name."""
    done = subprocess.run(
        [sys.executable, "-m", "mistral_workflows", "gateway", "--cors-origin", origin],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert repr(origin) in done.stderr and "is not an origin" in done.stderr


# Opens the stream with EventSource (the token in the URL) and lists with fetch() sending
# Authorization and Last-Event-ID (a preflighted request); reports what it could read.
READ_FROM_PAGE = """async ([base, workflowId, token, count]) => {
    const got = [];
    const streamed = await new Promise((resolve) => {
        const url = `${base}/v1/workflows/events/stream?workflow_exec_id=${workflowId}`
            + `&access_token=${token}`;
        const source = new EventSource(url);
        source.addEventListener("workflow.event", (e) => {
            got.push(Number(e.lastEventId));
            if (got.length === count) { source.close(); resolve("read"); }
        });
        source.onerror = () => { source.close(); resolve("refused"); };
    });
    let listed;
    try {
        const response = await fetch(`${base}/v1/workflows/events/list?workflow_exec_id=`
            + workflowId, {headers: {"Authorization": `Bearer ${token}`, "Last-Event-ID": "0"}});
        listed = (await response.json()).events.length;
    } catch (e) {
        listed = "refused";
    }
    return {streamed, got, listed};
}"""


async def test_a_page_of_an_allowed_origin_reads_and_another_is_refused(
    chromium,  # noqa: F811
    cors_gateway,
    allowed_page,
    nats_url,
):
    """In Chromium, a page of an allowed origin opens the stream and lists with headers
    that need a preflight; a page of another origin gets neither (negative control: the
    same script, the same gateway)."""
    workflow_id = unique("gw-cors-page")
    sequences = await publish(nats_url, workflow_id, 3)
    args = [cors_gateway.url, workflow_id, TOKEN, 3]
    with page_server() as other_page:
        async with browser_page(chromium) as page:
            await page.goto(allowed_page)
            allowed = await page.evaluate(READ_FROM_PAGE, args)
            await page.goto(other_page)
            refused = await page.evaluate(READ_FROM_PAGE, args)
    assert allowed == {"streamed": "read", "got": sequences, "listed": 3}
    assert refused == {"streamed": "refused", "got": [], "listed": "refused"}
