"""How this server authenticates to its authorization server as a client (RFC 6749 section
2.3.1): ``client_secret_basic`` or ``client_secret_post``, with the one set of client credentials
of ``OAuth2Config`` (``client_id``, ``client_secret``, ``client_auth_method``). Introspection and
token exchange both authenticate this way.

The secret goes into the ``Authorization`` header or the form only: never into a log line, an
error or a ``repr``.
"""

from __future__ import annotations

import base64
from typing import Literal
from urllib.parse import quote_plus

from pydantic import SecretStr

__all__ = ["ClientAuthMethod", "client_authentication"]

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post"]


def client_authentication(
    client_id: str, client_secret: SecretStr, method: ClientAuthMethod
) -> tuple[dict[str, str], dict[str, str]]:
    """The form fields and the headers that authenticate this client, to add to each POST."""
    secret = client_secret.get_secret_value()
    headers = {"Accept": "application/json"}
    if method == "client_secret_post":
        return {"client_id": client_id, "client_secret": secret}, headers
    # client_secret_basic: each part form-urlencoded first, as section 2.3.1 requires.
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return {}, headers
