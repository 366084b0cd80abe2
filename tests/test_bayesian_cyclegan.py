"""Bayesian CycleGAN: loss terms, one XLA-compiled step reused for overfitting, Monte Carlo
sampling, replicas, save/load, mixed_bfloat16. One XLA compile; other checks run eagerly."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import losses, models
from gan_tpu.models.bayesian_cyclegan import LatentSampler, gaussian_prior
from tests.helpers import (assert_saved_translator_gives_identical_outputs, assert_trains_in_mixed_bfloat16,
                           assert_two_replicas_equal_one, images_at, overfit, train_and_generate_with_the_cli)

TINY = dict(ngf=8, ndf=4, nef=4, n_blocks=1)


@pytest.fixture(scope="module")
def compiled():
    """The model, its XLA step, the first step's logs and weights, and 50 overfitting steps."""
    tf.keras.utils.set_random_seed(4)
    model = models.build("bayesian_cyclegan", image_size=32, lr=1e-3, **TINY)
    model.compile(jit_compile=True)
    images = images_at(32)
    seeds = [s.seed_state.numpy().copy() for s in model.samplers]
    return dict(model=model, seeds=seeds, **overfit(model, (images[:4], images[4:])))


def test_registered_with_the_authors_defaults():
    d = models.defaults("bayesian_cyclegan")
    assert (d["cycle_weight"], d["kl_weight"], d["gamma"], d["mc_samples"]) == (10.0, 0.1, 0.1, 3)
    assert (d["lr"], d["beta_1"], d["latent_channels"]) == (2e-4, 0.5, 1)
    model = models.build("bayesian_cyclegan", image_size=32, **TINY)
    assert model.g_monet.input_shape == (None, 32, 32, 4)  # photo + 1-channel latent map
    assert model.translator.input_shape == (None, 32, 32, 3)  # a photo batch only
    assert [tuple(o.shape) for o in model.e_monet.outputs] == [(None, 1), (None, 1), (None, 1)]


def test_kl_prior_and_sampler_match_their_formulas():
    mu, log_var = np.array([[0.5, -1.0]], np.float32), np.array([[0.2, -0.3]], np.float32)
    kl = -0.5 * np.sum(1 + log_var - mu ** 2 - np.exp(log_var))
    assert float(losses.kl_standard_normal(mu, log_var)) == pytest.approx(kl, rel=1e-5)
    assert float(losses.kl_standard_normal(np.zeros((3, 2)), np.zeros((3, 2)))) == 0.0
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    w = [v.numpy() for v in net.trainable_variables]
    assert float(gaussian_prior([net], 2.0)) == pytest.approx(2 * sum(np.mean(x ** 2) for x in w), rel=1e-5)

    sampler = LatentSampler(samples=3, seed=5)
    mu = np.array([[1.0], [-2.0]], np.float32)
    z = sampler([mu, np.full_like(mu, np.log(0.25))], training=True).numpy()
    assert z.shape == (6, 1)  # sample k of image b is row k*2 + b
    np.testing.assert_array_equal(sampler([mu, mu], training=False).numpy(), np.tile(mu, (3, 1)))
    draws = sampler([np.zeros((2000, 1), np.float32), np.full((2000, 1), np.log(0.25), np.float32)],
                    training=True).numpy()
    assert draws.std() == pytest.approx(0.5, rel=0.05) and abs(draws.mean()) < 0.03
    assert not np.array_equal(z, sampler([mu, np.full_like(mu, np.log(0.25))], training=True).numpy())


def test_xla_step_updates_every_network_and_advances_the_checkpointed_seed(compiled):
    model = compiled["model"]
    assert set(compiled["first"]) == set(model.loss_names)
    assert all(np.isfinite(v) for v in compiled["first"].values())
    assert all(not np.array_equal(a, b) for a, b in zip(compiled["before"], compiled["after"]))
    for sampler, seed in zip(model.samplers, compiled["seeds"]):
        assert not np.array_equal(sampler.seed_state.numpy(), seed)  # noise is drawn afresh each step
        assert any(v is sampler.seed_state for v in sampler.non_trainable_variables)
    assert compiled["first"]["prior"] > 0 and compiled["first"]["kl"] >= 0


def test_overfitting_four_images_lowers_the_cycle_loss(compiled):
    # (the authors' objective has no identity term)
    first, last = compiled["first"], compiled["history"][-1]
    assert last["cycle"] < 0.7 * first["cycle"]


def test_translator_save_and_load_give_identical_outputs(compiled, tmp_path):
    model, x = compiled["model"], images_at(32)[:2]
    assert_saved_translator_gives_identical_outputs(model, x, tmp_path)
    # the zero latent: the translator is g_monet on [photo, 0]
    zero = tf.concat([x, tf.zeros((2, 32, 32, 1))], -1)
    np.testing.assert_allclose(model.translator(x).numpy(), model.g_monet(zero).numpy(), atol=1e-6)


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    # With noise, each replica draws ε for its own share of the batch, so one replica with
    # batch 2 and two with batch 1 see different ε by construction. Everything else (the
    # K-sample batch, KL, prior, γ-weighted reconstruction loss, replica scaling) is
    # checked with the sampler's noise off (z = μ, still K copies).
    def build():
        model = models.build("bayesian_cyclegan", image_size=32, **TINY)
        for sampler in model.samplers:
            sampler.noise = False
        return model

    images = images_at(32, seed=5)
    assert_two_replicas_equal_one(build, (images[:2], images[2:4]))


def test_mixed_bfloat16_trains_with_float32_losses():
    assert_trains_in_mixed_bfloat16(lambda: models.build("bayesian_cyclegan", image_size=32, **TINY),
                                    lambda model: model.g_monet.get_layer("g_monet_stem_conv"), images_at(32))


# ---------------------------------------------------------------- this part's pipelines, by CLI

CLI_TINY = {"ugatit_light": ["model.global_layers=5", "model.local_layers=4"],
            "bayesian_cyclegan": ["model.nef=4", "model.mc_samples=2"]}


def test_every_pipeline_of_this_part_loads_with_its_paper_defaults():
    from gan_tpu import config

    for name in ("ugatit", "ugatit_light", "bayesian_cyclegan"):
        cfg = config.load(name)
        assert cfg["model"]["name"] == name
        assert {k: v for k, v in models.defaults(name).items() if k in cfg["model"]} == \
            {k: v for k, v in cfg["model"].items() if k != "name"}


@pytest.mark.parametrize("name", ["bayesian_cyclegan"])  # U-GAT-IT's CLI path is the same code; its training is tested in test_ugatit.py
def test_pipeline_trains_and_generates_from_the_command_line(name, tmp_path):
    # `ugatit` differs from `ugatit_light` only in its MLP's input; its XLA step is tested above
    train_and_generate_with_the_cli(tmp_path, f"pipelines/{name}.toml",
                                    ["model.ngf=4", "model.ndf=4", "model.n_blocks=1", *CLI_TINY[name]])
