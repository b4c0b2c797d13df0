"""The fault suite's report (tests/fault_report.py): each marked case with its outcome and
recorded counts, their totals, and nothing of the unmarked tests; under xdist too."""

from __future__ import annotations

import json

import pytest

from helpers import REPO

CASES = """
import pytest

@pytest.mark.faults
@pytest.mark.parametrize("bad", [0, 2])
def test_requests(bad, record_property):
    record_property("requests", 10)
    record_property("responses_5xx", bad)
    assert bad == 0

@pytest.mark.faults
def test_graphs(record_property):
    record_property("unverified_graphs_served", 0)
    record_property("answers", {"empty body": 422})

def test_not_a_case():
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_report_lists_each_case_and_sums_its_counts(pytester, monkeypatch, workers):
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))
    pytester.makeconftest(
        "from fault_report import *  # noqa: F403\n"
        "from fault_report import remember_config as pytest_configure\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    faults: a case\n")
    pytester.makepyfile(test_cases=CASES)
    report = pytester.path / "out" / "faults.json"
    result = pytester.runpytest_subprocess(*workers, f"--faults-report={report}")
    result.assert_outcomes(passed=3, failed=1)
    written = json.loads(report.read_text())
    assert written["summary"] == {"cases": 3, "passed": 2, "failed": 1, "requests": 20,
                                  "responses_5xx": 2, "invalid_responses": 0,
                                  "unverified_graphs_served": 0}  # fmt: skip
    cases = written["cases"]
    assert list(cases) == sorted(cases) and len(cases) == 3
    assert cases["test_cases.py::test_requests[2]"]["outcome"] == "failed"
    assert cases["test_cases.py::test_graphs"]["answers"] == {"empty body": 422}
