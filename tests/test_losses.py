"""Adversarial losses and the WGAN-GP gradient penalty against their formulas."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import losses

REAL, FAKE = np.array([[2.0, -1.0]]), np.array([[0.5, -3.0]])


def test_hinge_wgan_and_label_smoothing_match_their_formulas():
    real, fake = tf.constant(REAL, tf.float32), tf.constant(FAKE, tf.float32)
    hinge = 0.5 * (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)))
    assert float(losses.discriminator_loss("hinge", real, fake)) == pytest.approx(hinge)
    assert float(losses.generator_loss("hinge", fake)) == pytest.approx(1.25)
    assert float(losses.discriminator_loss("wgan-gp", real, fake)) == pytest.approx(FAKE.mean() - REAL.mean())
    assert float(losses.generator_loss("wgan-gp", fake)) == pytest.approx(1.25)
    smoothed = 0.5 * (np.mean((REAL - 0.9) ** 2) + np.mean(FAKE ** 2))
    assert float(losses.discriminator_loss("lsgan", real, fake, real_label=0.9)) == pytest.approx(smoothed)
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731
    bce = 0.5 * (np.mean(0.9 * sp(-REAL) + 0.1 * sp(REAL)) + np.mean(sp(FAKE)))
    assert float(losses.discriminator_loss("bce", real, fake, real_label=0.9)) == pytest.approx(bce, rel=1e-5)
    with pytest.raises(ValueError, match="label smoothing applies to bce and lsgan"):
        losses.discriminator_loss("wgan-gp", real, fake, real_label=0.9)
    for kind in losses.ADVERSARIAL:  # float32 out of bfloat16 logits
        assert losses.discriminator_loss(kind, tf.cast(real, tf.bfloat16), tf.cast(fake, tf.bfloat16)).dtype == tf.float32


def _critic():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((4, 4, 3), dtype="float64"),
        keras.layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float64"),
        keras.layers.Conv2D(1, 2, dtype="float64"),  # a 3x3 patch map, as a PatchGAN's
    ])


def _fd_gradient_norms(critic, x, h=1e-6):
    """Central finite differences of the per-image mean score, one coordinate at a time."""
    flat = x.reshape(len(x), -1)
    grads = np.zeros_like(flat)
    for j in range(flat.shape[1]):
        step = np.zeros_like(flat)
        step[:, j] = h
        up = critic((flat + step).reshape(x.shape)).numpy().reshape(len(x), -1).mean(1)
        down = critic((flat - step).reshape(x.shape)).numpy().reshape(len(x), -1).mean(1)
        grads[:, j] = (up - down) / (2 * h)
    return np.linalg.norm(grads, axis=1)


def test_gradient_penalty_matches_finite_differences_at_the_interpolates():
    critic = _critic()
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (3, 4, 4, 3))
    fake = rng.uniform(-1, 1, (3, 4, 4, 3))
    # an int seed draws the same eps every time: reproduce the interpolates x^
    eps = keras.random.uniform((3, 1, 1, 1), dtype="float64", seed=5).numpy()
    mixed = real + eps * (fake - real)
    norms = _fd_gradient_norms(critic, mixed)
    expected = 10.0 * np.mean((norms - 1.0) ** 2)
    got = losses.gradient_penalty(critic, tf.constant(real), tf.constant(fake), seed=5)
    assert got.dtype == tf.float32
    assert float(got) == pytest.approx(expected, rel=1e-4)
    # weight scales it; real == fake makes x^ = real whatever eps is
    same = losses.gradient_penalty(critic, tf.constant(real), tf.constant(real), weight=1.0)
    assert float(same) == pytest.approx(np.mean((_fd_gradient_norms(critic, real) - 1.0) ** 2), rel=1e-4)


def test_gradient_penalty_trains_the_critic():
    critic = _critic()
    real = tf.random.uniform((2, 4, 4, 3), -1, 1, dtype=tf.float64)
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, real, -real, seed=1)
    kernels = [v for v in critic.trainable_variables if "kernel" in v.path]  # biases leave ∇x alone
    grads = tape.gradient(penalty, kernels)
    assert len(kernels) == 2 and all(g is not None and np.any(g.numpy() != 0) for g in grads)
