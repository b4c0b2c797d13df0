"""Shared fixtures: a small real dataset prepared by the real code, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fault_report import (  # noqa: F401 - the fault suite's report
    pytest_addoption,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    remember_config,
)
from genmodels.config import DataParams
from genmodels.data.prepare import prepare
from genmodels.data.prepared import PreparedData, load_prepared
from genmodels.metrics.space import EvaluatorSpace, SuiteSettings, compute_reference
from tiny_graphs import families, tiny_exported  # noqa: F401 - fixtures for every folder


def pytest_configure(config):
    remember_config(config)
    # An xdist worker shares the cores with the other worker; the stage processes that tests
    # start keep torch's default thread count.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """scikit-learn's bundled digits, scaled to 28x28 by the prepare stage's own code."""
    out = tmp_path_factory.mktemp("digits") / "prepared"
    prepare(DataParams(name="digits", prepared_dir=str(out), download=False))
    return out


@pytest.fixture(scope="session")
def digits_prepared(digits_dir) -> PreparedData:
    return load_prepared(digits_dir)


@pytest.fixture(scope="session")
def digits_space(digits_prepared) -> EvaluatorSpace:
    """A small evaluator trained briefly on the digits, and its reference: the real code path
    of evaluate_evaluator, at a size that takes seconds."""
    import torch

    from genmodels.config import EvaluatorParams
    from genmodels.models import build_recipe, data_info
    from genmodels.training import Batch

    torch.manual_seed(0)
    params = EvaluatorParams(epochs=1, channels=[8, 16], features=32, batch_size=64, lr=3e-3)
    evaluator = build_recipe(params, data_info(digits_prepared), torch.device("cpu"))
    images, labels = digits_prepared.train_images, digits_prepared.train_labels
    for step in range(60):
        idx = torch.randint(0, len(images), (64,))
        evaluator.training_step(Batch(images[idx].float() / 255, labels[idx]), step)
    reference = compute_reference(
        "evaluator", evaluator.features, evaluator.probabilities, images, labels,
        digits_prepared.test_images, digits_prepared.test_labels, batch_size=256,
    )  # fmt: skip
    settings = SuiteSettings(n_samples=200, kid_subsets=5, kid_subset_size=100, prdc_k=5,
                             min_class_share=0.05, memorisation_samples=50, batch_size=256,
                             seed=0)  # fmt: skip
    return EvaluatorSpace(
        evaluator.features, evaluator.probabilities, reference, images,
        digits_prepared.test_images, settings, digits_prepared.num_classes,
        network=evaluator.classifier,
        extract_and_classify=evaluator.features_and_probabilities,
    )  # fmt: skip
