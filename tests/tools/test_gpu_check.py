"""`make gpu-check` (tools/gpu_check.py): its checks run on the CPU as a smoke test (bf16
autocast and channels-last, no torch.compile), and its comparison flags what it should."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

import pytest

from genmodels.errors import UserError
from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))
import gpu_check  # noqa: E402


def test_the_checks_run_on_the_cpu_and_write_their_report(digits_dir, tmp_path):
    out = tmp_path / "gpu.json"
    args = Namespace(device="cpu", steps=12, instances="srgan", prepared=str(digits_dir),
                     compile=False, pipeline=False, out=str(out),
                     params=str(REPO / "params.yaml"))  # fmt: skip
    gpu_check.main(args)
    report = json.loads(out.read_text())
    # the SRGAN: its content loss needs the evaluator's features, its second half is a game
    assert set(report["families"]) == {"evaluator", "srgan"}
    srgan = report["families"]["srgan"]["losses"]
    assert {"d_loss", "g_loss"} <= set(srgan)
    for loss in srgan.values():
        assert loss["tolerance"] == max(2 * loss["next_seed_relative_difference"], 0.02)
        assert loss["next_seed_relative_difference"] > 0  # another seed: another path
    for family in report["families"].values():
        assert set(family["seconds"]) == {"float32", "float32_next_seed", "bf16_compiled"}
    assert report["ddp_nccl"] == "not run: NCCL needs CUDA"
    assert report["pipeline"] == "not run (--no-pipeline)"


def test_the_tolerance_is_twice_what_a_change_of_seed_moves_a_loss():
    slow = {"loss": 1.0, "d_loss": 1.0, "g_loss": 2.0}
    next_seed = {"loss": 1.05, "d_loss": 1.001, "g_loss": 2.2}
    found = gpu_check.compare(slow, next_seed, {"loss": 1.09, "d_loss": 1.03, "g_loss": 2.5})
    assert found["loss"]["ok"]  # 9 % off where the seed moves it 5 %
    assert not found["d_loss"]["ok"]  # 3 % off: over the 2 % floor
    assert not found["g_loss"]["ok"]  # 25 % off where the seed moves it 10 %
    assert not gpu_check.compare({"loss": 1.0}, {"loss": 1.1}, {"loss": float("nan")})["loss"]["ok"]
    assert not gpu_check.compare({"loss": 1.0}, {"loss": 1.1}, {})["loss"]["ok"]


def test_one_instance_per_family_prefers_the_srgan_variant():
    params = {"models": {"ae": {"family": "autoencoder"}, "ae2": {"family": "autoencoder"},
                         "srresnet": {"family": "srgan", "variant": "srresnet"},
                         "srgan": {"family": "srgan", "variant": "srgan"}}}  # fmt: skip
    assert gpu_check.one_instance_per_family(params) == ["ae", "srgan"]


def test_without_cuda_it_says_where_to_run(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = Namespace(device="cuda", steps=12, instances="", prepared=str(tmp_path),
                     compile=True, pipeline=False, out=str(tmp_path / "gpu.json"),
                     params=str(REPO / "params.yaml"))  # fmt: skip
    with pytest.raises(UserError, match="no CUDA device here"):
        gpu_check.main(args)
