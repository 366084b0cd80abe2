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


def _sp(x):
    return np.log1p(np.exp(x))  # softplus


LOGITS = np.array([[1.5, -0.25], [-3.0, 0.0]])
MU = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]])
LOG_VAR = np.array([[0.0, -0.5, 1.0], [0.3, -2.0, 0.1]])


def _as(x, dtype):
    return tf.constant(np.asarray(x), dtype)


@pytest.mark.parametrize("dtype,tol", [(tf.float32, 1e-6), (tf.float16, 2e-3), (tf.bfloat16, 2e-2)])
def test_each_loss_matches_numpy_and_is_float32_whatever_its_inputs(dtype, tol):
    """The shared losses against hand-written NumPy; half-precision inputs (mixed precision)
    give float32 results, off only by the inputs' own rounding."""
    soft = np.array([[1.0, 0.0], [0.5, 1.0]])  # a tensor of targets, as ArtGAN's one-hots
    expected = {
        "bce, label 1": np.mean(_sp(-LOGITS)),
        "bce, label 0": np.mean(_sp(LOGITS)),
        "bce, tensor labels": np.mean(soft * _sp(-LOGITS) + (1 - soft) * _sp(LOGITS)),
        "lsgan, label 1": np.mean((LOGITS - 1.0) ** 2),
        "lsgan, label 0": np.mean(LOGITS ** 2),
        "hinge D": np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)),
        "wgan critic": FAKE.mean() - REAL.mean(),
        "hinge/wgan G": -FAKE.mean(),
        "full KL": np.mean(np.sum(0.5 * (np.exp(LOG_VAR) + MU ** 2 - 1 - LOG_VAR), axis=-1)),
        "unit-variance KL": np.mean(MU ** 2),
    }
    got = {
        "bce, label 1": losses.bce_with_logits(_as(LOGITS, dtype), 1.0),
        "bce, label 0": losses.bce_with_logits(_as(LOGITS, dtype), 0.0),
        "bce, tensor labels": losses.bce_with_logits(_as(LOGITS, dtype), _as(soft, tf.float32)),
        "lsgan, label 1": losses.least_squares(_as(LOGITS, dtype), 1.0),
        "lsgan, label 0": losses.least_squares(_as(LOGITS, dtype), 0.0),
        "hinge D": losses.hinge_discriminator(_as(REAL, dtype), _as(FAKE, dtype)),
        "wgan critic": losses.wasserstein_critic(_as(REAL, dtype), _as(FAKE, dtype)),
        "hinge/wgan G": losses.negative_mean(_as(FAKE, dtype)),
        "full KL": losses.kl_standard_normal(_as(MU, dtype), _as(LOG_VAR, dtype)),
        "unit-variance KL": losses.kl_unit_variance(_as(MU, dtype)),
    }
    for name, value in got.items():
        assert value.dtype == tf.float32, name
        assert float(value) == pytest.approx(expected[name], rel=tol, abs=tol), name
    # the halved D losses and the G losses the CycleGAN family selects by name are these
    real, fake = _as(REAL, dtype), _as(FAKE, dtype)
    assert float(losses.discriminator_loss("hinge", real, fake)) == pytest.approx(0.5 * expected["hinge D"], rel=tol)
    assert float(losses.generator_loss("lsgan", fake)) == pytest.approx(np.mean((FAKE - 1) ** 2), rel=tol)


def test_kl_of_the_prior_itself_is_zero_and_l2_decay_is_half_weight_sum_of_squares():
    assert float(losses.kl_standard_normal(np.zeros((3, 2)), np.zeros((3, 2)))) == 0.0
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, dtype="mixed_float16")])
    net.layers[0].kernel.assign(np.arange(6.0).reshape(2, 3))
    net.layers[0].bias.assign([1.0, -2.0, 0.5])
    decay = losses.l2_decay([net, net], 0.1)  # each network's weights count once per listing
    assert decay.dtype == tf.float32
    assert float(decay) == pytest.approx(0.5 * 0.1 * 2 * (55.0 + 5.25))
    assert losses.l2_decay([net], 0.0) == 0.0  # off: no graph at all
