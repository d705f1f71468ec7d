"""The health of an authenticator: whether it can validate tokens now, from its key sources' stats.

``AuthenticatorHealth`` sums up one ``KeySourceStats`` per trusted issuer: the authenticator is
``ready`` when every issuer's source holds usable keys (``fresh``, ``stale`` within
``max_stale``, or ``static``). ``send_readiness`` answers a Kubernetes readiness probe with it:
200 or 503 and a JSON body that says whether the process is ready and which check failed,
nothing more (a probe route needs no token, so its answer must tell an outsider nothing about
the identity provider); the details (state, key counts, ages, failure codes) go to the log when
readiness changes, and are in ``health()`` for code that asks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.types import Send

from mcp_oauth2._jwks import KeySourceStats
from mcp_oauth2._key_schedule import State

__all__ = ["AuthenticatorHealth", "ReadinessProbe", "summarize"]

logger = logging.getLogger("mcp_oauth2.readiness")

# From the healthiest to the worst: the whole is as healthy as its worst source.
_STATE_ORDER: tuple[State, ...] = ("static", "fresh", "stale", "empty", "failing")


@dataclass(frozen=True, slots=True)
class AuthenticatorHealth:
    """A snapshot of ``Authenticator.health()``."""

    ready: bool
    """Whether every trusted issuer's source holds usable keys."""
    state: State
    """The worst state among the sources (``static`` < ``fresh`` < ``stale`` < ``empty`` <
    ``failing``)."""
    usable_key_count: int
    """Usable keys over all sources (each source counted once)."""
    age: float | None
    """Seconds since the oldest cached key set was fetched (None when none was)."""
    last_failure: str | None
    """The ``code`` of the most recent failed refresh of any source."""
    last_failure_at: float | None
    """Wall-clock time (unix seconds) of that failure."""
    sources: Mapping[str, KeySourceStats] = field(default_factory=dict)
    """Each trusted issuer's source's stats."""
    introspection_failures: int | None = None
    """Failed introspection calls in a row (None without introspection). They do not make the
    authenticator unready: no call can be tried without a token, so a process taken out of
    service would never learn that the endpoint came back; requests meanwhile get 503."""

    def as_dict(self) -> dict[str, object]:
        """The details, for logs and operators (no URLs, no per-issuer details)."""
        return {
            "ready": self.ready,
            "state": self.state,
            "usable_keys": self.usable_key_count,
            "age": None if self.age is None else round(self.age, 1),
            "last_failure": self.last_failure,
            "introspection_failures": self.introspection_failures,
        }

    def checks(self) -> dict[str, str]:
        """Each check by name, ``ok`` or ``failing``: ``keys`` (usable keys for every issuer,
        when keys are needed) and ``introspection`` (the last call succeeded, when tokens are
        introspected; reported, but not a reason to be unready: no call can be tried without a
        token, so a process taken out of service would never learn it came back)."""
        checks: dict[str, str] = {}
        if self.sources or self.introspection_failures is None:
            checks["keys"] = "ok" if self.ready else "failing"
        if self.introspection_failures is not None:
            checks["introspection"] = "failing" if self.introspection_failures else "ok"
        return checks


def summarize(
    sources: Mapping[str, KeySourceStats],
    distinct: list[KeySourceStats],
    introspection_failures: int | None = None,
) -> AuthenticatorHealth:
    """The health of an authenticator whose issuers have ``sources`` (``distinct``: each
    source's stats once, for the sums); with no sources at all it introspects every token
    (``introspection_failures`` is then a number) and needs no keys to be ready."""
    keys_needed = bool(sources) or introspection_failures is None
    states: list[State] = [s.state for s in distinct]
    state: State = max(states, key=_STATE_ORDER.index) if states else "empty"
    ages = [s.age for s in distinct if s.age is not None]
    failures = [s for s in distinct if s.last_failure_at is not None]
    latest = max(failures, key=lambda s: s.last_failure_at or 0.0, default=None)
    return AuthenticatorHealth(
        ready=(bool(sources) and all(s.usable_key_count > 0 for s in sources.values()))
        if keys_needed
        else True,
        state=state,
        usable_key_count=sum(s.usable_key_count for s in distinct),
        age=max(ages, default=None),
        last_failure=latest.last_failure if latest is not None else None,
        last_failure_at=latest.last_failure_at if latest is not None else None,
        sources=dict(sources),
        introspection_failures=introspection_failures,
    )


class ReadinessProbe:
    """Answers a readiness route, and logs the details when readiness changes."""

    def __init__(self) -> None:
        self._ready: bool | None = None

    async def send(self, method: str, health: AuthenticatorHealth, send: Send) -> None:
        """``GET``/``HEAD``: 200 when ``ready``, else 503, with ``{"ready", "checks"}``;
        other methods 405."""
        self._note(health)
        if method in ("GET", "HEAD"):
            status = 200 if health.ready else 503
            answer = {"ready": health.ready, "checks": health.checks()}
            body = json.dumps(answer, separators=(",", ":")).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ]
            if method == "HEAD":
                body = b""
        else:
            status, body = 405, b""
            headers = [(b"allow", b"GET, HEAD"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _note(self, health: AuthenticatorHealth) -> None:
        if health.ready == self._ready:
            return
        first = self._ready is None
        self._ready = health.ready
        if health.ready:
            level = logging.DEBUG if first else logging.INFO
            logger.log(level, "ready: %s", health.as_dict())
        else:
            logger.warning("not ready: %s", health.as_dict())
