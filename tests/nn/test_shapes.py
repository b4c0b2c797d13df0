"""Networks follow the data's shape (genmodels.shapes): the stride-2 stages a size needs, the
widths they add, every family built and trained one step at 28x28, 32x32, 64x64 (and 128x128 for
the generators), and a size a network cannot take refused with its params key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from genmodels.config import (
    AutoencoderParams,
    CGANParams,
    CycleGANParams,
    DomainParams,
    EvaluatorParams,
    GANParams,
    SRGANParams,
    VAEParams,
)
from genmodels.data.domains import build_domains, describe, save_domains
from genmodels.errors import UserError
from genmodels.models import build_recipe
from genmodels.models.srgan import downsample
from genmodels.nn.dcgan import ConvGenerator, ConvTrunk
from genmodels.nn.resnet import NormResidualBlock, PatchDiscriminator, ResnetGenerator
from genmodels.nn.srresnet import SRResNet
from genmodels.shapes import halvings, needed_stages, stack_problem, stack_widths
from genmodels.training import Batch
from genmodels.training.recipe import DataInfo

CPU = torch.device("cpu")
SIZES = [(3, 32, 32), (3, 64, 64), (1, 28, 28)]
IDS = ["rgb32", "rgb64", "gray28"]


def info(shape) -> DataInfo:
    return DataInfo("random", tuple(shape), 10)


def random_batch(shape, n: int = 4, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return Batch(torch.rand(n, *shape, generator=gen), torch.randint(10, (n,), generator=gen))


def strided(module: nn.Module, kind: type = nn.Conv2d) -> list[nn.Module]:
    """The stride-2 layers of `kind` in a network, in order."""
    return [m for m in module.modules() if type(m) is kind and m.stride == (2, 2)]


def finite(logs: dict) -> bool:
    return all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())


# -- the stage count and the widths ----------------------------------------------------------------
@pytest.mark.parametrize(
    "side, stages, end",
    [(28, 2, 7), (32, 3, 4), (64, 4, 4), (128, 5, 4), (96, 4, 6), (16, 2, 4), (8, 1, 4),
     (4, 0, 4), (30, 1, 15), (7, 0, 7)],
)  # fmt: skip
def test_a_side_is_halved_while_even_and_its_half_at_least_4(side, stages, end):
    assert halvings(side) == stages
    assert side // 2**stages == end and side % 2**stages == 0


def test_a_non_square_image_takes_the_stages_both_sides_allow():
    assert needed_stages((64, 32)) == 3
    assert needed_stages((28, 64)) == 2
    assert needed_stages((96, 128)) == 4


def test_widths_are_extended_by_doubling_on_the_low_resolution_side():
    assert stack_widths([32, 64], (28, 28)) == [32, 64]
    assert stack_widths([32, 64], (32, 32)) == [32, 64, 128]
    assert stack_widths([64, 32], (32, 32), low_to_high=True) == [128, 64, 32]
    assert stack_widths([32, 64], (128, 128)) == [32, 64, 128, 256, 512]
    assert stack_widths([256], (128, 128)) == [256, 512, 512, 512, 512]  # capped at 512
    assert stack_widths([640], (16, 16)) == [640, 640]  # a wider given width is not cut
    assert stack_widths([8, 8, 8], (64, 64)) == [8, 8, 8, 16]
    assert stack_widths([8, 8, 8, 8], (32, 32)) == [8, 8, 8, 8]  # more than needed: 32 -> 2


def test_more_widths_than_the_size_halves_into_are_refused():
    assert stack_problem([8] * 5, (28, 28)) == "5 stride-2 stages need a side divisible by 32"
    assert stack_problem([8] * 2, (28, 28)) is None
    assert stack_problem([8] * 2, (30, 30)) == "2 stride-2 stages need a side divisible by 4"
    with pytest.raises(ValueError, match="3 stride-2 stages need a side divisible by 8: the "
                                         "images are 28x28"):  # fmt: skip
        stack_widths([8] * 3, (28, 28))


# -- the networks ----------------------------------------------------------------------------------
def test_at_28x28_two_widths_build_the_two_stage_networks_as_before():
    generator = ConvGenerator(64, [64, 32], (1, 28, 28))
    assert [tuple(p.shape) for p in generator.parameters()] == [
        (64 * 49, 64), (64 * 49,), (64 * 49,), (64, 32, 4, 4), (32,), (32,), (32, 1, 4, 4), (1,),
    ]  # fmt: skip
    trunk = ConvTrunk(1, [32, 64], (28, 28), "batch", False)
    assert [tuple(p.shape) for p in trunk.parameters()] == [
        (32, 1, 4, 4), (32,), (64, 32, 4, 4), (64,), (64,), (64,),
    ]  # fmt: skip
    assert trunk.out_features == 64 * 7 * 7


def test_a_generator_of_one_width_takes_a_side_that_halves_once():
    # 30 -> 15: one stage, an odd start that the 4/2/1 transposed conv doubles exactly
    generator = ConvGenerator(8, [16], (1, 30, 30))
    assert generator.body[3].unflattened_size == (16, 15, 15)
    assert generator(torch.randn(2, 8)).shape == (2, 1, 30, 30)
    trunk = ConvTrunk(1, [8], (30, 30), "none", False)
    assert trunk(torch.rand(2, 1, 30, 30)).shape == (2, trunk.out_features) == (2, 8 * 15 * 15)
    with pytest.raises(ValueError, match="2 stride-2 stages need a side divisible by 4"):
        ConvGenerator(8, [16, 8], (1, 30, 30))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 128, 128)])
def test_the_conv_generator_makes_images_of_the_datas_shape(shape):
    generator = ConvGenerator(8, [16, 8], shape)
    stages = needed_stages(shape[1:])
    assert len(strided(generator, nn.ConvTranspose2d)) == stages
    assert generator.body[3].unflattened_size[1] == shape[1] // 2**stages
    assert generator(torch.randn(2, 8)).shape == (2, *shape)


def test_the_sr_generator_trained_at_7x7_upscales_other_sizes():
    torch.manual_seed(0)
    generator = SRResNet(4, 8, 1, 1)
    opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    high = torch.rand(4, 1, 28, 28)
    for _ in range(2):  # trained on 7x7 inputs
        loss = nn.functional.mse_loss(generator(downsample(high, 4)), high)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for h, w in ((16, 16), (5, 9), (7, 7)):
            out = generator.upscale(torch.rand(2, 1, h, w))  # clamped to [0, 1]
            assert out.shape == (2, 1, 4 * h, 4 * w)
            assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        # fully convolutional: away from the borders (the receptive field reaches under 12
        # low-resolution pixels), a crop of the input is upscaled as it is inside the whole
        big = torch.rand(1, 1, 48, 48)
        whole, part = generator(big), generator(big[:, :, 8:40, 8:40])
        assert torch.allclose(whole[..., 80:112, 80:112], part[..., 48:80, 48:80], atol=1e-5)


@pytest.mark.parametrize("side, layers, scores", [(28, 2, 5), (24, 3, 1), (128, 3, 14), (16, 2, 2)])
def test_patchgan_scores_any_size_its_layers_leave_a_map_for(side, layers, scores):
    out = PatchDiscriminator(3, 4, layers)(torch.rand(1, 3, side, side))
    assert out.shape == (1, 1, scores, scores)


# -- every family at every size: one training step -------------------------------------------------
@pytest.mark.parametrize("shape", SIZES, ids=IDS)
@pytest.mark.parametrize("params_class", [AutoencoderParams, VAEParams])
def test_autoencoders_reconstruct_the_datas_shape(params_class, shape):
    torch.manual_seed(0)
    params = params_class(family=params_class.__name__[:-6].lower(), arch="conv", channels=[8, 16],
                          latent_dim=4, batch_size=4, steps=1)  # fmt: skip
    recipe = build_recipe(params, info(shape), CPU)
    batch = random_batch(shape)
    assert finite(recipe.training_step(batch, 0))
    stages = needed_stages(shape[1:])
    convs = strided(recipe.encoder)
    assert [c.out_channels for c in convs] == [8, 16, 32, 64][:stages]
    assert len(strided(recipe.decoder, nn.ConvTranspose2d)) == stages
    recipe.train(False)
    with torch.no_grad():
        code = recipe.encoder(batch.images)
        code = code[0] if isinstance(code, tuple) else code  # the VAE's (mean, logvar)
        assert recipe.decoder(code).shape == batch.images.shape


@pytest.mark.parametrize("shape", [*SIZES, (3, 128, 128)], ids=[*IDS, "rgb128"])
@pytest.mark.parametrize("conditioning", [None, "concat", "projection"])
def test_gan_and_cgan_generate_the_datas_shape(conditioning, shape):
    torch.manual_seed(0)
    common = {"latent_dim": 8, "g_channels": [16, 8], "d_channels": [8, 16], "d_norm": "batch",
              "batch_size": 4, "steps": 1}  # fmt: skip
    if conditioning is None:
        params = GANParams(family="gan", **common)
    else:
        params = CGANParams(family="cgan", conditioning=conditioning, embed_dim=4, **common)
    recipe = build_recipe(params, info(shape), CPU)
    assert finite(recipe.training_step(random_batch(shape), 0))
    stages = needed_stages(shape[1:])
    assert len(strided(recipe.generator, nn.ConvTranspose2d)) == stages
    assert [c.out_channels for c in strided(recipe.discriminator)] == [8, 16, 32, 64, 128][:stages]
    samples = recipe.sample(torch.randn(3, 8), torch.tensor([0, 4, 9]))
    assert samples.shape == (3, *shape) and samples.min() >= 0 and samples.max() <= 1


@pytest.mark.parametrize("shape", SIZES, ids=IDS)
def test_the_evaluator_gives_features_at_every_size(shape):
    torch.manual_seed(0)
    params = EvaluatorParams(channels=[4, 8], features=16, batch_size=4, epochs=1)
    recipe = build_recipe(params, info(shape), CPU)
    assert finite(recipe.training_step(random_batch(shape), 0))
    pools = [m for m in recipe.classifier.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == needed_stages(shape[1:])
    images = random_batch(shape, n=3, seed=1).images
    assert recipe.features(images).shape == (3, 16)
    assert recipe.probabilities(images).shape == (3, 10)


@pytest.mark.parametrize("shape", SIZES, ids=IDS)
def test_srgan_upscales_to_the_high_resolution_shape(shape):
    torch.manual_seed(0)
    params = SRGANParams(family="srgan", channels=4, blocks=1, d_channels=[4, 8], batch_size=4,
                         pretrain_steps=1, steps=3, content_layer="block1")  # fmt: skip
    recipe = build_recipe(params, info(shape), CPU)
    evaluator = build_recipe(EvaluatorParams(channels=[4, 8], epochs=1), info(shape), CPU)
    recipe.attach_space(SimpleNamespace(network=evaluator.classifier), 0)  # the content loss
    batch = random_batch(shape)
    logs = [recipe.training_step(batch, step) for step in range(2)]  # MSE, then adversarial
    assert set(logs[0]) == {"mse"} and "d_loss" in logs[1] and all(map(finite, logs))
    assert len(strided(recipe.discriminator)) == needed_stages(shape[1:])
    low = downsample(batch.images, 4)
    assert recipe.upscale(low).shape == batch.images.shape


def domains_dir(tmp_path, shape, n: int = 8):
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(n + 4, *shape, generator=gen) * 255).to(torch.uint8)
    labels = torch.arange(n + 4) % 10
    params = DomainParams(transform="invert")
    tensors = build_domains(images[:n], labels[:n], images[n:], labels[n:], params)
    save_domains(tensors, describe(tensors, "random", params), tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "shape, blocks", [((3, 32, 32), 6), ((3, 64, 64), 6), ((1, 28, 28), 6), ((3, 128, 128), 9)],
    ids=[*IDS, "rgb128"],
)  # fmt: skip
def test_cyclegan_translates_at_the_datas_size_with_the_papers_blocks(shape, blocks, tmp_path):
    torch.manual_seed(0)
    params = CycleGANParams(family="cyclegan", g_channels=4, d_channels=4, batch_size=1, steps=2,
                            identity_weight=0.0)  # fmt: skip
    recipe = build_recipe(params, info(shape), CPU)
    recipe.attach_data(domains_dir(tmp_path, shape))
    for generator in (recipe.g_ab, recipe.g_ba):
        assert sum(isinstance(m, NormResidualBlock) for m in generator.modules()) == blocks
    assert finite(recipe.training_step(Batch(torch.zeros(1), torch.zeros(1)), 0))
    images = torch.rand(2, *shape)
    with recipe.evaluating():
        assert recipe.g_ab(images).shape == images.shape
        side = shape[1] // 4 - 2  # two stride-2 stages, then two 4x4 convs
        assert recipe.d_b(images).shape == (2, 1, side, side)
    explicit = build_recipe(params.model_copy(update={"g_blocks": 2}), info(shape), CPU)
    assert sum(isinstance(m, NormResidualBlock) for m in explicit.g_ab.modules()) == 2


def test_the_resnet_generator_takes_any_size_its_downsampling_divides():
    generator = ResnetGenerator(3, 4, 1, downsampling=2)
    assert generator(torch.rand(1, 3, 36, 20)).shape == (1, 3, 36, 20)


# -- a size params leave to the source: checked when the recipe is built ---------------------------
def test_a_size_a_network_cannot_take_is_a_user_error_naming_the_key():
    gan = GANParams(family="gan", g_channels=[8] * 3, d_channels=[8] * 4, steps=1)
    with pytest.raises(UserError) as caught:
        build_recipe(gan, info((1, 28, 28)), CPU, "g")
    assert str(caught.value).splitlines()[1:] == [
        "  models.g.g_channels: 3 stride-2 stages need a side divisible by 8; the prepared images "
        "are 28x28",
        "  models.g.d_channels: 4 stride-2 stages need a side divisible by 16; the prepared "
        "images are 28x28",
    ]
    with pytest.raises(UserError, match=r"evaluator\.channels: 3 stride-2 stages"):
        build_recipe(EvaluatorParams(channels=[8] * 3, epochs=1), info((1, 28, 28)), CPU)
    sr = SRGANParams(family="srgan", variant="srresnet", steps=1)
    with pytest.raises(UserError, match=r"models\.\*\.scale: scale 4 needs a side divisible by 4; "
                                        r"the prepared images are 30x30"):  # fmt: skip
        build_recipe(sr, info((1, 30, 30)), CPU)
    with pytest.raises(UserError, match=r"models\.s\.hr_crop: hr_crop 32 is larger than the "
                                        r"images; the prepared images are 28x28"):  # fmt: skip
        build_recipe(sr.model_copy(update={"hr_crop": 32}), info((1, 28, 28)), CPU, "s")
    cycle = CycleGANParams(family="cyclegan", steps=1)
    misfit = r"models\.c\.g_downsampling: g_downsampling 2 needs a side divisible by 4; the "
    with pytest.raises(UserError, match=misfit + "prepared images are 30x30"):
        build_recipe(cycle, info((1, 30, 30)), CPU, "c")
    # the MLP arch has no conv stack to check
    mlp = GANParams(family="gan", arch="mlp", g_channels=[8] * 6, steps=1)
    assert build_recipe(mlp, info((1, 28, 28)), CPU).generator(torch.randn(2, 64)).shape == (
        2, 1, 28, 28,
    )  # fmt: skip
