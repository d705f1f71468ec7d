"""A real Keycloak for the interop run: Java, a private copy of the distribution, the process.

``KeycloakServer`` unpacks the downloaded distribution (``make interop`` fetches and verifies it)
into a temporary directory, starts it in development mode on 127.0.0.1 with a fixed hostname (so
``iss`` never follows the ``Host`` header) and the realm file imported at startup, and stops it by
its process id. The temporary directory (the dev-mode H2 database, logs) is removed when the
server is closed, so every run starts from the realm file alone. ``KeycloakAdmin`` drives the
admin REST API (key providers); ``client_credentials`` asks the token endpoint for a token.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

__all__ = [
    "KeycloakAdmin",
    "KeycloakServer",
    "client_credentials",
    "find_java_home",
    "free_loopback_port",
    "password_grant",
]

MIN_JAVA: Final = 21
REALM: Final = "interop"
_HOST: Final = "127.0.0.1"
_JVM_DIRS: Final = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))
_VERSION_RE: Final = re.compile(r'version "(\d+)(?:\.(\d+))?')
_START_TIMEOUT: Final = 300.0
_STOP_TIMEOUT: Final = 15.0
_KEY_PROVIDER: Final = "org.keycloak.keys.KeyProvider"


def _java_major(java: Path) -> int | None:
    try:
        done = subprocess.run(  # noqa: S603 - a java binary found on this machine
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_RE.search(done.stderr + done.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older call themselves "1.8".
    return int(match.group(2) or 0) if major == 1 else major


def find_java_home() -> tuple[Path, int]:
    """A JDK of Java 21 or newer and its major version: ``JAVA_HOME`` if it is one, else the
    newest under the usual JVM folders. Keycloak 26 does not run on older Java."""
    configured = os.environ.get("JAVA_HOME")
    if configured:
        major = _java_major(Path(configured) / "bin" / "java")
        if major is not None and major >= MIN_JAVA:
            return Path(configured), major
    found: list[tuple[int, Path]] = []
    for folder in _JVM_DIRS:
        if not folder.is_dir():
            continue
        for home in sorted(folder.iterdir()):
            java = home / "bin" / "java"
            if home.is_symlink() or not java.is_file():
                continue
            major = _java_major(java)
            if major is not None and major >= MIN_JAVA:
                found.append((major, home))
    if not found:
        raise RuntimeError(
            f"Keycloak needs Java {MIN_JAVA} or newer: JAVA_HOME is "
            f"{configured or 'not set'} and none was found under "
            f"{', '.join(str(d) for d in _JVM_DIRS)}; set JAVA_HOME to such a JDK"
        )
    major, home = max(found)
    return home, major


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now (Keycloak binds it itself, a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class KeycloakServer:
    """Keycloak from ``distribution`` (the zip), in dev mode on ``127.0.0.1:port``.

    ``variables`` are given to the realm file's ``${NAME}`` placeholders (Keycloak resolves them
    from its environment when it imports the realm). ``start`` and ``stop`` may be called again:
    the data directory is kept until ``close``, so a restarted server has the same realm and keys.
    """

    distribution: Path
    realm_file: Path
    java_home: Path
    variables: Mapping[str, str]
    port: int = 0
    admin_user: str = "admin"

    def __post_init__(self) -> None:
        self.port = self.port or free_loopback_port()
        self.admin_password = secrets.token_urlsafe(18)
        self._workdir = Path(tempfile.mkdtemp(prefix="mcp-oauth2-keycloak-"))
        self._home: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self.log_path = self._workdir / "keycloak.log"

    @property
    def base_url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{REALM}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _unpack(self) -> Path:
        with zipfile.ZipFile(self.distribution) as archive:
            archive.extractall(self._workdir)
            top = {name.split("/", 1)[0] for name in archive.namelist()}
        if len(top) != 1:
            raise RuntimeError(f"{self.distribution}: expected one top-level folder, got {top}")
        home = self._workdir / top.pop()
        for script in (home / "bin").glob("*.sh"):
            script.chmod(0o755)  # zipfile does not restore the mode bits
        imports = home / "data" / "import"
        imports.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.realm_file, imports / self.realm_file.name)
        return home

    def arguments(self) -> list[str]:
        """What ``kc.sh`` is started with."""
        return [
            "start-dev",
            f"--http-host={_HOST}",
            f"--http-port={self.port}",
            # A fixed hostname: without it dev mode takes iss from each request's Host header.
            f"--hostname={self.base_url}",
            "--import-realm",
        ]

    def start(self) -> float:
        """Start Keycloak and wait until the realm answers; returns the seconds it took."""
        if self._process is not None:
            raise RuntimeError("Keycloak is already running")
        if self._home is None:
            self._home = self._unpack()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_"))},
            **self.variables,
            "JAVA_HOME": str(self.java_home),
            "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_user,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
        }
        started = time.perf_counter()
        self._log_handle = self.log_path.open("ab")
        # A session of its own: kc.sh runs java as its child (or execs it), and stop() can end
        # the whole group by this process id if TERM is not enough.
        self._process = subprocess.Popen(  # noqa: S603 - the distribution's own start script
            [str(self._home / "bin" / "kc.sh"), *self.arguments()],
            cwd=self._home,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = started + _START_TIMEOUT
        url = f"{self.issuer}/.well-known/openid-configuration"
        with httpx.Client(timeout=5) as http:
            while True:
                if self._process.poll() is not None:
                    code = self._process.returncode
                    self._process = None
                    raise RuntimeError(f"Keycloak exited with status {code}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(url).status_code == 200:
                        return time.perf_counter() - started
                if time.perf_counter() > deadline:
                    raise RuntimeError(
                        f"Keycloak did not answer within {_START_TIMEOUT:g} s:\n{self.log_tail()}"
                    )
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop Keycloak by its process id: TERM (kc.sh passes it on to java), then KILL the
        process group it leads if it has not exited in time."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(_STOP_TIMEOUT)
        # java may outlive kc.sh when kc.sh itself was killed: end what is left of the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def close(self) -> None:
        """Stop Keycloak and remove its temporary directory (database, logs)."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> KeycloakServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class KeyInfo:
    """One key of the realm as the admin API lists it."""

    kid: str
    provider_id: str
    algorithm: str
    status: str
    priority: int


class KeycloakAdmin:
    """The admin REST API of one realm, as the bootstrap admin (a token of ``admin-cli``)."""

    def __init__(self, server: KeycloakServer, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self._token: str | None = None

    async def _headers(self) -> dict[str, str]:
        # Admin tokens live 60 s; ask for a new one each time rather than track expiry.
        answer = await self.http.post(
            f"{self.server.base_url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.server.admin_user,
                "password": self.server.admin_password,
            },
        )
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def _url(self, path: str, realm: str = REALM) -> str:
        return f"{self.server.base_url}/admin/realms/{realm}{path}"

    async def create_client(self, realm: str, representation: Mapping[str, Any]) -> None:
        """A new client of ``realm`` (a client representation of the admin REST API)."""
        answer = await self.http.post(
            self._url("/clients", realm), json=dict(representation), headers=await self._headers()
        )
        if answer.status_code != 201:
            raise RuntimeError(f"creating a client: HTTP {answer.status_code} {answer.text}")

    async def realm_id(self) -> str:
        answer = await self.http.get(self._url(""), headers=await self._headers())
        answer.raise_for_status()
        realm_id: str = answer.json()["id"]
        return realm_id

    async def keys(self) -> list[KeyInfo]:
        """The realm's RS256 signing keys, highest priority first."""
        answer = await self.http.get(self._url("/keys"), headers=await self._headers())
        answer.raise_for_status()
        found = [
            KeyInfo(
                kid=key["kid"],
                provider_id=key["providerId"],
                algorithm=key.get("algorithm", ""),
                status=key.get("status", ""),
                priority=int(key.get("providerPriority", 0)),
            )
            for key in answer.json().get("keys", [])
            if key.get("algorithm") == "RS256" and key.get("use") == "SIG"
        ]
        return sorted(found, key=lambda k: -k.priority)

    async def key_provider_id(self, name: str) -> str:
        """The component id of the key provider called ``name``."""
        answer = await self.http.get(
            self._url("/components"),
            params={"type": _KEY_PROVIDER, "name": name},
            headers=await self._headers(),
        )
        answer.raise_for_status()
        matches = [c["id"] for c in answer.json() if c.get("name") == name]
        if len(matches) != 1:
            raise RuntimeError(f"expected one key provider named {name!r}, found {len(matches)}")
        component_id: str = matches[0]
        return component_id

    async def add_rsa_key(self, name: str, priority: int) -> str:
        """A new generated RS256 key, active, at ``priority`` (the highest signs new tokens)."""
        component = {
            "name": name,
            "providerId": "rsa-generated",
            "providerType": _KEY_PROVIDER,
            "parentId": await self.realm_id(),
            "config": {
                "priority": [str(priority)],
                "enabled": ["true"],
                "active": ["true"],
                "keySize": ["2048"],
                "algorithm": ["RS256"],
            },
        }
        answer = await self.http.post(
            self._url("/components"), json=component, headers=await self._headers()
        )
        if answer.status_code != 201:
            raise RuntimeError(
                f"adding key provider {name}: HTTP {answer.status_code} {answer.text}"
            )
        return answer.headers["location"].rsplit("/", 1)[1]

    async def remove_key_provider(self, component_id: str) -> None:
        answer = await self.http.delete(
            self._url(f"/components/{component_id}"), headers=await self._headers()
        )
        if answer.status_code != 204:
            raise RuntimeError(f"removing key provider: HTTP {answer.status_code} {answer.text}")


async def _token(http: httpx.AsyncClient, token_endpoint: str, form: Mapping[str, str]) -> str:
    answer = await http.post(token_endpoint, data=dict(form))
    if answer.status_code != 200:
        raise RuntimeError(f"token endpoint: HTTP {answer.status_code} {answer.text[:300]}")
    token: str = answer.json()["access_token"]
    return token


async def client_credentials(
    http: httpx.AsyncClient,
    token_endpoint: str,
    client_id: str,
    secret: str,
    scopes: Sequence[str] = (),
) -> str:
    """An access token of the client-credentials grant (client_secret_post)."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    if scopes:
        form["scope"] = " ".join(scopes)
    return await _token(http, token_endpoint, form)


async def password_grant(
    http: httpx.AsyncClient,
    token_endpoint: str,
    client_id: str,
    secret: str,
    username: str,
    password: str,
    scopes: Sequence[str] = (),
) -> str:
    """A user's access token by the resource-owner password grant (legacy; the realm allows it
    for one test client only, to show what a user's token carries)."""
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "client_secret": secret,
        "username": username,
        "password": password,
    }
    if scopes:
        form["scope"] = " ".join(scopes)
    return await _token(http, token_endpoint, form)
