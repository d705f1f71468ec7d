"""Soak with faults: a protected app under uvicorn, a key server that misbehaves, 50 clients.

    python tests/soak/soak.py            # `make soak`: about two minutes
    python tests/soak/soak.py --short    # `make soak-ci`: well under two minutes

A ``LocalIssuer`` serves the keys from a thread; the protected app (a Starlette app behind
``OAuth2Middleware``, configured from ``MCP_OAUTH2_*`` variables) runs under uvicorn in a
subprocess; 50 concurrent clients send valid and invalid tokens the whole time while the key
server rotates keys, stops listening, answers 500, answers an HTML page, hangs, recovers and
rotates again, removing the old key. Checked at the end, and printed:

- no valid token is refused while its key is cached (none in any fault phase);
- no invalid token is accepted, and no request gets a 500;
- a rotated-in key is picked up on its first token, within a second or two while the clients
  keep sending key misses (a 503 with `Retry-After` meanwhile, never "unknown key");
- key fetches stay within what the caching rules allow (counted by the key server itself);
- the server's resident memory stays flat;
- requests during the hang do not wait for the key server (their latency stays far below the
  key fetch timeout).

Not collected by pytest (no ``test_`` prefix); run through the Makefile targets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mcp_oauth2._key_schedule import MISS_FETCH_INTERVAL
from mcp_oauth2.testing import LocalIssuer, bind_loopback, url_of

CLIENTS = 50
FRESHNESS = 4  # the key server's Cache-Control max-age: scheduled refreshes every ~3 s
COOLDOWN = 5
FETCH_TIMEOUT = 5.0  # a request that waited for the hanging key server would show it
RETRIES = 1
SERVE_FD_ENV = "SOAK_SERVE_FD"
STATS_PATH = "/_soak/keys"
MAX_BACKOFF = 60.0  # CacheSettings.max_backoff


# -- the server process ------------------------------------------------------------------------


def serve(fd: int) -> None:
    """The protected app on the inherited listening socket (the configuration is in the env)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware
    from mcp_oauth2.lowlevel import CacheSettings, JWKSCache

    config = OAuth2Config()  # from the MCP_OAUTH2_* variables
    # The key cache, built here so the soak can read its stats, with quick timings.
    settings = CacheSettings(
        min_max_age=1, max_stale=3600, cooldown=COOLDOWN, timeout=FETCH_TIMEOUT, retries=RETRIES
    )
    source = JWKSCache(issuer=config.issuer[0], settings=settings)

    async def protected(request: Request) -> JSONResponse:
        user = request.user
        assert isinstance(user, AuthenticatedUser)
        return JSONResponse({"subject": user.subject})

    async def keys(request: Request) -> JSONResponse:
        stats = source.stats()
        key_ids = list((await source.get_keys()).key_ids) if stats.key_count else []
        return JSONResponse(
            {
                "key_ids": key_ids,
                "state": stats.state,
                "fetches": stats.fetches,
                "failures": stats.failures,
            }
        )

    app = Starlette(routes=[Route("/mcp", protected), Route(STATS_PATH, keys)])
    app.add_middleware(OAuth2Middleware, config=config, key_sources=source)
    server = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(server).run(sockets=[socket.socket(fileno=fd)])


# -- the driver ----------------------------------------------------------------------------------


@dataclass
class Result:
    phase: str
    kind: str  # "valid" or "invalid"
    status: int
    latency: float
    pool: str  # "valid", "plain" or "misses"
    end_phase: str  # the phase when the answer came (a request may straddle two)
    kid: str | None = None  # the key id the token names


@dataclass
class Pools:
    """Tokens the clients draw from; the controller moves them as keys come and go."""

    valid: list[str] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)
    """Invalid tokens refused without touching the key set (expired, wrong audience, ...)."""
    misses: list[str] = field(default_factory=list)
    """Invalid tokens that are key misses (unknown kid, bad signature): they may refetch."""


class Soak:
    def __init__(self, *, phase_seconds: float, seed: int = 5) -> None:
        self.phase_seconds = phase_seconds
        self.rng = random.Random(seed)
        self.issuer = LocalIssuer(cache_max_age=FRESHNESS)
        self.pools = Pools()
        self.phase = "start"
        self.results: list[Result] = []
        self.rss: list[tuple[str, int]] = []
        self.failures: list[str] = []
        self.removed_kids: set[str] = set()  # keys the rotation removed: their tokens now miss
        self.notes: list[str] = []
        self.running = True
        self.fault_seconds = 0.0
        self.fault_phases = 0

    # -- tokens --------------------------------------------------------------------------------

    def mint_valid(self, algorithm: str, count: int) -> list[str]:
        return [
            self.issuer.mint(
                subject=f"user-{i}", algorithm=algorithm, expires_in=7200, scopes=["mcp:tools"]
            )
            for i in range(count)
        ]

    def mint_invalid(self) -> None:
        issuer = self.issuer
        plain = [issuer.mint_expired() for _ in range(20)]
        plain += [issuer.mint_for_audience("http://127.0.0.1:9/other") for _ in range(20)]
        plain += [issuer.mint(headers={"alg": "none"}) for _ in range(5)]
        plain += [issuer.mint(claims={"iss": "http://127.0.0.1:9/evil"}) for _ in range(5)]
        plain += ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."]
        misses = [issuer.mint_untrusted(algorithm="ES256") for _ in range(20)]
        misses += [issuer.mint(kid=f"unknown-{i}") for i in range(20)]
        good = issuer.mint()
        head, payload, signature = good.split(".")
        for i in range(20):  # a changed signature: a key miss under a known kid
            at = (i * 37) % len(signature)
            changed = "A" if signature[at] != "A" else "B"
            misses.append(f"{head}.{payload}.{signature[:at]}{changed}{signature[at + 1 :]}")
        self.pools.plain, self.pools.misses = plain, misses

    # -- load ------------------------------------------------------------------------------------

    async def client(self, http: httpx.AsyncClient) -> None:
        while self.running:
            kind = "invalid" if self.rng.random() < 0.2 else "valid"
            if kind == "valid":
                pool, name = self.pools.valid, "valid"
            elif self.rng.random() < 0.5:
                pool, name = self.pools.plain, "plain"
            else:
                pool, name = self.pools.misses, "misses"
            token = self.rng.choice(pool)
            phase = self.phase
            started = time.perf_counter()
            try:
                response = await http.get("/mcp", headers={"Authorization": f"Bearer {token}"})
                status = response.status_code
            except httpx.HTTPError as error:
                status = -1
                self.notes.append(f"client error in {phase}: {type(error).__name__}")
            latency = time.perf_counter() - started
            self.results.append(
                Result(phase, kind, status, latency, name, self.phase, _kid_of(token))
            )

    async def sample_memory(self, pid: int) -> None:
        while self.running:
            self.rss.append((self.phase, _resident_bytes(pid)))
            await asyncio.sleep(0.25)

    # -- phases ----------------------------------------------------------------------------------

    async def server_keys(self, http: httpx.AsyncClient) -> dict[str, Any]:
        response = await http.get(STATS_PATH)
        document: dict[str, Any] = response.json()
        return document

    async def until_keys(
        self, http: httpx.AsyncClient, predicate: Any, seconds: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            keys = await self.server_keys(http)
            if predicate(keys):
                return keys
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server's keys did not reach the expected state: {keys}")
            await asyncio.sleep(0.1)

    async def rotate(self, http: httpx.AsyncClient, algorithm: str, *, keep_old: bool) -> str:
        """Rotate while the clients keep sending key misses, and check that the first token of
        the new key is accepted within a few seconds: at once, or after a 503 whose
        ``Retry-After`` it honours (another miss may have fetched less than a second before),
        never refused as unknown."""
        kid = self.issuer.rotate(algorithm, keep_old=keep_old)
        token = self.issuer.mint(kid=kid, expires_in=7200)
        started = time.monotonic()
        while True:
            response = await http.get("/mcp", headers={"Authorization": f"Bearer {token}"})
            waited = time.monotonic() - started
            if response.status_code != 503 or waited > 5 * MISS_FETCH_INTERVAL:
                break
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        if response.status_code != 200:
            self.failures.append(f"the first token of the new key {kid} got {response.status_code}")
        else:
            self.notes.append(
                f"the first token of each rotated-in key was accepted ({algorithm}, "
                f"within {waited:.1f} s while misses kept arriving)"
            )
        return kid

    async def hold(self, phase: str, *, fault: bool = False) -> None:
        self.phase = phase
        await asyncio.sleep(self.phase_seconds)
        if fault:
            self.fault_seconds += self.phase_seconds
            self.fault_phases += 1

    async def script(self, http: httpx.AsyncClient) -> None:
        try:
            await self.phases(http)
        except Exception as error:
            self.failures.append(f"the script stopped in phase {self.phase}: {error}")
        finally:
            self.running = False

    async def phases(self, http: httpx.AsyncClient) -> None:
        issuer = self.issuer
        await self.hold("warm")
        # Rotation, keeping the old key: the new kid is fetched for its first token.
        self.phase = "rotate"
        await self.rotate(http, "ES256", keep_old=True)
        self.pools.valid += self.mint_valid("ES256", 200)
        await self.hold("rotate")
        # The key server goes away, then misbehaves in every way; cached keys keep serving.
        issuer.stop_listening()
        await self.hold("down", fault=True)
        issuer.start_listening()
        issuer.fault = "status:500"
        await self.hold("status-500", fault=True)
        issuer.fault = "html"
        await self.hold("html", fault=True)
        issuer.fault = "hang"
        await self.hold("hang", fault=True)
        issuer.fault = None
        self.phase = "recover"
        # The background retries back off (doubling up to 60 s), so recovery takes up to a pause.
        back = time.monotonic()
        await self.until_keys(http, lambda keys: keys["state"] == "fresh", MAX_BACKOFF + 15)
        self.notes.append(f"keys fresh again {time.monotonic() - back:.1f} s after the recovery")
        await self.hold("recover")
        # Rotation that removes the old RS256 key: its tokens stop verifying once it is gone.
        old_rs = issuer.current_kid("RS256")
        self.removed_kids.add(old_rs)
        old_tokens = [t for t in self.pools.valid if _kid_of(t) == old_rs]
        self.pools.valid = [t for t in self.pools.valid if _kid_of(t) != old_rs]
        self.phase = "rotate-remove"
        await self.rotate(http, "RS256", keep_old=False)
        await self.until_keys(http, lambda keys: old_rs not in keys["key_ids"])
        self.pools.valid += self.mint_valid("RS256", 200)
        self.pools.misses += old_tokens
        await self.hold("rotate-remove")
        await self.hold("final")

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        issuer = self.issuer
        with issuer.serve():
            sock = bind_loopback()
            url = url_of(sock)
            issuer.default_audience = url + "/mcp"
            self.pools.valid = self.mint_valid("RS256", 200) + self.mint_valid("ES256", 200)
            self.mint_invalid()
            env = {
                **os.environ,
                SERVE_FD_ENV: str(sock.fileno()),
                "MCP_OAUTH2_ISSUER": issuer.issuer,
                "MCP_OAUTH2_AUDIENCE": url + "/mcp",
                "MCP_OAUTH2_EXEMPT_ROUTES": STATS_PATH,
            }
            server = subprocess.Popen(  # noqa: S603 - this interpreter, this file
                [sys.executable, __file__],
                env=env,
                pass_fds=[sock.fileno()],
            )
            sock.close()
            try:
                return asyncio.run(self.drive(url, server.pid))
            finally:
                server.terminate()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()

    async def drive(self, url: str, pid: int) -> int:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
            await self.wait_ready(http)
            jwks_before = self.issuer.jwks_requests
            started = time.monotonic()
            await asyncio.gather(
                self.script(http),
                self.sample_memory(pid),
                *(self.client(http) for _ in range(CLIENTS)),
            )
            elapsed = time.monotonic() - started
        return self.report(elapsed, self.issuer.jwks_requests - jwks_before)

    async def wait_ready(self, http: httpx.AsyncClient) -> None:
        for _ in range(200):
            try:
                keys = await self.server_keys(http)
            except httpx.TransportError:
                await asyncio.sleep(0.05)
                continue
            if keys["key_ids"]:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the protected app did not start with keys")

    # -- checks and figures ------------------------------------------------------------------------

    def unavailable_miss(self, result: Result) -> bool:
        """A key miss answered 503: the key server could not be asked, or key refetches are
        rate limited (one a second); fail closed, allowed (the key may exist). Besides the
        misses pool, any invalid token signed by a key the rotation removed is one."""
        if result.status != 503:
            return False
        removed = result.kind == "invalid" and result.kid in self.removed_kids
        return result.pool == "misses" or removed

    def report(self, elapsed: float, fetches: int) -> int:
        results = self.results
        # A valid token sent before its key was removed and answered after (the rotation that
        # removes the old key starts at once) was refused rightly: its key is gone.
        valid_refused = [
            r
            for r in results
            if r.kind == "valid"
            and r.status != 200
            and not (r.status == 401 and r.phase != r.end_phase == "rotate-remove")
        ]
        invalid_accepted = [r for r in results if r.kind == "invalid" and r.status == 200]
        # A key miss while the key server cannot be asked is 503 (the key may exist), not 401.
        errors = [
            r for r in results if (r.status >= 500 or r.status < 0) and not self.unavailable_miss(r)
        ]
        if valid_refused:
            phases = Counter((r.phase, r.status) for r in valid_refused)
            self.failures.append(f"{len(valid_refused)} valid tokens refused: {dict(phases)}")
        if invalid_accepted:
            self.failures.append(f"{len(invalid_accepted)} invalid tokens accepted")
        if errors:
            kinds = Counter((r.phase, r.pool, r.status) for r in errors)
            self.failures.append(f"{len(errors)} answers were 5xx or failed: {dict(kinds)}")

        # Fetches the caching rules allow: the scheduled refreshes (refresh-ahead at 80% of the
        # freshness), one miss-triggered fetch a second at most (the clients keep sending key
        # ids that are never published), and during each fault phase the background retries
        # (backing off from 1 s, doubling) with their in-refresh retries.
        scheduled = math.ceil(elapsed / (FRESHNESS * 0.8)) + 1
        misses = math.ceil(elapsed / MISS_FETCH_INTERVAL) + 1
        per_phase = math.ceil(math.log2(self.phase_seconds + 1)) + 2
        backoff = self.fault_phases * per_phase * (1 + RETRIES)
        allowed = scheduled + misses + backoff
        if fetches > allowed:
            self.failures.append(f"{fetches} key fetches, more than the {allowed} allowed")
        if fetches < elapsed / FRESHNESS / 2:
            self.failures.append(f"only {fetches} key fetches: keys were not refreshed")

        hang = sorted(r.latency for r in results if r.phase == "hang" and r.kind == "valid")
        latencies = sorted(r.latency for r in results)
        warm = sorted(r.latency for r in results if r.phase == "warm" and r.kind == "valid")
        hang_p50, hang_p99 = _percentile(hang, 0.5), _percentile(hang, 0.99)
        if hang_p99 > FETCH_TIMEOUT / 2 or hang_p50 > 2 * _percentile(warm, 0.5) + 0.05:
            self.failures.append(
                f"requests during the hang waited: p50 {_ms(hang, 0.5)}, p99 {_ms(hang, 0.99)} "
                f"(warm p50 {_ms(warm, 0.5)}; the key fetch timeout is {FETCH_TIMEOUT:g} s)"
            )

        warm_rss = [rss for phase, rss in self.rss if phase in ("warm", "rotate")]
        last_rss = [rss for phase, rss in self.rss if phase in ("rotate-remove", "final")]
        growth = (max(last_rss) - statistics.median(warm_rss)) if warm_rss and last_rss else 0
        if growth > 20 * 1024 * 1024:
            self.failures.append(f"resident memory grew by {growth / 2**20:.1f} MiB")

        mib = 2**20
        sent = Counter(r.kind for r in results)
        statuses = dict(sorted(Counter(r.status for r in results).items()))
        lines = [
            f"soak: {len(results)} requests in {elapsed:.1f} s "
            f"({len(results) / elapsed:.0f}/s), {CLIENTS} concurrent clients",
            f"  valid tokens: {sent['valid']} sent, {len(valid_refused)} refused",
            f"  invalid tokens: {sent['invalid']} sent, {len(invalid_accepted)} accepted",
            f"  statuses: {statuses} ({sum(map(self.unavailable_miss, results))} of the 503s: key "
            "misses while the key server could not be asked or refetches were rate limited)",
            f"  key fetches: {fetches} (at most {allowed} allowed: {scheduled} scheduled, "
            f"{misses} miss refetches, {backoff} retries over {self.fault_phases} fault phases)",
            f"  latency: all p50 {_ms(latencies, 0.5)}, p99 {_ms(latencies, 0.99)}; valid "
            f"tokens when warm p50 {_ms(warm, 0.5)}, p99 {_ms(warm, 0.99)}; while the key "
            f"server hangs p50 {_ms(hang, 0.5)}, p99 {_ms(hang, 0.99)}, max {_ms(hang, 1.0)}",
        ]
        if warm_rss and last_rss:
            lines.append(
                f"  server RSS: {statistics.median(warm_rss) / mib:.1f} MiB warm, "
                f"{max(last_rss) / mib:.1f} MiB at the end ({growth / mib:+.1f} MiB)"
            )
        print("\n".join(lines))
        for note in sorted(set(self.notes)):
            print(f"  note: {note}")
        for failure in self.failures:
            print(f"  FAIL: {failure}")
        print("soak: " + ("FAILED" if self.failures else "passed"))
        return 1 if self.failures else 0


def _resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _kid_of(token: str) -> str | None:
    """The ``kid`` of a token's header; None when it has none or no readable header."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:  # binascii.Error and JSONDecodeError are ValueErrors
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def _ms(values: list[float], q: float) -> str:
    return f"{_percentile(values, q) * 1000:.1f} ms"


def main() -> int:
    fd = os.environ.get(SERVE_FD_ENV)
    if fd is not None:
        serve(int(fd))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--short", action="store_true", help="the bounded CI run")
    args = parser.parse_args()
    soak = Soak(phase_seconds=3.0 if args.short else 12.0)
    return soak.run()


if __name__ == "__main__":
    sys.exit(main())
