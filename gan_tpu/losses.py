"""Every model's adversarial, KL, decay and reconstruction losses, each written once as a pure
function in keras.ops (float32 results, whatever the inputs' dtype).

Each returns the mean over the (per-replica) batch; the trainer scales by the replica count.
"""
from __future__ import annotations

from keras import ops

ADVERSARIAL = ("bce", "lsgan", "hinge", "wgan-gp")


def _f32(x):
    return ops.cast(x, "float32")


def bce_with_logits(logits, target):
    """Mean sigmoid cross-entropy of `logits` against `target` (a constant label, or a tensor
    of labels shaped like the logits), in the stable form max(x, 0) − x·t + log(1 + e^−|x|)."""
    logits = _f32(logits)
    return ops.mean(ops.maximum(logits, 0.0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits))))


def least_squares(x, target: float):
    """mean((x − target)²): LSGAN's loss of logits against a label (Mao et al. 2017)."""
    return ops.mean(ops.square(_f32(x) - target))


def hinge_discriminator(real, fake):
    """The hinge loss of D: E[relu(1 − D(real))] + E[relu(1 + D(fake))] (not halved)."""
    return ops.mean(ops.relu(1.0 - _f32(real))) + ops.mean(ops.relu(1.0 + _f32(fake)))


def wasserstein_critic(real, fake):
    """The WGAN critic's loss: E[D(fake)] − E[D(real)]."""
    return ops.mean(_f32(fake)) - ops.mean(_f32(real))


def negative_mean(fake):
    """−E[D(G(z))]: G's loss against a hinge or Wasserstein critic."""
    return -ops.mean(_f32(fake))


def discriminator_loss(kind: str, real, fake, real_label: float = 1.0):
    """D's loss on real and fake logits.

    `bce`, `lsgan` and `hinge` are halved as in Zhu et al. (D learns at half G's rate);
    `real_label` < 1 gives one-sided label smoothing (bce, lsgan only). `wgan-gp` is the
    critic's −E[D(real)] + E[D(fake)], not halved; its gradient penalty needs the critic
    itself, so the model adds `gradient_penalty(...)`.
    """
    if kind in ("hinge", "wgan-gp") and real_label != 1.0:
        raise ValueError(f"label smoothing applies to bce and lsgan, not {kind!r}")
    if kind == "bce":
        return 0.5 * (bce_with_logits(real, real_label) + bce_with_logits(fake, 0.0))
    if kind == "lsgan":
        return 0.5 * (least_squares(real, real_label) + least_squares(fake, 0.0))
    if kind == "hinge":
        return 0.5 * hinge_discriminator(real, fake)
    if kind == "wgan-gp":
        return wasserstein_critic(real, fake)
    raise ValueError(f"unknown adversarial loss {kind!r}")


def generator_loss(kind: str, fake):
    """G's adversarial loss: make D call its fakes real."""
    if kind == "bce":
        return bce_with_logits(fake, 1.0)
    if kind == "lsgan":
        return least_squares(fake, 1.0)
    if kind in ("hinge", "wgan-gp"):
        return negative_mean(fake)
    raise ValueError(f"unknown adversarial loss {kind!r}")


def kl_standard_normal(mu, log_var):
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the code's last axis, averaged over the rest."""
    mu, log_var = _f32(mu), _f32(log_var)
    return ops.mean(-0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=-1))


def kl_unit_variance(mu):
    """KL(N(μ, I) ‖ N(0, I)) without its ½ and per element: mean(μ²), UNIT's authors' form."""
    return ops.mean(ops.square(_f32(mu)))


def l2_decay(networks, weight: float):
    """0.5·weight·Σw² over the networks' trainable weights: PyTorch Adam's `weight_decay`."""
    if not weight:
        return 0.0
    return 0.5 * weight * sum(ops.sum(ops.square(_f32(v))) for net in networks for v in net.trainable_variables)


def gradient_penalty(critic, real, fake, *, weight: float = 10.0, seed=None):
    """WGAN-GP's penalty weight · E[(‖∇D(x̂)‖₂ − 1)²] (Gulrajani et al. 2017), float32.

    x̂ = real + ε·(fake − real) with one ε ~ U[0, 1) per image. `critic` maps images to
    scores of any shape (B, ...): a PatchGAN's map is averaged to one score per image, so
    the norm is that of the per-image critic's gradient over all H·W·C inputs. `seed` is
    passed to `keras.random.uniform` (a `keras.random.SeedGenerator` inside compiled code).
    The gradient comes from `gan_tpu.backends.input_gradient` and stays differentiable, so
    the penalty trains the critic. Per-image independence needs a critic without batch
    statistics (instance/layer norm or none, not batch norm).
    """
    import keras

    from gan_tpu.backends import input_gradient

    real = ops.convert_to_tensor(real)
    fake = ops.cast(fake, real.dtype)
    eps = keras.random.uniform((ops.shape(real)[0],) + (1,) * (len(real.shape) - 1),
                               dtype=real.dtype, seed=seed)
    mixed = real + eps * (fake - real)

    def per_image(x):
        score = _f32(critic(x))
        return ops.mean(ops.reshape(score, (ops.shape(score)[0], -1)), axis=1)

    grads = _f32(input_gradient(per_image, mixed))
    grads = ops.reshape(grads, (ops.shape(grads)[0], -1))
    norm = ops.sqrt(ops.sum(ops.square(grads), axis=1) + 1e-12)  # finite gradient at 0
    return weight * ops.mean(ops.square(norm - 1.0))


def l1(a, b):
    """Mean absolute error (cycle-consistency and identity losses)."""
    return ops.mean(ops.abs(_f32(a) - _f32(b)))
