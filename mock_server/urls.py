"""URL helpers shared by the mock and the kit: pure standard library, no I/O."""

from __future__ import annotations

import ipaddress
import socket
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
    if ":" not in value:  # no scheme: skips splitting (and hashing) a long base64 payload
        return False
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


def port_of(parts: SplitResult) -> int:
    """The port a split URL reaches: its own, or its scheme's (443 for https, else 80)."""
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host names, in every spelling a resolver accepts (127.1,
    2130706433, 0x7f.0.0.1, ::ffff:127.0.0.1); None for names. Parses, never resolves."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
