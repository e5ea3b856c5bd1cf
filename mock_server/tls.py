"""One client TLS context per process: loading the CA bundle costs ~20 ms per httpx client."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
