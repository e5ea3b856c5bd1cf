"""URL helpers shared by the mock and the kit: pure standard library, no I/O."""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit


def split_url(url: str) -> SplitResult:
    """urlsplit that never raises: a malformed URL (e.g. "http://[::1/x") splits as a bare path."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port as a side effect
        return parts
    except ValueError:
        return SplitResult("", "", url, "", "")


def is_url(value: str) -> bool:
    return split_url(value).scheme.lower() in ("http", "https", "file")


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine: localhost, 127.0.0.0/8 or ::1.

    >>> is_loopback("http://127.0.0.1:8000"), is_loopback("http://[::1]:8000")
    (True, True)
    >>> is_loopback("https://api-singapore.klingai.com")
    False
    """
    host = (split_url(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if not host or not (host[0].isdigit() or ":" in host):  # a name: skip the costly parse
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
