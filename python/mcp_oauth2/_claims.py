"""The read-only JSON object of a user's claims: ``ReadOnlyDict``.

``AuthenticatedUser.claims`` is read-only at every depth (objects are ``ReadOnlyDict``, arrays
tuples), because one user object serves every request with the same token through the
verified-token cache: a change one request made would reach the next. Yet the claims are a
``dict``, so every JSON encoder (``json.dumps``, pydantic, FastAPI's ``jsonable_encoder``, the MCP
SDK's tool results) writes them as the JSON objects they came from. The native core builds them
(``mcp_oauth2._rust``), filling each one through the C API, which these methods do not guard;
Python code can read them, copy them (``dict(claims)``, ``copy.deepcopy(claims)``) and pickle
them, but every method that would change one raises ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

__all__ = ["ReadOnlyDict"]


def _refuse(*_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(
        "the claims are read-only: the same object serves every request with this token; "
        "change a copy instead (dict(claims), or copy.deepcopy(claims) for nested values)"
    )


class ReadOnlyDict(dict[str, Any]):
    """A ``dict`` whose contents cannot be changed once it is made."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> ReadOnlyDict:
        made = super().__new__(cls)
        dict.update(made, *args, **kwargs)
        return made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Filled by ``__new__``: calling ``__init__`` again changes nothing."""

    def __reduce__(self) -> tuple[type[ReadOnlyDict], tuple[dict[str, Any]]]:
        # dict's own reduction refills the new object item by item, which is refused here.
        return (type(self), (dict(self),))

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    @classmethod
    def fromkeys(cls, iterable: Iterable[str], value: Any = None, /) -> ReadOnlyDict:  # type: ignore[override]
        return cls(dict.fromkeys(iterable, value))
