"""TLS towards a bridge: which certificate authorities to trust, and when plain HTTP is refused.

A bridge serves HTTPS with a certificate from the web's authorities, from the operator's own
(``METADISK_CA_FILE``: a PEM bundle trusted besides the system's), or behind a reverse proxy. Plain
HTTP is for a bridge on this machine: to any other host it sends API keys, passwords and order
limits in the clear, so clients and farmers refuse it unless told with ``METADISK_INSECURE_HTTP=1``.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from metadisk.runtime.net import is_loopback

CA_FILE_ENV = "METADISK_CA_FILE"
INSECURE_ENV = "METADISK_INSECURE_HTTP"


class InsecureURL(ValueError):
    """A plain-HTTP URL to another host, not allowed explicitly."""


def check_transport(url: str, environ: Mapping[str, str] = os.environ) -> None:
    """Raise `InsecureURL` if `url` is plain HTTP to a host other than this machine's loopback,
    unless ``METADISK_INSECURE_HTTP=1``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or environ.get(INSECURE_ENV) == "1":
        return
    host = parts.hostname or ""
    if host == "localhost" or is_loopback(host):
        return
    raise InsecureURL(
        f"refusing plain HTTP to {parts.netloc}: it would carry credentials in the clear "
        f"(use https://, or set {INSECURE_ENV}=1 if the network is yours)"
    )


def bridge_ssl(url: str, environ: Mapping[str, str] = os.environ) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=`` for a request to the bridge at `url`: a verifying context for
    https (the system's authorities plus ``METADISK_CA_FILE``), True (nothing) for http."""
    if urlsplit(url).scheme != "https":
        return True
    return bridge_context(environ)


def bridge_context(environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """A verifying client context: the system's authorities plus ``METADISK_CA_FILE``'s."""
    return _context(environ.get(CA_FILE_ENV) or None)


@functools.lru_cache(maxsize=4)
def _context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context
