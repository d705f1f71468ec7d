"""Which URLs mcp-oauth2 will fetch keys and metadata from: HTTPS, or plain HTTP to loopback only.

Key material fetched over plain HTTP from another host could be swapped by anyone on the path, so
such a URL is refused when it is configured (or discovered), never at the first token.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "require_fetchable_url"]


def is_loopback_host(host: str) -> bool:
    """A literal loopback address (127.0.0.0/8, ::1) or exactly the name ``localhost``.

    Names below ``localhost`` (``auth.localhost``) are refused: RFC 6761 asks resolvers to keep
    them on the machine, but not every resolver does, and one that asks DNS would send the key
    request (in plain text) to whoever answers.
    """
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_fetchable_url(url: str, what: str) -> str:
    """Return ``url`` if keys may be fetched from it; otherwise raise ``ValueError`` saying why.

    ``what`` names the setting in the message (for example ``"jwks_uri"``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as error:
        raise ValueError(f"{what} is not a valid URL ({error})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{what} must be an absolute https:// URL, e.g. https://auth.example.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} must not carry credentials in the URL")
    if parts.fragment:
        raise ValueError(f"{what} must not have a fragment")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(
            f"{what} uses plain http:// for a non-loopback host; use https:// (plain http is "
            "allowed only for 127.0.0.1, ::1 and localhost)"
        )
    return url
