"""The ``mcp-oauth2`` command: inspect tokens, key sets and configurations as the middleware would.

``mcp-oauth2 inspect``, ``jwks``, ``check`` and ``token`` (see ``mcp-oauth2 --help`` and the
documentation's CLI page). Also runnable as ``python -m mcp_oauth2.cli``.
"""

from mcp_oauth2.cli._app import main

__all__ = ["main"]
