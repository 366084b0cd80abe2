"""Pixel scaling, in one place: uint8 0-255 <-> float [-1, 1], the models' range.

`to_float` and `to_uint8` are TensorFlow ops (tf.data pipelines, sample grids); `to_pixels`
is keras.ops, so it also runs inside `jax.jit` on Keras' JAX backend; both of those round
and clip by one rule (`_scaled`). Keras is imported only inside `to_pixels`: importing
`gan_tpu.data` must not fix the Keras backend.
"""
from __future__ import annotations

import tensorflow as tf


def _scaled(images, round_, clip):
    """float [-1, 1] -> 0-255, rounded to the nearest integer and clipped."""
    return clip(round_((images + 1.0) * 127.5), 0.0, 255.0)


def to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(_scaled(tf.cast(image, tf.float32), tf.round, tf.clip_by_value), tf.uint8)


def to_pixels(images):
    """float [-1, 1] -> float32 0-255, rounded and clipped (keras.ops: either backend).

    Float, not uint8: TPUs have no uint8 arithmetic; the cast happens on the host.
    """
    from keras import ops

    return _scaled(ops.cast(images, "float32"), ops.round, ops.clip)
