"""``Telemetry``: mcp-oauth2's metrics and spans through the OpenTelemetry API (the
``opentelemetry`` extra).

    app.add_middleware(OAuth2Middleware, config=config, telemetry=Telemetry())

or ``MCP_OAUTH2_TELEMETRY=true``, which does the same on the global providers. The library only
uses the API, as OpenTelemetry asks of libraries: the application installs the SDK and its
exporters (Prometheus, OTLP, ...); without an SDK every instrument is a no-op. Without
``Telemetry`` the middleware records nothing and runs no telemetry code at all.

Metrics (meter ``mcp_oauth2``):

- ``mcp_oauth2.requests`` (counter): requests the middleware authenticated, by ``outcome``
  (``accepted``, ``refused``) and, when refused, ``code`` (``missing_token``, ``expired``,
  ``jwks_unavailable``, ...);
- ``mcp_oauth2.validation.duration`` (histogram, seconds): the time to authenticate a request,
  key fetches it waited for included, by ``outcome``;
- ``mcp_oauth2.key_fetches`` (counter): key-set fetches by ``issuer`` and ``outcome``
  (``success``, ``failure``);
- ``mcp_oauth2.keys.age`` (gauge, seconds), ``mcp_oauth2.keys.count`` (keys cached) and
  ``mcp_oauth2.keys.usable`` (keys a request may use now; 0 means not ready), by ``issuer``;
- ``mcp_oauth2.token_cache.hits`` and ``.misses`` (counters) and ``.size`` (gauge): the native
  validator's verified-token cache;
- ``mcp_oauth2.introspection.calls`` (counter) and ``.duration`` (histogram), by ``outcome``:
  every call to the RFC 7662 endpoint (``active``, ``refused``, ``failed``) when tokens are
  introspected (``token_format`` ``opaque`` or ``auto``).

Every label value is a fixed word or a configured issuer: never a token, a subject, or any
other claim value, so the number of series stays bounded. Spans: ``mcp_oauth2.jwks.fetch``
around each key-set fetch and ``mcp_oauth2.discovery`` around metadata discovery within it
(``SpanKind.CLIENT``; a failure is recorded on the span with its error status).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from mcp_oauth2._jwks import JWKSCache, KeySourceStats

if TYPE_CHECKING:
    from starlette.types import Scope

    from mcp_oauth2._access import Refusal
    from mcp_oauth2._authenticator import Authenticator

__all__ = ["Telemetry"]

INSTRUMENTATION_NAME = "mcp_oauth2"
# Validation takes tens of microseconds from the verified-token cache, about a millisecond for a
# signature, and up to the fetch deadline when it waits for keys.
DURATION_BUCKETS = (
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

Admit = Callable[["Scope"], Awaitable["Refusal | None"]]


class Telemetry:
    """Metrics and spans of one ``OAuth2Middleware`` (and of its authenticator's key caches).

    ``meter_provider`` and ``tracer_provider`` default to OpenTelemetry's global ones.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        meter = metrics.get_meter(INSTRUMENTATION_NAME, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        self._meter = meter
        self._authenticator: Authenticator | None = None
        self._requests = meter.create_counter(
            "mcp_oauth2.requests",
            unit="{request}",
            description="Requests authenticated by the middleware, by outcome and refusal code.",
        )
        self._duration = meter.create_histogram(
            "mcp_oauth2.validation.duration",
            unit="s",
            description="Time to authenticate a request, key fetches waited for included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._introspection_calls = meter.create_counter(
            "mcp_oauth2.introspection.calls",
            unit="{call}",
            description="Token introspection calls (RFC 7662), by outcome.",
        )
        self._introspection_duration = meter.create_histogram(
            "mcp_oauth2.introspection.duration",
            unit="s",
            description="Time of one token introspection call.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        meter.create_observable_counter(
            "mcp_oauth2.key_fetches",
            [self._key_fetches],
            unit="{fetch}",
            description="Key-set fetches (discovery included), by issuer and outcome.",
        )
        meter.create_observable_gauge(
            "mcp_oauth2.keys.age",
            [self._key_age],
            unit="s",
            description="Seconds since the cached key set was fetched, by issuer.",
        )
        meter.create_observable_gauge(
            "mcp_oauth2.keys.count",
            [self._key_count],
            unit="{key}",
            description="Keys cached, by issuer.",
        )
        meter.create_observable_gauge(
            "mcp_oauth2.keys.usable",
            [self._usable_keys],
            unit="{key}",
            description="Keys a request may be validated with now (0: not ready), by issuer.",
        )
        meter.create_observable_counter(
            "mcp_oauth2.token_cache.hits",
            [self._cache_counter("hits")],
            unit="{lookup}",
            description="Tokens answered from the verified-token cache.",
        )
        meter.create_observable_counter(
            "mcp_oauth2.token_cache.misses",
            [self._cache_counter("misses")],
            unit="{lookup}",
            description="Tokens not found in the verified-token cache (verified in full).",
        )
        meter.create_observable_gauge(
            "mcp_oauth2.token_cache.size",
            [self._cache_counter("size")],
            unit="{token}",
            description="Tokens held by the verified-token cache.",
        )

    # -- the middleware's hooks --------------------------------------------------------------

    def observe(self, authenticator: Authenticator, admit: Admit) -> Admit:
        """Watch ``authenticator`` (its key caches and token cache), trace its key fetches, and
        return ``admit`` (the middleware's authentication of one request) counted and timed."""
        if self._authenticator is not None and self._authenticator is not authenticator:
            raise ValueError("a Telemetry observes one middleware; create one per middleware")
        self._authenticator = authenticator
        for source in set(authenticator.sources.values()):
            if isinstance(source, JWKSCache):
                source.trace_fetches(self._span)
        if authenticator.introspector is not None:
            authenticator.introspector.report_calls(self.introspected)

        count, record, clock = self._requests.add, self._duration.record, time.perf_counter
        accepted = {"outcome": "accepted"}
        refused_by_code: dict[str, dict[str, str]] = {}
        refused = {"outcome": "refused"}

        async def counted(scope: Scope) -> Refusal | None:
            start = clock()
            refusal = await admit(scope)
            elapsed = clock() - start
            if refusal is None:
                count(1, accepted)
                record(elapsed, accepted)
                return refusal
            labels = refused_by_code.get(refusal.code)
            if labels is None:
                # Codes are the library's own fixed words, a few dozen at most.
                labels = refused_by_code.setdefault(
                    refusal.code, {"outcome": "refused", "code": refusal.code}
                )
            count(1, labels)
            record(elapsed, refused)
            return refusal

        return counted

    def introspected(self, outcome: str, seconds: float) -> None:
        """Record one token introspection call (RFC 7662) that took ``seconds``.

        ``outcome`` must be a fixed word (``active``, ``refused``, ``failed``), never a token, a
        subject or another value from the answer. ``observe`` has an authenticator's
        introspector call it for every call to the endpoint.
        """
        labels = {"outcome": outcome}
        self._introspection_calls.add(1, labels)
        self._introspection_duration.record(seconds, labels)

    # -- spans -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _span(self, name: str, attributes: Mapping[str, str]) -> Iterator[object]:
        # The exception is not recorded as it is: its message names URLs, which may carry a
        # query; the span says what kind of failure it was (the error's ``code``).
        with self._tracer.start_as_current_span(
            name,
            kind=trace.SpanKind.CLIENT,
            attributes=dict(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as error:
                kind = str(getattr(error, "code", type(error).__name__))
                span.set_attribute("error.type", kind)
                span.set_status(trace.Status(trace.StatusCode.ERROR, kind))
                raise

    # -- observable instruments --------------------------------------------------------------

    def _per_issuer(self) -> dict[str, KeySourceStats]:
        authenticator = self._authenticator
        return dict(authenticator.health().sources) if authenticator is not None else {}

    def _key_fetches(self, options: CallbackOptions) -> Iterable[Observation]:
        authenticator = self._authenticator
        if authenticator is None:
            return []
        # A source shared by several issuers (one jwks_uri) is counted once, under its first.
        first_issuer: dict[int, str] = {}
        for issuer, source in authenticator.sources.items():
            first_issuer.setdefault(id(source), issuer)
        observations = []
        for issuer, source in authenticator.sources.items():
            if first_issuer[id(source)] != issuer:
                continue
            stats = source.stats()
            observations.append(
                Observation(stats.successes, {"issuer": issuer, "outcome": "success"})
            )
            observations.append(
                Observation(stats.failures, {"issuer": issuer, "outcome": "failure"})
            )
        return observations

    def _key_age(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(stats.age, {"issuer": issuer})
            for issuer, stats in self._per_issuer().items()
            if stats.age is not None
        ]

    def _key_count(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(stats.key_count, {"issuer": issuer})
            for issuer, stats in self._per_issuer().items()
        ]

    def _usable_keys(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(stats.usable_key_count, {"issuer": issuer})
            for issuer, stats in self._per_issuer().items()
        ]

    def _cache_counter(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            authenticator = self._authenticator
            if authenticator is None:
                return []
            return [Observation(authenticator.validator.cache_info()[name])]

        return observe
