"""NATS URLs are checked before any connection: the schemes nats-py speaks pass, anything
else (an http:// URL given by mistake...) is refused by the plugin, `subscribe` and the
command line alike, with a message naming the schemes that work."""

from __future__ import annotations

import pytest

from mistral_workflows import MistralWorkflowsPlugin, subscribe
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.urls import NATS_SCHEMES, check_nats_urls

GOOD = [
    "nats://127.0.0.1:4222",
    "tls://nats.example.com:4222",
    "ws://127.0.0.1:8080",
    "wss://nats.example.com",
    "NATS://127.0.0.1:4222",
    "127.0.0.1:4222",  # nats-py reads a URL without a scheme as nats://
    "nats://user:secret@127.0.0.1:4222",
    ["nats://a:4222", "tls://b:4222"],
]
BAD = [
    ("http://127.0.0.1:4222", "'http://'"),
    ("https://nats.example.com", "'https://'"),
    ("redis://127.0.0.1:6379", "'redis://'"),
    ("nats://127.0.0.1:port", "malformed"),
    ("nats://:4222", "no host"),
    (["nats://a:4222", "http://b:4222"], "'http://'"),
]


@pytest.mark.parametrize("url", GOOD)
def test_the_schemes_nats_speaks_pass(url):
    """nats://, tls://, ws://, wss:// (any case) and a bare host:port are accepted."""
    check_nats_urls(url)
    MistralWorkflowsPlugin(nats_url=url)


@pytest.mark.parametrize(("url", "named"), BAD)
def test_the_plugin_refuses_a_wrong_url_at_construction(url, named):
    """The plugin raises a ValueError (ConfigurationError) naming the problem and the
    schemes that work, before any worker starts."""
    with pytest.raises(ValueError) as raised:
        MistralWorkflowsPlugin(nats_url=url)
    assert isinstance(raised.value, ConfigurationError)
    message = str(raised.value)
    assert named in message and all(f"{s}://" in message for s in NATS_SCHEMES)


def test_credentials_never_appear_in_the_refusal():
    """A refused URL is shown without its password."""
    with pytest.raises(ConfigurationError) as raised:
        check_nats_urls("http://reader:s3cret@127.0.0.1:4222")
    assert "s3cret" not in str(raised.value)
    with pytest.raises(ConfigurationError) as raised:
        check_nats_urls("nats://reader:s3cret@127.0.0.1:port")
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize("urls", ["", [], ["ws://a:80", "nats://b:4222"], [None], None, 4222])
def test_no_url_or_a_mix_of_websocket_and_plain_is_refused(urls):
    """An empty URL, an empty list, or WebSocket and plain servers in one list."""
    with pytest.raises(ConfigurationError):
        check_nats_urls(urls)


async def test_subscribe_refuses_a_wrong_url_before_connecting():
    """`subscribe` goes through the same check (no connection attempt, no wait)."""
    with pytest.raises(ConfigurationError, match="'http://'"):
        async for _ in subscribe("http://127.0.0.1:4222", idle_timeout=0.1):
            pass
