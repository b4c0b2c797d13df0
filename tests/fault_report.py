"""The fault suite's report: tests marked `faults` are its cases; with --faults-report PATH
each case's outcome, and the counts it records with record_property, are written to PATH with
their totals (tests/conftest.py imports these hooks; they work under pytest-xdist, whose
workers send their reports to the controller)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# what a case may record, summed in the report; each must stay at zero but `requests`
FAULT_COUNTS = ("requests", "responses_5xx", "invalid_responses", "unverified_graphs_served")
FAULT_CASES = pytest.StashKey[dict]()
_CONFIG: list = []


def remember_config(config) -> None:
    _CONFIG[:] = [config]


def pytest_addoption(parser):
    parser.addoption("--faults-report", help="write the fault suite's cases to this JSON file")


def pytest_runtest_logreport(report):
    if "faults" not in report.keywords or (report.when != "call" and report.passed):
        return
    cases = _CONFIG[0].stash.setdefault(FAULT_CASES, {})
    properties = dict(report.user_properties)
    cases[report.nodeid] = {
        "outcome": report.outcome,
        "seconds": round(report.duration, 3),
        **{k: properties[k] for k in (*FAULT_COUNTS, "answers") if k in properties},
    }


def pytest_sessionfinish(session):
    path = session.config.getoption("--faults-report")
    if not path or hasattr(session.config, "workerinput"):  # xdist: the controller writes it
        return
    cases = dict(sorted(session.config.stash.get(FAULT_CASES, {}).items()))
    totals = {k: sum(c.get(k, 0) for c in cases.values()) for k in FAULT_COUNTS}
    outcomes = [c["outcome"] for c in cases.values()]
    summary = {"cases": len(cases), "passed": outcomes.count("passed"),
               "failed": len(cases) - outcomes.count("passed"), **totals}  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"summary": summary, "cases": cases}, indent=1) + "\n")
