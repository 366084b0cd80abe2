"""DRIT++: defaults, loss pieces, networks, one XLA step reused for overfitting, replicas,
save/load, mixed_bfloat16. The CLI path (train, generate --style-seed) is MUNIT's, tested in
test_munit.py."""
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import config, losses, models
from gan_tpu.models.drit import content_discriminator, mode_seeking
from tests.helpers import (assert_saved_translator_gives_identical_outputs, assert_trains_in_mixed_bfloat16,
                           assert_two_replicas_equal_one, images_at, overfit)

# 32 px: 8 px content codes, too small for the content discriminator's 7x7 stride-2 layers
TINY = dict(dim=4, ndf=4, n_res=1, d_layers=2, d_scales=2, content_d_layers=0, d_iter=2)


@pytest.fixture(scope="module")
def compiled():
    """The model, its XLA step, the first step's logs and weights, and 25 overfitting steps."""
    tf.keras.utils.set_random_seed(3)
    model = models.build("drit", image_size=32, lr=1e-3, **TINY)
    model.compile(jit_compile=True)
    images = images_at(32)
    return dict(model=model, **overfit(model, (images[:4], images[4:]), steps=25))


def test_registered_with_the_authors_defaults():
    d = models.defaults("drit")
    assert (d["cross_cycle_weight"], d["self_recon_weight"], d["latent_weight"], d["kl_weight"],
            d["content_l2_weight"], d["mode_seeking_weight"]) == (10.0, 10.0, 10.0, 0.01, 0.01, 1.0)
    assert (d["lr"], d["content_lr_ratio"], d["content_clipnorm"], d["d_iter"], d["attr_dim"]) == \
        (1e-4, 0.4, 5.0, 3, 8)
    cfg = config.load("drit")
    own = {k: v for k, v in d.items() if k not in models.registry.SHARED}  # ema: every model's option
    assert {k: v for k, v in cfg["model"].items() if k != "name"} == own
    # the authors' content discriminator on 256 px images' 64 px codes: 64 -> 30 -> 13 -> 5 -> 2x2 logits
    assert tuple(content_discriminator(64, 8, n_layers=3).output.shape) == (None, 2, 2, 1)
    with pytest.raises(ValueError, match=r"model.content_d_layers=1 leaves no logits on 8 px content codes"):
        models.build("drit", image_size=32, **{**TINY, "content_d_layers": 1})
    with pytest.raises(ValueError, match=r"DRIT\+\+ image size must be a multiple of 4, got 34"):
        models.build("drit", image_size=34, **TINY)


def test_kl_and_mode_seeking_match_their_formulas():
    mu, log_var = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32), np.array([[0.0, np.log(4.0)], [0.0, 0.0]], np.float32)
    # per image 0.5 Σ (σ² + μ² − 1 − log σ²): image 1: 0.5 (1 + 3 − log 4), image 2: 0
    assert float(losses.kl_standard_normal(mu, log_var)) == pytest.approx(0.25 * (4 - np.log(4.0)), rel=1e-5)
    a, b = np.zeros((2, 2, 2, 3), np.float32), np.full((2, 2, 2, 3), 0.5, np.float32)
    z1, z2 = np.zeros((2, 4), np.float32), np.ones((2, 4), np.float32)
    assert float(mode_seeking(a, b, z1, z2)) == pytest.approx(1 / (0.5 + 1e-5), rel=1e-5)


def test_latent_regression_steps_what_the_authors_backward_g_alone_steps():
    # their latent regression |E_a(G(c, z)) − z| is in backward_G_alone, after which only
    # enc_c_opt and gen_opt step: the attribute encoders' weights get none of its gradient
    model = models.build("drit", image_size=32, **TINY)
    monet, photo = (tf.constant(x) for x in (images_at(32)[:2], images_at(32, seed=1)[:2]))
    with tf.GradientTape(persistent=True) as tape:
        _, parts = model.generator_loss((monet, photo), {}, True)
    attr = model.attr_monet.trainable_variables + model.attr_photo.trainable_variables
    stepped = model.gen_monet.trainable_variables + model.content_monet.trainable_variables
    from_latent = tape.gradient(parts["latent"], attr + stepped, unconnected_gradients="zero")
    assert float(parts["latent"]) > 0
    assert all(float(tf.reduce_max(tf.abs(g))) == 0.0 for g in from_latent[:len(attr)])
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in from_latent[len(attr):]) > 0
    from_all = tape.gradient(parts["g_total"], attr, unconnected_gradients="zero")  # their first update
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in from_all) > 0


def test_xla_step_updates_every_network_with_finite_losses(compiled):
    model = compiled["model"]
    assert set(compiled["first"]) == set(model.loss_names)
    assert all(np.isfinite(v) for v in compiled["first"].values())
    assert all(not np.array_equal(a, b) for a, b in zip(compiled["before"], compiled["after"]))
    # BCE at the start: the content discriminator is undecided (2 log 2), mode seeking is active
    assert compiled["first"]["d_content"] == pytest.approx(2 * np.log(2), rel=0.1)
    assert compiled["first"]["mode_seeking"] > 0
    steps = {p.name: int(p.optimizer.iterations) for p in model.players}
    assert steps == {"discriminator": 25, "content_discriminator": 50, "generator": 25}  # d_iter 2


def test_overfitting_four_images_lowers_the_reconstructions(compiled):
    # slower than UNIT's and MUNIT's: unit noise on the content codes and mode seeking, which
    # rewards diverse outputs, work against reconstruction (seen: self_recon -15 % in 25 steps)
    first = compiled["first"]
    last = {k: np.mean([h[k] for h in compiled["history"][-5:]]) for k in first}
    assert last["self_recon"] < 0.9 * first["self_recon"], (first, last)
    assert last["cross_cycle"] < first["cross_cycle"], (first, last)


def test_translator_save_and_load_give_identical_outputs_and_styles_differ(compiled, tmp_path):
    model, x = compiled["model"], images_at(32)[:2]
    assert_saved_translator_gives_identical_outputs(model, x, tmp_path)
    columns = [c.numpy() for c in model.sample_columns(x)]
    np.testing.assert_allclose(columns[0], model.translator(x).numpy(), atol=1e-6)  # style seed 0
    assert np.abs(columns[1] - columns[2]).mean() > 1e-5


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    def build():
        # Keras clips each TF replica's share of the gradient (see drit.py): compared unclipped
        model = models.build("drit", image_size=32, content_clipnorm=1e9, **TINY)
        model.noise = False  # each replica draws its own noise and codes: compared without them
        return model

    images = images_at(32, seed=5)
    assert_two_replicas_equal_one(build, (images[:2], images[2:4]))


def test_mixed_bfloat16_trains_with_float32_losses():
    assert_trains_in_mixed_bfloat16(lambda: models.build("drit", image_size=32, **TINY),
                                    lambda model: model.gen_monet.get_layer("gen_monet_up0_conv"), images_at(32))
