"""BigGAN's building blocks (Brock et al. 2019), backend-free Keras layers.

Small custom layers only where Keras has none (each serializable, so `generator.keras`
reloads): a latent chunk, conditional batch norm's modulation, SAGAN attention's product
and its zero-initialised residual gate.
The blocks themselves are built from standard layers in `biggan.py`.
"""
from __future__ import annotations

import keras
from keras import ops

_SERIALIZABLE = keras.saving.register_keras_serializable(package="gan_tpu.biggan")


@_SERIALIZABLE
class LatentChunk(keras.layers.Layer):
    """z[:, start:stop]: one block's share of a hierarchical latent."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, z):
        return z[:, self.start:self.stop]

    def compute_output_shape(self, shape):
        return (shape[0], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@_SERIALIZABLE
class Modulate(keras.layers.Layer):
    """Conditional batch norm's affine part: x * (1 + gain) + bias, gain and bias [B, C]
    from the block's latent chunk and the shared class embedding."""

    def call(self, inputs):
        x, gain, bias = inputs
        gain = ops.cast(gain, x.dtype)[:, None, None, :]
        bias = ops.cast(bias, x.dtype)[:, None, None, :]
        return x * (1.0 + gain) + bias

    def compute_output_shape(self, shapes):
        return shapes[0]


@_SERIALIZABLE
class Attend(keras.layers.Layer):
    """SAGAN's attention product: softmax(θ φᵀ) g over positions, θ at every position of the
    map, φ and g at the 2x max-pooled positions (Zhang et al. 2019, as BigGAN uses it).
    The softmax runs in float32 (bfloat16 logits over thousands of positions lose mass)."""

    def call(self, inputs):
        theta, phi, g = inputs
        b, h, w = ops.shape(theta)[0], theta.shape[1], theta.shape[2]
        theta = ops.reshape(theta, (b, h * w, theta.shape[-1]))
        phi = ops.reshape(phi, (b, phi.shape[1] * phi.shape[2], phi.shape[-1]))
        g = ops.reshape(g, (b, g.shape[1] * g.shape[2], g.shape[-1]))
        logits = ops.cast(ops.einsum("bqc,bkc->bqk", theta, phi), "float32")
        weights = ops.cast(ops.softmax(logits, axis=-1), g.dtype)
        return ops.reshape(ops.einsum("bqk,bkc->bqc", weights, g), (b, h, w, g.shape[-1]))

    def compute_output_shape(self, shapes):
        theta, _, g = shapes
        return (theta[0], theta[1], theta[2], g[-1])


@_SERIALIZABLE
class GatedResidual(keras.layers.Layer):
    """x + γ·o with a learned scalar γ that starts at 0: attention joins in gradually."""

    def build(self, shapes):
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, inputs):
        x, o = inputs
        return x + ops.cast(self.gamma, x.dtype) * o

    def compute_output_shape(self, shapes):
        return shapes[0]
