"""Adversarial and reconstruction losses as pure functions in keras.ops (float32 results).

Each returns the mean over the (per-replica) batch; the trainer scales by the replica count.
"""
from __future__ import annotations

from keras import ops

ADVERSARIAL = ("bce", "lsgan")


def _f32(x):
    return ops.cast(x, "float32")


def _bce_logits(target: float, logits):
    logits = _f32(logits)
    labels = ops.full_like(logits, target)
    return ops.mean(ops.maximum(logits, 0.0) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits))))


def discriminator_loss(kind: str, real, fake, real_label: float = 1.0):
    """D's loss on real and fake logits, halved as in Zhu et al. (D learns at half G's rate).

    `real_label` < 1 gives one-sided label smoothing.
    """
    if kind == "bce":
        return 0.5 * (_bce_logits(real_label, real) + _bce_logits(0.0, fake))
    if kind == "lsgan":
        return 0.5 * (ops.mean(ops.square(_f32(real) - real_label)) + ops.mean(ops.square(_f32(fake))))
    raise ValueError(f"unknown adversarial loss {kind!r}")


def generator_loss(kind: str, fake):
    """G's adversarial loss: make D call its fakes real."""
    if kind == "bce":
        return _bce_logits(1.0, fake)
    if kind == "lsgan":
        return ops.mean(ops.square(_f32(fake) - 1.0))
    raise ValueError(f"unknown adversarial loss {kind!r}")


def l1(a, b):
    """Mean absolute error (cycle-consistency and identity losses)."""
    return ops.mean(ops.abs(_f32(a) - _f32(b)))
