"""Requirements and their verdicts, with real tokens validated by the native core: roles read
from ``roles_claims`` (dotted paths, each provider's claim), claims read at dotted paths, the
three outcomes (allow, step up, deny) and how ``&`` and ``|`` combine them, and the refusal each
becomes at ``AccessControl``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_oauth2 import (
    PUBLIC,
    AuthenticatedUser,
    Call,
    OAuth2Config,
    Requirement,
    require,
    require_claim,
    require_roles,
    require_scopes,
)
from mcp_oauth2._access import AccessControl
from mcp_oauth2._requirements import all_of
from mcp_oauth2._rust import claim_values
from mcp_oauth2.errors import ConfigurationError, InvalidClaimError
from mcp_oauth2.lowlevel import KeySet
from token_factory import AUDIENCE, ISSUER, NOW, default_validator, jwks_for, make_claims, mint

KEYS = KeySet.from_jwks(jwks_for())
ACCESS = AccessControl(
    "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
    required_scopes=("mcp:tools",),
    scope_implications={"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]},
)
CALL = Call("tools/call", "deploy", {"tenant": "acme"})


def user(roles_claims: tuple[str, ...] = ("roles",), **claims: Any) -> AuthenticatedUser:
    validator = default_validator(roles_claims=roles_claims)
    return validator.validate(mint("ES256", make_claims(**claims)), KEYS, now=NOW)


# -- roles -----------------------------------------------------------------------------------

PROVIDERS: dict[str, tuple[tuple[str, ...], dict[str, Any], set[str]]] = {
    "keycloak": (
        ("realm_access.roles", "resource_access.mcp-server.roles"),
        {
            "realm_access": {"roles": ["default-roles-mcp", "deployer"]},
            "resource_access": {
                "mcp-server": {"roles": ["operator"]},
                "account": {"roles": ["manage-account"]},
            },
        },
        {"default-roles-mcp", "deployer", "operator"},
    ),
    "entra-id": (("roles",), {"roles": ["Tasks.Write"]}, {"Tasks.Write"}),
    "cognito": (("cognito:groups",), {"cognito:groups": ["admins"]}, {"admins"}),
    "okta": (("groups",), {"groups": ["Everyone", "Ops"]}, {"Everyone", "Ops"}),
    "auth0": (
        ("permissions", "https://mcp.example.com/roles"),
        {"permissions": ["read:notes"], "https://mcp.example.com/roles": "editor"},
        {"read:notes", "editor"},
    ),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_roles_come_from_each_providers_claims(provider: str) -> None:
    paths, claims, roles = PROVIDERS[provider]
    assert user(paths, **claims).roles == frozenset(roles)
    # The default reads `roles` only.
    assert user(**claims).roles == frozenset(claims.get("roles", ()))


@pytest.mark.parametrize(
    "value", [1, True, None, ["admin", 7], {"admin": True}, [["admin"]]], ids=json.dumps
)
def test_a_roles_claim_of_another_type_is_an_invalid_claim(value: object) -> None:
    with pytest.raises(InvalidClaimError, match="roles claim"):
        user(roles=value)
    with pytest.raises(InvalidClaimError):
        user(("realm_access.roles",), realm_access={"roles": value})
    if not isinstance(value, dict):  # an object without `roles` holds none: not an error
        with pytest.raises(InvalidClaimError):
            user(("realm_access.roles",), realm_access=value)


def test_roles_claims_in_the_configuration() -> None:
    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE, roles_claims="a.roles,groups")
    assert config.token_validator().roles_claims == ("a.roles", "groups")
    assert OAuth2Config(issuer=ISSUER, audience=AUDIENCE).roles_claims == ("roles",)
    for bad, words in [("scope", "'scope'"), ("a..b", "empty segment")]:
        with pytest.raises(ValueError, match=words) as caught:
            OAuth2Config(issuer=ISSUER, audience=AUDIENCE, roles_claims=[bad])
        assert "roles_claims (MCP_OAUTH2_ROLES_CLAIMS): " in str(caught.value)


def test_claim_values_follow_dotted_paths() -> None:
    dotted: dict[str, Any] = {"https://example.com/tenant": "t1", "a.b": 1, "a": {"b": 2}}
    caller = user(org={"id": "acme", "unit": {"name": "ops"}}, **dotted)
    assert claim_values(caller, "org.id") == ("acme",)
    assert claim_values(caller, "org.unit.name") == ("ops",)
    assert claim_values(caller, "https://example.com/tenant") == ("t1",)
    assert sorted(claim_values(caller, "a.b")) == [1, 2]  # both readings of a dotted name
    assert claim_values(caller, "org.missing") == ()
    assert claim_values(caller, "org.id.deeper") == ()
    assert claim_values(caller, "sub") == ("user-1",)


# -- verdicts --------------------------------------------------------------------------------


def outcome(requirement: Requirement, caller: AuthenticatedUser | None, **listing: bool) -> Any:
    decision = requirement.decide(caller, CALL, ACCESS, **listing)
    return (decision.outcome, decision.scopes, decision.missing)


def test_scopes_roles_claims_and_checks() -> None:
    reader = user(scope="mcp:read", roles=["viewer"], tenant="acme")
    admin = user(scope="mcp:admin", roles=["viewer", "deployer"], tenant="globex")
    assert outcome(PUBLIC, None) == ("allow", (), "")
    assert outcome(require_scopes(), None) == ("step_up", (), "")
    assert outcome(require_scopes(), reader) == ("allow", (), "")
    assert outcome(require_scopes("mcp:read"), reader) == ("allow", ("mcp:read",), "")
    # Implications apply (SEP-2350: a broader scope satisfies a narrower one).
    assert outcome(require_scopes("mcp:read", "mcp:write"), admin)[0] == "allow"
    assert outcome(require_scopes("mcp:write"), reader) == ("step_up", ("mcp:write",), "")
    assert outcome(require_roles("deployer"), None) == ("step_up", (), "")
    assert outcome(require_roles("deployer"), reader) == ("deny", (), "role")
    assert outcome(require_roles("viewer", "deployer"), admin)[0] == "allow"
    assert outcome(require_claim("tenant", "acme"), reader)[0] == "allow"
    assert outcome(require_claim("tenant", "acme"), admin) == ("deny", (), "claim")
    assert outcome(require_claim("roles", "deployer"), admin)[0] == "allow"  # a list holds it

    def same_tenant(caller: AuthenticatedUser, call: Call) -> bool:
        return bool(call.arguments["tenant"] == caller.claims["tenant"])

    assert outcome(require(same_tenant), reader)[0] == "allow"
    assert outcome(require(same_tenant), admin) == ("deny", (), "check")
    # In a list no call exists yet: the check is not asked (only whether there is a token).
    assert outcome(require(same_tenant), admin, listing=True)[0] == "allow"
    assert outcome(require(same_tenant), None, listing=True)[0] == "step_up"


def test_claim_values_are_compared_with_their_json_types() -> None:
    caller = user(level=1, admin=True, tenant="1")
    assert outcome(require_claim("level", 1), caller)[0] == "allow"
    assert outcome(require_claim("level", True), caller)[0] == "deny"
    assert outcome(require_claim("admin", 1), caller)[0] == "deny"
    assert outcome(require_claim("admin", True), caller)[0] == "allow"
    assert outcome(require_claim("tenant", 1), caller)[0] == "deny"


def test_a_check_that_fails_to_answer_refuses(caplog: pytest.LogCaptureFixture) -> None:
    caller = user()

    def raises(caller: AuthenticatedUser, call: Call) -> bool:
        raise KeyError("tenant")

    def truthy(caller: AuthenticatedUser, call: Call) -> Any:
        return "yes"

    assert outcome(require(raises), caller) == ("deny", (), "check")
    assert "the check require(" in caplog.text and "refused" in caplog.text
    assert outcome(require(truthy), caller)[0] == "deny"  # only True passes


def test_and_denies_first_then_steps_up_for_every_scope() -> None:
    reader = user(scope="mcp:read", roles=["viewer"])
    both = require_scopes("mcp:read") & require_scopes("mcp:write")
    # Every scope the operation needs is named, the one the token holds included.
    assert outcome(both, reader) == ("step_up", ("mcp:read", "mcp:write"), "")
    assert outcome(both, None) == ("step_up", ("mcp:read", "mcp:write"), "")
    # A role would still be missing after a step-up: no step-up is offered.
    assert outcome(require_scopes("mcp:write") & require_roles("deployer"), reader) == (
        "deny",
        (),
        "role",
    )
    assert outcome(require_scopes("mcp:write") & require_roles("viewer"), reader)[0] == "step_up"
    assert outcome(PUBLIC & require_scopes("mcp:read"), None)[0] == "step_up"


def test_or_allows_either_then_steps_up_for_the_first_that_could_pass() -> None:
    reader = user(scope="mcp:read", roles=["viewer"])
    either = require_roles("deployer") | require_scopes("mcp:admin") | require_scopes("x")
    assert outcome(either, reader) == ("step_up", ("mcp:admin",), "")
    assert outcome(require_roles("viewer") | require_scopes("mcp:admin"), reader)[0] == "allow"
    assert outcome(require_roles("a") | require_claim("tenant", "b"), reader)[0] == "deny"
    assert outcome(PUBLIC | require_scopes("mcp:admin"), None)[0] == "allow"


def test_combinations_flatten_and_read_back() -> None:
    combined = (require_scopes("a") & require_roles("r")) | PUBLIC | require_claim("t", "x")
    assert repr(combined) == "(require_scopes('a') & require_roles('r')) | PUBLIC | " + (
        "require_claim('t', 'x')"
    )
    with pytest.raises(TypeError, match=r"& and \|"):
        bool(require_scopes("a"))
    with pytest.raises(TypeError):
        require_scopes("a") & ["b"]
    assert all_of([]).outcome == "allow"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: require_scopes("a b"), "not a scope token"),
        (lambda: require_scopes("offline_access"), "offline_access"),
        (lambda: require_roles(""), "not a role name"),
        (lambda: require_claim("tenant"), "give the values"),
        (lambda: require_claim("", "x"), "not a claim path"),
        (lambda: require_claim("t", 1.5), "not a str, int or bool"),  # type: ignore[arg-type]
        (lambda: require("not callable"), "not callable"),  # type: ignore[arg-type]
    ],
)
def test_bad_requirements_are_refused_when_built(make: Any, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        make()


def test_an_async_check_is_refused() -> None:
    async def check(caller: AuthenticatedUser, call: Call) -> bool:
        return True

    with pytest.raises(ConfigurationError, match="coroutine"):
        require(check)  # type: ignore[arg-type]


# -- the refusals ----------------------------------------------------------------------------


def test_the_refusal_of_each_outcome() -> None:
    denied = ACCESS.access_denied("role")
    assert denied.status == 403
    assert json.loads(denied.body) == {
        "error": "access_denied",
        "error_description": "this operation needs a role the token does not carry",
        "code": "access_denied",
    }
    assert b"www-authenticate" not in dict(denied.headers)
    anonymous = ACCESS.missing_token(("mcp:write",))
    header = dict(anonymous.headers)[b"www-authenticate"]
    assert b'scope="mcp:tools mcp:write"' in header
    mismatch = ACCESS.header_mismatch(7, "the Mcp-Method header is missing")
    assert mismatch.status == 400
    assert json.loads(mismatch.body) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32020, "message": "Header mismatch: the Mcp-Method header is missing"},
    }
    for odd in (True, None, 1.5, "x" * 300, {"a": 1}):
        assert json.loads(ACCESS.header_mismatch(odd, "x").body)["id"] is None


def test_offline_access_is_never_in_a_challenge() -> None:
    access = AccessControl("https://mcp.example.com/.well-known/x", required_scopes=["a"])
    refusal = access.missing_token(("offline_access", "b"))
    assert b'scope="a b"' in dict(refusal.headers)[b"www-authenticate"]
