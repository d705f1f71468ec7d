"""Telemetry: the middleware's metrics on a real Prometheus scrape, and its spans.

The protected app runs under uvicorn with a ``LocalIssuer`` on loopback; metrics go through the
OpenTelemetry SDK to the Prometheus exporter, served by ``prometheus_client``'s own HTTP server on
127.0.0.1 and scraped with httpx; spans go to an in-memory exporter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_oauth2 import OAuth2Config, OAuth2Middleware
from mcp_oauth2.telemetry import Telemetry
from mcp_oauth2.testing import AppServer, LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def protected_app(issuer: LocalIssuer, telemetry: Telemetry | None, **options: Any) -> Starlette:
    config = OAuth2Config.model_validate(
        {"issuer": [issuer.issuer], "audience": [AUDIENCE], "exempt_routes": ["/open"], **options}
    )
    app = Starlette(routes=[Route("/mcp", hello), Route("/open", hello)])
    app.add_middleware(OAuth2Middleware, config=config, telemetry=telemetry)
    return app


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        yield local


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One Prometheus scrape: (sample name, sorted labels) -> value, leaving out the exporter's
    ``otel_scope_*`` labels and the empty ones (a label absent from some points of a family)."""
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, labels_of(sample.labels)): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def labels_of(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if v and not k.startswith("otel_scope_")))


def test_metrics_on_a_prometheus_scrape(
    issuer: LocalIssuer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(meter_provider=meters, tracer_provider=spans[0])
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_port
    token = issuer.mint(subject="alice-subject-7")
    try:
        with AppServer(protected_app(issuer, telemetry)) as url:
            for headers in (
                {"Authorization": f"Bearer {token}"},
                {"Authorization": f"Bearer {token}"},  # from the verified-token cache
                {},
                {"Authorization": f"Bearer {issuer.mint_expired()}"},
                {"Authorization": f"Bearer {issuer.mint(audience='https://other.example')}"},
            ):
                httpx.get(url + "/mcp", headers=headers)
            assert httpx.get(url + "/open").status_code == 200  # exempt: not counted
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            samples = scrape(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        meters.shutdown()

    def value(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        assert key in samples, f"{key} not in {sorted(k for k in samples if 'mcp' in k[0])}"
        return samples[key]

    assert value("mcp_oauth2_requests_total", outcome="accepted") == 2
    for code in ("missing_token", "expired", "invalid_audience"):
        assert value("mcp_oauth2_requests_total", outcome="refused", code=code) == 1
    assert value("mcp_oauth2_validation_duration_seconds_count", outcome="accepted") == 2
    assert value("mcp_oauth2_validation_duration_seconds_count", outcome="refused") == 3
    assert value("mcp_oauth2_validation_duration_seconds_sum", outcome="accepted") > 0
    on_issuer = {"issuer": issuer.issuer}
    assert value("mcp_oauth2_key_fetches_total", outcome="success", **on_issuer) == 1
    assert value("mcp_oauth2_key_fetches_total", outcome="failure", **on_issuer) == 0
    assert value("mcp_oauth2_keys_count", **on_issuer) == len(issuer.key_ids)
    assert value("mcp_oauth2_keys_usable", **on_issuer) == len(issuer.key_ids)
    assert 0 <= value("mcp_oauth2_keys_age_seconds", **on_issuer) < 60
    assert value("mcp_oauth2_token_cache_hits_total") == 1
    assert value("mcp_oauth2_token_cache_misses_total") >= 2
    # Bounded labels: no token, no subject, nothing from a claim.
    for secret in (*token.split("."), "alice-subject-7"):
        assert secret not in text

    names = [span.name for span in spans[1].get_finished_spans()]
    assert names == ["mcp_oauth2.discovery", "mcp_oauth2.jwks.fetch"]  # discovery within
    fetch = spans[1].get_finished_spans()[1]
    assert fetch.attributes is not None and fetch.attributes["mcp_oauth2.issuer"] == issuer.issuer


def test_failed_fetches_and_unavailable_keys_are_counted_and_traced(
    issuer: LocalIssuer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(meter_provider=meters, tracer_provider=spans[0])
    issuer.fault = "status:503"
    # A query may carry credentials: it never reaches a span.
    jwks_uri = issuer.metadata()["jwks_uri"]
    app = protected_app(issuer, telemetry, jwks_uri=jwks_uri + "?sig=s3cret")
    with AppServer(app) as url:
        answer = httpx.get(url + "/mcp", headers={"Authorization": f"Bearer {issuer.mint()}"})
        assert answer.status_code == 503
    points: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    number = getattr(point, "value", getattr(point, "count", 0))
                    points.setdefault(metric.name, []).append(
                        (dict(point.attributes or {}), number)
                    )
    meters.shutdown()
    fetches = dict((labels["outcome"], n) for labels, n in points["mcp_oauth2.key_fetches"])
    assert fetches["success"] == 0 and fetches["failure"] >= 1
    assert ({"outcome": "refused", "code": "jwks_unavailable"}, 1) in points["mcp_oauth2.requests"]
    assert points["mcp_oauth2.keys.usable"] == [({"issuer": issuer.issuer}, 0)]
    failed = [s for s in spans[1].get_finished_spans() if s.name == "mcp_oauth2.jwks.fetch"]
    assert failed and all(s.status.status_code is StatusCode.ERROR for s in failed)
    assert failed[0].attributes is not None
    assert failed[0].attributes["url.full"] == jwks_uri
    assert failed[0].attributes["error.type"] == "jwks_unavailable"
    for span in spans[1].get_finished_spans():
        assert "s3cret" not in str(span.to_json())


def test_off_by_default_and_on_from_the_configuration(issuer: LocalIssuer) -> None:
    app = Starlette()
    off = OAuth2Middleware(app, OAuth2Config(issuer=issuer.issuer, audience=AUDIENCE))
    assert off.telemetry is None
    assert off._admit_request == off._admit  # the request path runs no telemetry code
    config = OAuth2Config(issuer=issuer.issuer, audience=AUDIENCE, telemetry=True)
    on = OAuth2Middleware(app, config)  # the global (here: no-op) OpenTelemetry providers
    assert isinstance(on.telemetry, Telemetry)
    assert on._admit_request != on._admit


def test_introspection_calls_are_counted(issuer: LocalIssuer) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(meter_provider=meters)
    app = protected_app(
        issuer,
        telemetry,
        token_format="auto",
        client_id=issuer.introspection_client_id,
        client_secret=issuer.introspection_client_secret,
    )
    active, revoked = issuer.mint_opaque(), issuer.mint_opaque()
    issuer.revoke(revoked)
    with AppServer(app) as url:

        def status(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.get(url + "/mcp", headers=headers).status_code

        assert [status(active), status(active), status(revoked)] == [200, 200, 401]
        issuer.introspection_fault = "status:500"
        assert status(issuer.mint_opaque()) == 503
    data = reader.get_metrics_data()
    assert data is not None
    calls: dict[str, int] = {}
    durations: dict[str, int] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    outcome = str(dict(point.attributes or {}).get("outcome"))
                    if metric.name == "mcp_oauth2.introspection.calls":
                        calls[outcome] = int(getattr(point, "value", 0))
                    elif metric.name == "mcp_oauth2.introspection.duration":
                        durations[outcome] = int(getattr(point, "count", 0))
    meters.shutdown()
    # The second request with the active token was answered from the cache: no call.
    assert calls == {"active": 1, "refused": 1, "failed": 1}
    assert durations == calls


def test_a_telemetry_observes_one_middleware_and_reads_nothing_before_it(
    issuer: LocalIssuer,
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(meter_provider=meters)
    # Read before any middleware exists (a scrape while the app starts): no keys, no cache.
    data = reader.get_metrics_data()
    points = [
        point
        for resource in (data.resource_metrics if data is not None else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    assert points == []
    config = OAuth2Config.model_validate({"issuer": [issuer.issuer], "audience": [AUDIENCE]})
    app = Starlette(routes=[Route("/mcp", hello)])
    OAuth2Middleware(app, config=config, telemetry=telemetry)
    # A second middleware has its own key caches and token cache: it needs its own Telemetry.
    with pytest.raises(ValueError, match="a Telemetry observes one middleware"):
        OAuth2Middleware(app, config=config, telemetry=telemetry)
    meters.shutdown()
