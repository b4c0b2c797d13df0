"""tools/bench_limits.py's rules: which arena setting params should ship, and its memory reads."""

from __future__ import annotations

import os
import sys

from genmodels.config import ServeParams
from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import bench_limits  # noqa: E402


def _upscale(off_p50: float, off_after: float) -> dict:
    def setting(p50, peak, after):
        return {"burst": {"p50_ms": p50, "errors": 0}, "rss_peak_mb": peak, "rss_after_mb": after}

    return {"settings": {
        "uncapped_arena_keep": setting(1000.0, 2400.0, 2300.0),
        "capped_arena_keep": setting(1000.0, 600.0, 590.0),
        "capped_arena_shrink": setting(1020.0, 560.0, 400.0),
        "capped_arena_off": setting(off_p50, 520.0, off_after),
    }}  # fmt: skip


def test_the_arena_is_off_only_where_it_costs_under_ten_percent_and_gives_back_more():
    serve = ServeParams(arena="off", max_rss_mb=1024)
    cheap = bench_limits.targets(_upscale(1080.0, 350.0), {}, serve)
    assert cheap["arena_by_the_rule"] == "off" and cheap["params_arena_follows_the_rule"]
    assert cheap["latency_cost"] == {"cap_on_upscale": 0.0, "arena_shrink": 0.02,
                                     "arena_off": 0.08}  # fmt: skip
    assert cheap["peak_below_max_rss_mb"] and cheap["memory_given_back"]
    slow = bench_limits.targets(_upscale(1150.0, 350.0), {}, serve)
    assert slow["arena_by_the_rule"] == "shrink" and not slow["params_arena_follows_the_rule"]
    keeps_more = bench_limits.targets(_upscale(1000.0, 450.0), {}, serve)
    assert keeps_more["arena_by_the_rule"] == "shrink"
    tight = bench_limits.targets(_upscale(1080.0, 350.0), {}, ServeParams(max_rss_mb=512))
    assert not tight["peak_below_max_rss_mb"]  # shrink's peak, 560 MB, is over 512


def test_worker_memory_reads_this_process():
    memory = bench_limits.worker_memory(os.getpid())
    assert 10 < memory["rss_mb"] <= memory["peak_mb"]
