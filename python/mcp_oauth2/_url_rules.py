"""Which URLs mcp-oauth2 accepts: those it fetches keys and metadata from, and those that only name
something (an audience, a resource, a documentation link). Both must be ``https://``, or plain
``http://`` to a loopback host; the reasons differ, and each rule says its own.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "require_fetchable_url", "require_identifier_url"]


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
    """Return ``url`` if keys or metadata may be fetched from it (an issuer, a ``jwks_uri``);
    otherwise raise ``ValueError`` saying why, naming the setting ``what``.

    Key material fetched over plain HTTP from another host could be swapped by anyone on the
    path, so such a URL is refused when it is configured (or discovered), never at the first
    token.
    """
    return _https_or_loopback(url, what)


def require_identifier_url(url: str, what: str) -> str:
    """Return ``url`` if it may name this server or a page about it (``audience``, ``resource``,
    ``resource_documentation``, a minted token's ``iss``); otherwise raise ``ValueError``.

    Nothing is fetched from these. They are compared with what tokens and clients say, and
    RFC 9728 and the MCP specification make a resource identifier an ``https`` URL without a
    fragment; plain ``http`` is kept for servers on loopback, as for fetched URLs, so that a
    development setup needs no certificate.
    """
    return _https_or_loopback(url, what)


def _https_or_loopback(url: str, what: str) -> str:
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
