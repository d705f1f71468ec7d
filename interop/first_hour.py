"""The first hour, followed literally: the documentation's own commands and code against Keycloak.

``make interop`` runs this step against its Keycloak, as a new user would follow the pages:

1. the shell blocks of ``docs/providers/keycloak.md`` marked ``<!-- interop: keycloak-realm -->``,
   in order, with ``bash``, with the variables the page has the reader export (Keycloak's URL and
   admin, the MCP server's URL, a client secret): they create the realm ``mcp``, its client
   scopes, the audience mapper and the client, get a token, and run ``mcp-oauth2 check`` and
   ``mcp-oauth2 inspect`` on it;
2. the server of ``docs/getting-started.md`` (the block marked ``<!-- interop: server -->``) saved
   as ``server.py`` with the realm's issuer and the server's URL in place of the two example
   values, as the page tells the reader, and started with ``uvicorn server:app --port PORT``;
3. the client of ``docs/clients.md`` (``<!-- interop: client -->``) with the token in ``$TOKEN``,
   then its ``ClientCredentialsOAuthProvider`` example (``<!-- interop: oauth-client -->``), which
   gets its own token from Keycloak by discovery from the server's 401;

and checks that ``whoami`` answers the token's caller through ``current_user()``, that every
refusal on the way is a line of the server's log, and what Keycloak's tokens look like without
the audience mapper (the recipe's "mistakes", measured). Then (``run_exchange_recipe``) the
Keycloak commands of ``docs/downstream.md`` (``<!-- interop: keycloak-exchange -->``) in the same
realm, with the recipe's ``kc`` function: the downstream API's client and audience, the MCP
server's client with standard token exchange, one exchange by hand. Only the URLs change between
the pages and what runs; the pages are read at every run, so a recipe that no longer works fails
here.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

__all__ = ["FirstHour", "doc_blocks", "marked_code"]

ROOT: Final = Path(__file__).resolve().parent.parent
RECIPE_PAGE: Final = ROOT / "docs" / "providers" / "keycloak.md"
EXCHANGE_PAGE: Final = ROOT / "docs" / "downstream.md"
SERVER_PAGE: Final = ROOT / "docs" / "getting-started.md"
CLIENT_PAGE: Final = ROOT / "docs" / "clients.md"
# The example values the pages use, which a reader replaces with their own.
EXAMPLE_ISSUER: Final = "https://auth.example.com"
EXAMPLE_AUDIENCE: Final = "https://mcp.example.com/mcp"
EXAMPLE_MCP_URL: Final = "http://127.0.0.1:8000/mcp"
EXAMPLE_KEYCLOAK_ISSUER: Final = "http://localhost:8080/realms/mcp"
EXAMPLE_API: Final = "http://127.0.0.1:8001"
RECIPE_REALM: Final = "mcp"
RECIPE_CLIENT: Final = "mcp-client"
_MARK: Final = re.compile(r"<!--\s*(.*?)\s*-->")
# The recipe's shell function that calls Keycloak's admin REST API.
_KC_FUNCTION: Final = re.compile(r"^kc\(\) \{.*?^\}$", re.MULTILINE | re.DOTALL)
_FENCE: Final = re.compile(r"^```(\w*)\s*$")
_STEP_TIMEOUT: Final = 180.0
_SERVER_START_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class DocBlock:
    """A fenced block of a Markdown page and the HTML comments on the lines right above it."""

    marks: tuple[str, ...]
    language: str
    code: str


def doc_blocks(page: Path) -> list[DocBlock]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[DocBlock] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        marks: list[str] = []
        above = index - 1
        while above >= 0 and (mark := _MARK.fullmatch(lines[above].strip())):
            marks.insert(0, mark.group(1))
            above -= 1
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        code = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(DocBlock(tuple(marks), fence.group(1), code))
        index = end + 1
    return found


def marked_code(page: Path, name: str) -> str:
    """The code of every block of ``page`` marked ``interop: name``, in order."""
    codes = [b.code for b in doc_blocks(page) if f"interop: {name}" in b.marks]
    if not codes:
        raise RuntimeError(f"{page.relative_to(ROOT)} has no block marked 'interop: {name}'")
    return "\n".join(codes)


def replaced(code: str, replacements: Mapping[str, str], where: str) -> str:
    """``code`` with each example value replaced, as a reader would; each must be there."""
    for example, value in replacements.items():
        if example not in code:
            raise RuntimeError(f"{where} no longer contains {example!r}, which the step replaces")
        code = code.replace(example, value)
    return code


@dataclass
class StepResult:
    returncode: int
    output: str


class FirstHour:
    """One run of the first hour in a temporary directory (the reader's working directory).

    ``keycloak`` is the base URL (which is also its ``--hostname``); ``admin`` its admin's name
    and password; ``port`` the MCP server's port on 127.0.0.1; ``bin_dir`` the directory of the
    installed ``mcp-oauth2``, ``uvicorn`` and ``python``.
    """

    def __init__(self, keycloak: str, admin: tuple[str, str], port: int, bin_dir: Path) -> None:
        self.keycloak = keycloak
        self.admin = admin
        self.port = port
        self.bin_dir = bin_dir
        self.mcp_url = f"http://127.0.0.1:{port}/mcp"
        self.issuer = f"{keycloak}/realms/{RECIPE_REALM}"
        self.client_secret = secrets.token_urlsafe(24)
        self.token = ""
        self._workdir = Path(tempfile.mkdtemp(prefix="mcp-oauth2-first-hour-"))
        self._server: subprocess.Popen[bytes] | None = None
        self._server_log = self._workdir / "server.log"

    def environment(self, **extra: str) -> dict[str, str]:
        """The reader's shell: no MCP_OAUTH2_* of this process, the installed commands first,
        and the variables the recipe page has the reader export."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MCP_OAUTH2_")}
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["NO_COLOR"] = "1"
        env.update(
            KEYCLOAK=self.keycloak,
            KEYCLOAK_ADMIN=self.admin[0],
            KEYCLOAK_ADMIN_PASSWORD=self.admin[1],
            MCP_RESOURCE=self.mcp_url,
            CLIENT_SECRET=self.client_secret,
        )
        env.update(extra)
        return env

    def _run(self, command: list[str], env: Mapping[str, str]) -> StepResult:
        done = subprocess.run(  # noqa: S603 - the documentation's own commands
            command,
            cwd=self._workdir,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=_STEP_TIMEOUT,
            check=False,
        )
        return StepResult(done.returncode, done.stdout + done.stderr)

    def run_recipe(self) -> StepResult:
        """The recipe's commands in one bash, which then hands back ``$TOKEN``."""
        script = marked_code(RECIPE_PAGE, "keycloak-realm")
        token_file = self._workdir / "token"
        script = "set -euo pipefail\n" + script + f'\nprintf "%s" "$TOKEN" > {token_file}\n'
        result = self._run(["bash", "-c", script], self.environment())
        if result.returncode == 0:
            self.token = token_file.read_text()
        return result

    def run_exchange_recipe(self, api_url: str, token: str) -> StepResult:
        """``docs/downstream.md``'s Keycloak commands (after the recipe, in its realm), with the
        recipe's ``kc`` function, the API at ``api_url`` and ``token`` as ``$TOKEN``."""
        kc = _KC_FUNCTION.search(marked_code(RECIPE_PAGE, "keycloak-realm"))
        if kc is None:
            raise RuntimeError(f"{RECIPE_PAGE.name} no longer defines the kc function")
        code = replaced(
            marked_code(EXCHANGE_PAGE, "keycloak-exchange"),
            {EXAMPLE_API: api_url},
            f"{EXCHANGE_PAGE.name}'s Keycloak commands",
        )
        script = "set -euo pipefail\n" + kc.group(0) + "\n" + code
        return self._run(["bash", "-c", script], self.environment(TOKEN=token))

    def start_server(self) -> float:
        """``server.py`` from getting started, with this realm and URL; ``uvicorn`` as the page
        says. Returns the seconds until it answered."""
        code = replaced(
            marked_code(SERVER_PAGE, "server"),
            {EXAMPLE_ISSUER: self.issuer, EXAMPLE_AUDIENCE: self.mcp_url},
            f"{SERVER_PAGE.name}'s server",
        )
        (self._workdir / "server.py").write_text(code, encoding="utf-8")
        started = time.perf_counter()
        with self._server_log.open("wb") as log:
            self._server = subprocess.Popen(  # noqa: S603 - the page's own command
                [str(self.bin_dir / "uvicorn"), "server:app", "--port", str(self.port)],
                cwd=self._workdir,
                # The SDK's MCPServer logs through rich when it is installed, wrapped at the
                # terminal's width: wide enough that each log line is one line.
                env=self.environment(COLUMNS="400"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        health = self.mcp_url.removesuffix("/mcp") + "/health"
        with httpx.Client(timeout=5) as http:
            while time.perf_counter() - started < _SERVER_START_TIMEOUT:
                if self._server.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{self.server_log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(health).status_code == 200:
                        return time.perf_counter() - started
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer:\n{self.server_log()}")

    def run_client(self) -> StepResult:
        """The static-token client of the clients page, with ``$TOKEN``."""
        code = replaced(
            marked_code(CLIENT_PAGE, "client"),
            {EXAMPLE_MCP_URL: self.mcp_url},
            f"{CLIENT_PAGE.name}'s client",
        )
        return self._python(code, TOKEN=self.token)

    def run_oauth_client(self) -> StepResult:
        """The clients page's ``ClientCredentialsOAuthProvider`` example: no token given."""
        code = replaced(
            marked_code(CLIENT_PAGE, "oauth-client"),
            {EXAMPLE_MCP_URL: self.mcp_url, EXAMPLE_KEYCLOAK_ISSUER: self.issuer},
            f"{CLIENT_PAGE.name}'s OAuth client",
        )
        return self._python(code)

    def _python(self, code: str, **extra: str) -> StepResult:
        script = self._workdir / "client.py"
        script.write_text(code, encoding="utf-8")
        return self._run([str(self.bin_dir / "python"), str(script)], self.environment(**extra))

    def server_log(self) -> str:
        try:
            return self._server_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"

    def refusal_lines(self) -> list[str]:
        """The server's refusal lines (the SDK's MCPServer logs at INFO by default)."""
        return [
            # (rich, when installed, pads the line and adds the source location)
            re.split(r"\s{2,}", line[line.index("refused ") :])[0].strip()
            for line in self.server_log().splitlines()
            if "refused " in line
        ]

    def stop(self) -> None:
        """Stop the server by its process id."""
        process, self._server = self._server, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)

    def close(self) -> None:
        """Stop the server and remove the working directory."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[FirstHour]:
        try:
            yield self
        finally:
            self.close()


def literal_answer(output: str) -> Any:
    """The last line of a client's output that is a Python literal (what it printed)."""
    for line in reversed(output.strip().splitlines()):
        with contextlib.suppress(ValueError, SyntaxError):
            return ast.literal_eval(line.strip())
    return None


def whoami_problems(
    answer: Any, token_claims: Mapping[str, Any], first_hour: FirstHour
) -> list[str]:
    """What is wrong with ``whoami``'s answer for a token with ``token_claims`` (none: empty)."""
    if not isinstance(answer, dict):
        return [f"whoami answered {answer!r}"]
    expected: dict[str, Callable[[Any], bool]] = {
        "subject": lambda v: v == token_claims.get("sub"),
        "client_id": lambda v: v == RECIPE_CLIENT,
        "scopes": lambda v: v == ["mcp:tools"],
    }
    problems = [
        f"{name} = {answer.get(name)!r}"
        for name, ok in expected.items()
        if not ok(answer.get(name))
    ]
    claims = answer.get("claims")
    if not isinstance(claims, dict) or (claims.get("aud"), claims.get("iss")) != (
        first_hour.mcp_url,
        first_hour.issuer,
    ):
        problems.append(f"claims = {claims!r}")
    return problems


if __name__ == "__main__":  # pragma: no cover - a manual check of the pages' marks
    for page, name in (
        (RECIPE_PAGE, "keycloak-realm"),
        (SERVER_PAGE, "server"),
        (CLIENT_PAGE, "client"),
        (CLIENT_PAGE, "oauth-client"),
    ):
        print(f"--- {page.relative_to(ROOT)}: interop: {name}")
        print(marked_code(page, name))
    sys.exit(0)
