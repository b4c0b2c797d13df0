import subprocess
import sys

import pytest
import yaml

from genmodels.config import AutoencoderParams, VAEParams, load_params, parse_params
from genmodels.errors import UserError
from helpers import REPO

MINIMAL = {"models": {"ae": {"family": "autoencoder", "epochs": 1}}}


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params.models["ae_k32"], AutoencoderParams)
    assert isinstance(params.models["vae_lecture"], VAEParams)
    assert params.models["ae_sparse"].sparsity.kind == "l1"
    assert params.data.name == "fashion_mnist"


def with_change(section: str, key: str, value, instance: str | None = None) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(MINIMAL))
    target = raw["models"][instance] if instance else raw.setdefault(section, {})
    target[key] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            with_change("models", "epoch", 3, "ae"),
            "models.ae.epoch: unknown key; allowed keys here:",
        ),
        (with_change("data", "nmae", "mnist"), "data.nmae: unknown key"),
        (
            with_change("models", "latent_dim", "big", "ae"),
            "models.ae.latent_dim: Input should be a valid integer",
        ),
        (with_change("models", "lr", -1.0, "ae"), "models.ae.lr: Input should be greater than 0"),
        (with_change("data", "name", "imagenet"), "data.name: Input should be 'fashion_mnist'"),
        (with_change("train", "device", "gpu"), "train.device: String should match pattern"),
        (with_change("models", "steps", 10, "ae"), "set exactly one of 'epochs' or 'steps'"),
        (with_change("evaluate", "ssim_window", 10), "ssim_window must be odd"),
        (
            {"models": {"ae": {"family": "autoencodr", "epochs": 1}}},
            "models.ae.family: unknown family",
        ),
        ({"models": {"Bad-Name": {"family": "autoencoder", "epochs": 1}}}, "models.Bad-Name"),
        (
            {**MINIMAL, "evaluator": {"epochs": 2, "chanels": [8]}},
            "evaluator.chanels: unknown key; allowed keys here: batch_size, channels",
        ),
        (
            {"models": {"evaluator": {"family": "autoencoder", "epochs": 1}}},
            "models.evaluator: the name belongs to the evaluator section",
        ),
        (
            {"models": {"g": {"family": "gan", "epochs": 1, "loss": "wgan", "batch_size": 8}}},
            "models.g.loss: Input should be 'minimax', 'nonsaturating', 'lsgan', 'hinge' or",
        ),
        (
            {"models": {"g": {"family": "gan", "epochs": 1, "loss": "wgan_gp", "d_norm": "batch"}}},
            "gradient penalty is per sample: use d_norm none or layer",
        ),
        (
            {"models": {"g": {"family": "gan", "epochs": 1, "batch_size": 30, "packing": 4}}},
            "batch_size 30 is not a multiple of packing",
        ),
        (with_change("train", "monitor_every", 75), "must be a multiple of log_every"),
        (
            {"modles": {}},
            "modles: unknown key; allowed keys here: bench, data, evaluate, evaluator, export, models, register, serve, train",
        ),
    ],
)
def test_bad_params_name_the_key_and_what_is_allowed(raw, expected):
    with pytest.raises(UserError) as err:
        parse_params(raw)
    assert expected in str(err.value)
    assert "params.yaml is invalid" in str(err.value)


def test_unreadable_params_files(tmp_path):
    with pytest.raises(UserError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(broken)


def test_a_stage_stops_before_any_work_with_one_message(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(with_change("models", "epoch", 3, "ae")))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "pipeline" / "train.py"),
            "--params",
            str(params),
            "--instance",
            "ae",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "models.ae.epoch: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()
