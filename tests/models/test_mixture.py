"""The GAN game on the mixtures: every variant through the shared adversarial step, one seed's
run independent of the seeds beside it, and training that moves samples onto the modes."""

import pytest

from genmodels.data.mixtures import grid, ring
from genmodels.errors import UserError
from genmodels.models.mixture import (
    VARIANTS,
    MixtureGANRecipe,
    summarise,
    train_ensemble,
    variant_params,
)
from genmodels.nn.points import SeedSpectralNorm


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_each_seed_and_counts_its_modes(variant):
    params = variant_params(variant, 12)
    run = train_ensemble(ring(), params, [0, 1], 12, eval_samples=200, log_every=2,
                         snapshot_at=(0, 12), snapshot_samples=50)  # fmt: skip
    assert [r["seed"] for r in run.per_seed] == [0, 1]
    for found, curve in zip(run.per_seed, run.curves, strict=True):
        assert 0 <= found["modes_captured"] <= 8
        assert 0.0 <= found["high_quality"] <= 1.0
        assert len(curve["d_loss"]) == len(curve["g_loss"]) == 6  # every 2nd of 12 updates
        assert found["oscillation_index"] is not None and found["oscillation_index"] >= 0
    assert set(run.snapshots) == {0, 12}
    assert run.snapshots[12].shape == (50, 2)
    assert summarise(run.per_seed)["modes_captured"]["mean"] is not None


def test_the_variants_change_what_they_name():
    recipe = MixtureGANRecipe(variant_params("spectral_norm", 10), [0, 1], 1.0)
    assert any(isinstance(m, SeedSpectralNorm) for m in recipe.discriminator.modules())
    assert MixtureGANRecipe(variant_params("ema", 10), [0], 1.0).ema is not None
    assert MixtureGANRecipe(variant_params("nonsaturating", 10), [0], 1.0).ema is None
    pac = MixtureGANRecipe(variant_params("pacgan3", 10), [0], 1.0)
    assert pac.discriminator.hidden[0].weight.shape[1] == 6  # three points side by side
    wgan = variant_params("wgan_gp", 10)
    assert (wgan.loss, wgan.n_critic) == ("wgan_gp", 5)


def test_a_seeds_run_does_not_depend_on_the_seeds_beside_it():
    params = variant_params("nonsaturating", 12)
    alone = train_ensemble(ring(), params, [3], 12, eval_samples=100, log_every=2)
    beside = train_ensemble(ring(), params, [1, 3], 12, eval_samples=100, log_every=2)
    # the same draws; only float rounding (one batched product against one matrix product) and
    # Adam's epsilon (against a gradient divided by the number of seeds) differ
    for key in ("d_loss", "g_loss"):
        assert beside.curves[1][key] == pytest.approx(alone.curves[0][key], rel=1e-4)
    assert beside.curves[0]["d_loss"] != pytest.approx(alone.curves[0]["d_loss"], rel=1e-4)


def test_training_brings_samples_onto_the_grids_modes():
    params = variant_params("nonsaturating", 400)
    untrained = train_ensemble(grid(), params, [0, 1], 0, eval_samples=1000)
    trained = train_ensemble(grid(), params, [0, 1], 400, eval_samples=1000)
    before = summarise(untrained.per_seed)
    after = summarise(trained.per_seed)
    assert after["modes_captured"]["mean"] >= before["modes_captured"]["mean"] + 3
    assert after["high_quality"]["mean"] > 3 * max(before["high_quality"]["mean"], 0.005)


def test_an_unknown_variant_names_the_choices():
    with pytest.raises(UserError, match="minimax, nonsaturating"):
        variant_params("unrolled", 10)
