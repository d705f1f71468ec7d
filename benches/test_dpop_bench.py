"""benches/dpop.py runs once in the suite (a few calls each), so it cannot rot."""

from __future__ import annotations

from dpop import measure, table


def test_dpop_costs_are_measured() -> None:
    rows = measure(calls=4, peers=False)
    assert {what for _, what, _ in rows} >= {"verify_signature", "check_proof"}
    measured = [value for _, what, value in rows if "auth0" not in what and "Redis" not in what]
    assert all(value is not None for value in measured)
    assert table(rows).startswith("| proof | call |")
