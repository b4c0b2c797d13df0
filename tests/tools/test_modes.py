"""`make modes` (tools/modes.py) end to end on a tiny budget: the report, table and figure."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

import pytest

from genmodels.errors import UserError
from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import modes  # noqa: E402


def arguments(tmp_path, **changes) -> Namespace:
    values = {"updates": 12, "seeds": 2, "mixtures": "ring,grid",
              "variants": "minimax,pacgan2", "workers": 2, "out": str(tmp_path / "modes.json"),
              "table": str(tmp_path / "modes.md"), "figures": str(tmp_path / "modes")}  # fmt: skip
    return Namespace(**(values | changes))


def test_a_small_run_writes_the_report_table_and_figures(tmp_path):
    modes.main(arguments(tmp_path))
    report = json.loads((tmp_path / "modes.json").read_text())
    assert set(report["results"]) == {"ring", "grid"}
    for mixture, modes_count in (("ring", 8), ("grid", 25)):
        assert report["setup"]["mixtures"][mixture]["modes"] == modes_count
        rows = report["results"][mixture]
        assert set(rows) == {"minimax", "pacgan2"}
        for row in rows.values():
            assert [run["seed"] for run in row["per_seed"]] == [0, 1]
            assert set(row["summary"]) == {"modes_captured", "high_quality", "kl_uniform",
                                           "oscillation_index"}  # fmt: skip
        assert report["best"][mixture] in rows
        assert (tmp_path / "modes" / f"{mixture}.png").stat().st_size > 1000
    table = (tmp_path / "modes.md").read_text()
    assert "| variant | modes (of 8) |" in table and "| variant | modes (of 25) |" in table
    assert "](modes/ring.png)" in table
    assert report["wall_seconds"] > 0 and report["setup"]["generator_updates"] == 12


def test_the_best_variant_captures_most_modes_then_most_high_quality():
    def row(modes_mean, quality):
        return {"summary": {"modes_captured": {"mean": modes_mean},
                            "high_quality": {"mean": quality}}}  # fmt: skip

    results = {"a": row(7.0, 0.9), "b": row(8.0, 0.1), "c": row(8.0, 0.5)}
    assert modes.best_variant(results) == "c"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"variants": "minimax,unrolled"}, "unrolled unknown"),
     ({"variants": "pacgan2"}, "must include minimax"),
     ({"mixtures": "spiral"}, "ring, grid"),
     ({"seeds": 0}, "--seeds at least 1")],
)  # fmt: skip
def test_bad_arguments_name_the_argument_and_the_choices(tmp_path, changes, message):
    with pytest.raises(UserError, match=message):
        modes.main(arguments(tmp_path, **changes))
    assert not (tmp_path / "modes.json").exists()
