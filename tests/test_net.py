from __future__ import annotations

import pytest
from django.test import RequestFactory

from convai_admin.net import client_ip


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", "", [], "203.0.113.5"),
        # A forwarded header from an untrusted peer is ignored (spoofing attempt).
        ("203.0.113.5", "198.51.100.1", [], "203.0.113.5"),
        # Behind a trusted proxy the right-most untrusted hop is the client.
        ("10.0.0.2", "198.51.100.1, 203.0.113.9", ["10.0.0.2"], "203.0.113.9"),
        ("10.0.0.2", "198.51.100.1, 10.0.0.3", ["10.0.0.2", "10.0.0.3"], "198.51.100.1"),
        ("10.0.0.2", "not-an-ip", ["10.0.0.2"], "10.0.0.2"),
        ("garbage", "", [], None),
        # Networks too (a container network's proxy, whatever address it gets).
        ("172.18.0.7", "198.51.100.1", ["172.18.0.0/16"], "198.51.100.1"),
        ("172.19.0.7", "198.51.100.1", ["172.18.0.0/16"], "172.19.0.7"),
        ("172.18.0.7", "198.51.100.1, 172.18.0.9", ["172.18.0.0/16"], "198.51.100.1"),
        ("::1", "2001:db8::5", ["::1"], "2001:db8::5"),
    ],
)
def test_client_ip(settings, remote, forwarded, trusted, expected) -> None:
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
