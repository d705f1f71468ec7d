"""``AuthenticatedUser.claims``: read-only at every depth, and plain JSON to every encoder.

One user object serves every request with the same token (the verified-token cache), so its
claims must never change; yet applications hand them on as they are: ``json.dumps``, pydantic
(the MCP SDK's tool results), FastAPI. The FastAPI route and the MCP tool below run under uvicorn
on loopback behind ``OAuth2Middleware``, called over HTTP by httpx and by the official SDK client.
"""

from __future__ import annotations

import contextlib
import copy
import json
import pickle
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pydantic_core
import pytest
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware
from mcp_oauth2._claims import ReadOnlyDict
from mcp_oauth2._rust import TokenValidator
from mcp_oauth2.lowlevel import KeySet, StaticKeys
from mcp_oauth2.testing import AppServer, bind_loopback, url_of
from test_mcp_e2e import RecordingClient, text
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint, plain_json

NESTED: dict[str, Any] = {
    "roles": ["reader", "writer"],
    "realm_access": {
        "roles": ["viewer"],
        "meta": {"path": [1, {"depth": 2}], "none": None, "ratio": 1.5, "on": True},
    },
    "groups": [],
    "empty": {},
    "big": 2**64,
    "unicode": "Zoë 🔑",
}


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.from_jwks(jwks_for(["ec-256"]))


def claims_of(keys: KeySet) -> tuple[AuthenticatedUser, dict[str, Any]]:
    claims = make_claims(**NESTED)
    user = TokenValidator(ISSUER, AUDIENCE).validate(mint("ES256", claims), keys, now=NOW)
    return user, claims


def each_object(value: Any) -> list[ReadOnlyDict]:
    """Every JSON object in ``value``, outermost first."""
    if isinstance(value, ReadOnlyDict):
        found = [value]
        for item in value.values():
            found += each_object(item)
        return found
    if isinstance(value, tuple):
        return [found for item in value for found in each_object(item)]
    return []


MUTATIONS: list[Callable[[Any], object]] = [
    lambda o: o.__setitem__("sub", "mallory"),
    lambda o: o.__setitem__("new", 1),
    lambda o: o.__delitem__("sub"),
    lambda o: o.update(sub="mallory"),
    lambda o: o.update({"new": 1}),
    lambda o: o.pop("sub"),
    lambda o: o.pop("absent", None),
    lambda o: o.popitem(),
    lambda o: o.clear(),
    lambda o: o.setdefault("new", 1),
    lambda o: o.__ior__({"new": 1}),
]


def test_claims_are_read_only_at_every_depth(keys: KeySet) -> None:
    user, claims = claims_of(keys)
    objects = each_object(user.claims)
    assert len(objects) == 5  # the claims, realm_access, meta, {"depth": 2} and empty
    assert all(type(found) is ReadOnlyDict for found in objects)
    for found in objects:
        for mutate in MUTATIONS:
            with pytest.raises(TypeError, match="read-only"):
                mutate(found)
        ReadOnlyDict.__init__(found, {"new": 1})  # a second __init__ changes nothing
        with pytest.raises(TypeError):
            found |= {"new": 1}
    with pytest.raises(AttributeError):
        user.claims["roles"].append("admin")
    with pytest.raises(TypeError):
        user.claims["realm_access"]["meta"]["path"][1]["depth"] = 3
    # Nothing changed, for this request or the next one (the cached user object).
    assert plain_json(user.claims) == claims
    again = TokenValidator(ISSUER, AUDIENCE)
    assert plain_json(again.validate(mint("ES256", claims), keys, now=NOW).claims) == claims


def test_copies_can_be_changed_and_the_claims_survive_copying(keys: KeySet) -> None:
    user, claims = claims_of(keys)
    mine = dict(user.claims)
    assert type(mine) is dict
    mine["sub"] = "changed"
    assert (user.claims | {"x": 1})["x"] == 1
    assert type(user.claims.copy()) is dict
    for twin in (copy.deepcopy(user.claims), pickle.loads(pickle.dumps(user.claims))):
        assert type(twin) is ReadOnlyDict
        assert plain_json(twin) == claims
        with pytest.raises(TypeError):
            twin["sub"] = "mallory"
    assert ReadOnlyDict.fromkeys(["a"], 1) == {"a": 1}
    assert user.claims["sub"] == "user-1"


def test_every_json_encoder_writes_plain_objects(keys: KeySet) -> None:
    """The regression: ``mappingproxy`` claims made ``json.dumps`` raise ``TypeError`` and an MCP
    tool returning them fail with ``PydanticSerializationError``."""
    user, claims = claims_of(keys)
    assert json.loads(json.dumps(user.claims)) == claims
    assert json.loads(pydantic_core.to_json(user.claims)) == claims
    assert jsonable_encoder(user.claims) == claims

    class Echo(BaseModel):
        claims: dict[str, Any]

    assert json.loads(Echo(claims=user.claims).model_dump_json())["claims"] == claims
    assert json.loads(pydantic_core.to_json({"user": {"claims": user.claims}})) == {
        "user": {"claims": claims}
    }


# -- over HTTP, behind the middleware --------------------------------------------------------


def live_claims(audience: str) -> dict[str, Any]:
    now = int(time.time())
    return make_claims(aud=audience, iat=now - 5, nbf=now - 5, exp=now + 600, **NESTED)


def protected(app: Any, audience: str) -> OAuth2Middleware:
    config = OAuth2Config(issuer=ISSUER, audience=audience)
    return OAuth2Middleware(app, config=config, key_sources=StaticKeys(jwks_for(["ec-256"])))


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_fastapi_route_returns_the_claims() -> None:
    sock = bind_loopback()
    audience = url_of(sock) + "/mcp"
    app = FastAPI()

    @app.get("/claims")
    async def claims_route(request: Request) -> Any:
        return request.user.claims

    @app.get("/model")
    async def model_route(request: Request) -> dict[str, Any]:
        return {"claims": request.user.claims}

    claims = live_claims(audience)
    headers = {"Authorization": f"Bearer {mint('ES256', claims)}"}
    async with AppServer(protected(app, audience), sock) as url, httpx.AsyncClient() as http:
        for _ in range(2):  # the second request is answered by the cached user object
            plain = await http.get(url + "/claims", headers=headers)
            assert plain.status_code == 200, plain.text
            assert plain.json() == claims
            model = await http.get(url + "/model", headers=headers)
            assert model.status_code == 200, model.text
            assert model.json() == {"claims": claims}


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_an_mcp_tool_returns_the_claims() -> None:
    server: MCPServer[Any] = MCPServer("claims", log_level="WARNING")

    @server.tool()
    def whoami(ctx: Context[Any, Any]) -> dict[str, Any]:
        """The caller's claims, as they are."""
        request = ctx.request_context.request
        assert request is not None
        user = request.scope["user"]
        assert isinstance(user, AuthenticatedUser)
        return user.claims

    mcp_app = server.streamable_http_app(json_response=True)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    sock = bind_loopback()
    audience = url_of(sock) + "/mcp"
    app = Starlette(routes=[Mount("/", app=mcp_app)], lifespan=lifespan)
    claims = live_claims(audience)
    async with AppServer(protected(app, audience), sock) as url:
        client = RecordingClient(url + "/mcp", mint("ES256", claims))
        async with client.session() as session:
            await session.initialize()
            result = await session.call_tool("whoami", {})
    assert not result.is_error, text(result)
    assert json.loads(text(result)) == claims
    assert result.structured_content == claims
