"""Every module in the wheel imports in an environment holding only the declared dependencies
and the extras it needs: the base install, then each extra in turn, then all of them."""

from __future__ import annotations

import json
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, Venv, run

EXTRAS = tuple(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
)

# The extra each optional module (with its submodules) needs; every other module must import
# with the base install.
MODULE_EXTRA = {
    "mcp_oauth2.fastapi": "fastapi",
    "mcp_oauth2.mcp_sdk": "mcp",
    "mcp_oauth2.testing": "testing",
}


def extra_of(module: str) -> str | None:
    """The extra ``module`` needs: its own entry, or its package's."""
    for name, extra in MODULE_EXTRA.items():
        if module == name or module.startswith(name + "."):
            return extra
    return None


# Runs inside the fresh environment: try every module, report what happened to each.
PROBE = """
import importlib, json, sys
outcome = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        outcome[name] = "ok"
    except Exception as error:
        outcome[name] = f"{type(error).__name__}: {error}"
print(json.dumps(outcome))
"""


def wheel_modules(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        files = [n for n in archive.namelist() if n.startswith("mcp_oauth2/")]
    modules = []
    for name in files:
        if name.endswith(".py"):
            modules.append(name.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
        elif name.endswith(".abi3.so"):
            modules.append(name.split(".")[0].replace("/", "."))
    return sorted(modules)


def test_every_optional_module_names_a_declared_extra() -> None:
    assert set(MODULE_EXTRA.values()) <= set(EXTRAS)


@pytest.mark.parametrize("extras", [(), *((extra,) for extra in EXTRAS), EXTRAS],
                         ids=lambda extras: "+".join(extras) or "base")  # fmt: skip
def test_modules_import_with_declared_dependencies_only(
    wheel: Path, make_venv: Venv, extras: tuple[str, ...]
) -> None:
    requirement = f"mcp-oauth2[{','.join(extras)}] @ {wheel.as_uri()}"
    python = make_venv("imports-" + ("-".join(extras) or "base"), [requirement])
    run([python, "-m", "pip", "check"])  # the environment holds what the wheel declares
    modules = wheel_modules(wheel)
    assert len(modules) > len(MODULE_EXTRA) + 1, modules
    outcome = json.loads(run([python, "-c", PROBE, *modules]).stdout)
    for module in modules:
        needs = extra_of(module)
        if needs is None or needs in extras:
            assert outcome[module] == "ok", f"{module} with extras {extras}: {outcome[module]}"
        else:
            # Without its extra the module fails the clear way (an ImportError naming what is
            # missing), or imports when another extra happens to bring the same packages.
            assert outcome[module] == "ok" or outcome[module].startswith(
                ("ImportError", "ModuleNotFoundError")
            ), (module, outcome[module])
