"""``python -m mcp_oauth2.cli``: the same command as the ``mcp-oauth2`` console script."""

from mcp_oauth2.cli._app import main

if __name__ == "__main__":
    raise SystemExit(main())
