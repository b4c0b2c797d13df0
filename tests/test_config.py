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
            with_change("evaluate", "features", "fid_inception"),
            "evaluate: Value error, features fid_inception needs inception_weights",
        ),
        (
            with_change("evaluate", "inception_weights", "pt_inception.pth"),
            "set features: fid_inception to measure in the FID Inception's space",
        ),
        (
            {
                **with_change("data", "name", "photos"),
                "models": {"c": {"family": "cgan", "steps": 1}},
            },
            "models.c.family: data photos has no class labels and the cGAN draws the class",
        ),  # fmt: skip
        (
            {**with_change("data", "name", "celeba"), "evaluator": {"steps": 1, "task": "classes"}},
            "evaluator.task: data celeba has no class labels and task classes classifies them; "
            "set it to auto",
        ),  # fmt: skip
        (
            with_change("infer", "tile_overlap", 200),
            "infer: Value error, infer.tile_overlap (200) must be at most half of "
            "infer.tile_side (192)",
        ),
        (
            {"modles": {}},
            "modles: unknown key; allowed keys here: bench, data, evaluate, evaluator, export, infer, models, register, serve, train",
        ),
    ],
)
@pytest.mark.faults
def test_bad_params_name_the_key_and_what_is_allowed(raw, expected):
    with pytest.raises(UserError) as err:
        parse_params(raw)
    assert expected in str(err.value)
    assert "params.yaml is invalid" in str(err.value)


@pytest.mark.faults
def test_unreadable_params_files(tmp_path):
    with pytest.raises(UserError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(broken)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            with_change("models", "batch_size", True, "ae"),
            "models.ae.batch_size: Input should be a valid integer (got True)",
        ),
        (
            with_change("models", "batch_size", "64", "ae"),
            "models.ae.batch_size: Input should be a valid integer (got '64')",
        ),
        (
            with_change("serve", "from_registry", "yes"),
            "serve.from_registry: Input should be a valid boolean (got 'yes')",
        ),
        (
            with_change("train", "seed", 1.0),
            "train.seed: Input should be a valid integer (got 1.0)",
        ),
    ],
)
@pytest.mark.faults
def test_wrong_types_are_refused_not_coerced(raw, expected):
    parse_params(yaml.safe_load(yaml.safe_dump(MINIMAL)))  # valid without the change
    with pytest.raises(UserError) as err:
        parse_params(raw)
    assert expected in str(err.value)


@pytest.mark.faults
def test_a_repeated_key_names_the_key_and_both_lines(tmp_path):
    text = (REPO / "params.yaml").read_text()
    assert "\n  seed: " in text
    doubled = tmp_path / "params.yaml"
    # a second `seed:` right after the first one, inside train:
    doubled.write_text(text.replace("\n  seed: ", "\n  seed: 7\n  seed: ", 1))
    first = text[: text.index("\n  seed: ")].count("\n") + 2
    with pytest.raises(UserError) as err:
        load_params(doubled)
    assert f"key 'seed' appears twice in one mapping, at lines {first} and {first + 1}" in str(
        err.value
    )


def test_yaml_reads_like_dvc_exponents_are_floats_and_merges_may_override(tmp_path):
    written = tmp_path / "params.yaml"
    written.write_text(
        "models:\n"
        "  base: &base {family: autoencoder, latent_dim: 2, lr: 1e-3, epochs: 1}\n"
        "  wide: {<<: *base, latent_dim: 8}\n"
    )
    params = load_params(written)
    assert params.models["wide"].latent_dim == 8 and params.models["base"].latent_dim == 2
    assert params.models["wide"].lr == 0.001


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


# -- the networks against the image size params fix ---------------------------------------------
def sized(side: int | None, models: dict, **data) -> dict:
    """Params with the image side fixed by data.image_size (None: the source's own), and an
    evaluator of one conv block (which any even side takes)."""
    one_block = {"epochs": 1, "channels": [8]}
    return {"data": {"image_size": side, **data}, "models": models, "evaluator": one_block}


GAN = {"family": "gan", "epochs": 1}
SR = {"family": "srgan", "variant": "srresnet", "steps": 1}
SRGAN = {"family": "srgan", "pretrain_steps": 1, "steps": 2, "content_layer": "block1"}
CYCLE = {"family": "cyclegan", "steps": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            sized(28, {"gan": GAN | {"g_channels": [8] * 5}}),
            "models.gan.g_channels: 5 stride-2 stages need a side divisible by 32; "
            "data.image_size is 28",
        ),
        (
            sized(28, {"g": GAN | {"d_channels": [8] * 3}}),
            "models.g.d_channels: 3 stride-2 stages need a side divisible by 8; "
            "data.image_size is 28",
        ),
        (
            {
                "data": {"image_size": 28},
                "evaluator": {"epochs": 1, "channels": [8] * 3},
                "models": {"g": GAN},
            },
            "evaluator.channels: 3 stride-2 stages need a side divisible by 8; "
            "data.image_size is 28",
        ),  # fmt: skip
        (
            sized(
                None,
                {"a": {"family": "autoencoder", "epochs": 1, "channels": [8] * 3}},
                name="photos",
                crop_size=36,
            ),
            "models.a.channels: 3 stride-2 stages need a side divisible by 8; data.crop_size is 36",
        ),  # fmt: skip
        (
            sized(30, {"sr": SR}),
            "models.sr.scale: scale 4 needs a side divisible by 4; data.image_size is 30",
        ),
        (
            sized(28, {"sr": SR | {"hr_crop": 32}}),
            "models.sr.hr_crop: hr_crop 32 is larger than the images; data.image_size is 28",
        ),
        # not divisible by the scale: refused whatever the size, known or not
        (
            sized(None, {"sr": SR | {"hr_crop": 30}}),
            "models.sr.hr_crop: hr_crop 30 is not divisible by scale 4",
        ),  # fmt: skip
        (
            sized(None, {"s": SRGAN | {"hr_crop": 16, "content_layer": "features"}}),
            "models.s.hr_crop: content_layer features needs whole images",
        ),
        (
            sized(64, {"s": SRGAN | {"hr_crop": 16, "d_channels": [8] * 5}}),
            "models.s.d_channels: 5 stride-2 stages need a side divisible by 32; hr_crop is 16",
        ),
        (
            sized(30, {"c": CYCLE | {"g_downsampling": 2}}),
            "models.c.g_downsampling: g_downsampling 2 needs a side divisible by 4; "
            "data.image_size is 30",
        ),
        (
            sized(8, {"c": CYCLE | {"g_downsampling": 1, "d_layers": 2}}),
            "models.c.d_layers: d_layers 2 leaves the PatchGAN no score map below a side of 12; "
            "data.image_size is 8",
        ),
    ],
)
def test_a_size_the_networks_cannot_take_names_the_key(raw, expected):
    with pytest.raises(UserError) as err:
        parse_params(raw)
    lines = str(err.value).splitlines()
    assert lines[0] == "params.yaml is invalid (1 problem); fix these keys and run again:"
    assert len(lines) == 2 and lines[1].startswith(f"  {expected}")


def test_each_misfit_key_is_one_line_of_the_message():
    with pytest.raises(UserError) as err:
        parse_params(sized(30, {"g": GAN, "sr": SR, "c": CYCLE}) | {"evaluator": {"epochs": 1}})
    lines = str(err.value).splitlines()
    assert lines[0].startswith("params.yaml is invalid (5 problems)")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "evaluator.channels", "models.g.g_channels", "models.g.d_channels", "models.sr.scale",
        "models.c.g_downsampling",
    ]  # fmt: skip


@pytest.mark.parametrize("side", [28, 32, 64, 96, 128])
def test_the_repository_params_fit_every_usual_size(side):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["image_size"] = side
    params = parse_params(raw)
    assert params.data.known_side == (side, f"data.image_size is {side}")


def test_sizes_the_rules_allow_are_valid():
    # 30 halves once (-> 15): one width each; an MLP has no conv stack to check
    one_stage = GAN | {"g_channels": [16], "d_channels": [8]}
    parse_params(sized(30, {"g": one_stage, "m": GAN | {"arch": "mlp", "g_channels": [8] * 6}}))
    parse_params(sized(64, {"sr": SR | {"hr_crop": 32}, "s": SRGAN | {"hr_crop": 16}}))
    # six widths where the size halves into them
    parse_params(sized(128, {"g": GAN | {"g_channels": [8] * 6, "d_channels": [8] * 6}}))
