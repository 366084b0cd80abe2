"""U-GAT-IT: layers, one XLA-compiled step reused for overfitting and the ρ bounds, replicas,
save/load, mixed_bfloat16.

XLA compiles cost 10-30 s each on CPU, so the module compiles one train step (full model,
tiny widths, 32 px) and every test that trains uses it; other checks run eagerly.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import losses, models, optimizers
from gan_tpu.models.ugatit import min_discriminator_size, ugatit_discriminator
from gan_tpu.models.ugatit_layers import ILN, AdaLIN, CAMAttention
from tests.helpers import (assert_saved_translator_gives_identical_outputs, assert_trains_in_mixed_bfloat16,
                           assert_two_replicas_equal_one, images_at, overfit)

# 32 px: the 7-layer global discriminator needs 96 px, so tests use 5 (global) and 4 (local)
TINY = dict(ngf=8, ndf=4, n_blocks=1, global_layers=5, local_layers=4)


def _rhos(model):
    return [v for net in model.networks.values() for v in net.trainable_variables if v.path.endswith("rho")]


@pytest.fixture(scope="module")
def compiled():
    """The full model, its XLA step, the first step's logs and weights, and 50 overfitting steps."""
    tf.keras.utils.set_random_seed(3)
    model = models.build("ugatit", image_size=32, lr=1e-3, **TINY)
    model.compile(jit_compile=True)
    images = images_at(32)
    batch = (images[:4], images[4:])
    return dict(model=model, batch=batch, **overfit(model, batch))


def test_registered_with_the_authors_defaults():
    for name in ("ugatit", "ugatit_light"):
        d = models.defaults(name)
        assert (d["adv_weight"], d["cycle_weight"], d["identity_weight"], d["cam_weight"]) == (1, 10, 10, 1000)
        assert (d["lr"], d["beta_1"], d["beta_2"], d["weight_decay"]) == (1e-4, 0.5, 0.999, 1e-4)
        assert (d["global_layers"], d["local_layers"], d["n_blocks"]) == (7, 5, 4)
    assert models.build("ugatit_light", image_size=32, **TINY).light
    # the authors' decay_flag (on by default): lr -= lr / (iteration // 2) each step past
    # half-way, so both rates fall linearly from lr at iteration/2 to 0 at the end
    model = models.build("ugatit", image_size=32, **TINY)
    model.set_total_steps(1000)
    lr, half = 1e-4, 500
    authors = [lr - lr / half * max(0, step - half) for step in (0, 500, 501, 750, 1000)]
    for opt in (model.g_optimizer, model.d_optimizer):
        got = []
        for step in (0, 500, 501, 750, 1000):
            opt.iterations.assign(step)
            got.append(float(opt.learning_rate))
        np.testing.assert_allclose(got, authors, rtol=1e-5, atol=1e-12)
    with pytest.raises(ValueError, match=r"model.global_layers=7 needs image_size >= 96, got 32"):
        models.build("ugatit", image_size=32, ngf=4, ndf=4, n_blocks=1)


def test_networks_shapes_and_light_is_smaller():
    full = models.build("ugatit", image_size=32, **TINY)
    light = models.build("ugatit_light", image_size=32, **TINY)
    assert [tuple(o.shape) for o in full.g_monet.outputs] == [(None, 32, 32, 3), (None, 2)]
    assert tuple(full.translator.output.shape) == (None, 32, 32, 3)
    # full: MLP over the flattened 8x8x32 bottleneck; light: over its 32-d average
    assert full.g_monet.count_params() - light.g_monet.count_params() == (8 * 8 * 32 - 32) * 32
    d = ugatit_discriminator(256, ndf=4, n_layers=7)
    assert [tuple(o.shape) for o in d.outputs] == [(None, 6, 6, 1), (None, 2)]  # global, 256 px
    assert tuple(ugatit_discriminator(256, ndf=4, n_layers=5).outputs[0].shape) == (None, 30, 30, 1)
    assert (min_discriminator_size(7), min_discriminator_size(5)) == (96, 24)
    assert sum(isinstance(layer, keras.layers.SpectralNormalization) for layer in d.layers) == 7


def test_layer_instance_norms_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (2, 5, 5, 4)).astype(np.float32)
    x_in = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    x_ln = (x - x.mean((1, 2, 3), keepdims=True)) / np.sqrt(x.var((1, 2, 3), keepdims=True) + 1e-5)
    gamma, beta = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    ada = AdaLIN()
    out = ada([x, gamma, beta]).numpy()
    np.testing.assert_allclose(out, x_in * gamma[:, None, None] + beta[:, None, None], rtol=1e-4, atol=1e-4)
    ada.rho.assign([0.0, 0.25, 0.5, 1.0])
    mix = ada.rho.numpy() * x_in + (1 - ada.rho.numpy()) * x_ln
    np.testing.assert_allclose(ada([x, gamma, beta]).numpy(), mix * gamma[:, None, None] + beta[:, None, None],
                               rtol=1e-4, atol=1e-4)
    iln = ILN()
    np.testing.assert_allclose(iln(x).numpy(), x_ln, rtol=1e-4, atol=1e-4)  # ρ starts at 0: layer norm
    assert float(AdaLIN().rho_init) == 1.0 and float(ILN().rho_init) == 0.0


def test_cam_attention_logits_and_rescaled_features():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 4)).astype(np.float32)
    cam = CAMAttention()
    logits, features = cam(x)
    w = cam.gap_kernel.numpy()[:, 0]
    np.testing.assert_allclose(logits.numpy(), np.stack([x.mean((1, 2)) @ w, x.max((1, 2)) @ w], -1), rtol=1e-5)
    np.testing.assert_allclose(features.numpy(), np.concatenate([x * w, x * w], -1), rtol=1e-6)
    sn = CAMAttention(spectral_norm=True, shared=False)
    logits, _ = sn(x)
    w_gmp = sn.gmp_kernel.numpy()[:, 0]
    np.testing.assert_allclose(logits.numpy()[:, 1], x.max((1, 2)) @ (w_gmp / np.linalg.norm(w_gmp)), rtol=1e-5)
    assert float(losses.bce_with_logits(tf.constant([0.0, 2.0]), 1.0)) == pytest.approx(
        np.mean(np.log1p(np.exp(-np.array([0.0, 2.0])))), rel=1e-6)


def test_rho_stays_in_unit_interval_under_a_huge_learning_rate():
    ada, iln = AdaLIN(), ILN()
    x = tf.random.normal((2, 4, 4, 3))
    gamma = beta = tf.ones((2, 3))
    opt = keras.optimizers.SGD(learning_rate=1e6)
    ada.build([x.shape, gamma.shape, beta.shape])
    iln.build(x.shape)
    for sign in (1.0, -1.0, 1.0):  # push ρ hard both ways
        with tf.GradientTape() as tape:
            loss = sign * tf.reduce_sum(ada([x, gamma, beta]) * x) + sign * tf.reduce_sum(iln(x) * x)
        variables = [ada.rho, iln.rho]
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        for rho in variables:
            assert np.all((rho.numpy() >= 0.0) & (rho.numpy() <= 1.0))


def test_xla_step_updates_every_network_with_finite_float32_losses(compiled):
    model = compiled["model"]
    assert set(compiled["first"]) == set(model.loss_names)
    assert all(np.isfinite(v) for v in compiled["first"].values())
    assert all(not np.array_equal(a, b) for a, b in zip(compiled["before"], compiled["after"]))
    # a CAM loss of 4 x log 2 x 1000 at the start: the classifiers begin undecided
    assert compiled["first"]["cam"] == pytest.approx(4000 * np.log(2), rel=0.05)
    assert compiled["iterations"] == [50, 50]  # G, D: counted before later tests step the model


def test_overfitting_four_images_lowers_cycle_and_identity(compiled):
    first, last = compiled["first"], compiled["history"][-1]
    assert last["cycle"] < 0.7 * first["cycle"]
    assert last["identity"] < 0.7 * first["identity"]


def test_rho_stays_in_unit_interval_in_the_compiled_step_with_a_huge_learning_rate(compiled):
    model = compiled["model"]
    rhos = _rhos(model)
    assert len(rhos) == 2 * (2 * TINY["n_blocks"] + 2)  # AdaLIN x2 per block, ILN x2, per generator
    # the rate is the base's LR schedule, lr x the fraction in its decay-shape variable (read
    # by the compiled step): 1e-3 x 1e5 = 100, so Adam moves each ρ by about ±100
    optimizers.schedule_of(model.g_optimizer).segment.assign([1e9, 1e5, 2e9])
    compiled["step"](compiled["batch"])
    values = np.concatenate([v.numpy() for v in rhos])
    assert np.all((values >= 0.0) & (values <= 1.0))
    assert np.any(values == 0.0) or np.any(values == 1.0)  # the constraint was what held them


def test_translator_save_and_load_give_identical_outputs(tmp_path):
    assert_saved_translator_gives_identical_outputs(models.build("ugatit_light", image_size=32, **TINY),
                                                    images_at(32)[:2], tmp_path)


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    # No batch statistics, no randomness. Spectral norm's power iteration reads only the
    # kernel (identical on every replica), so its u vectors agree too.
    images = images_at(32, seed=5)
    one, two = assert_two_replicas_equal_one(lambda: models.build("ugatit_light", image_size=32, **TINY),
                                             (images[:2], images[2:4]))
    for a, b in zip(*([v.numpy() for net in m.discriminators for v in net.non_trainable_variables] for m in (one, two))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_mixed_bfloat16_trains_with_float32_losses():
    model, _ = assert_trains_in_mixed_bfloat16(lambda: models.build("ugatit_light", image_size=32, **TINY),
                                               lambda model: model.g_monet.get_layer("g_monet_dec0_norm1"),
                                               images_at(32))
    assert model.g_monet.get_layer("g_monet_dec0_norm1").rho.dtype == "float32"
