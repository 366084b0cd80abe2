"""U-GAT-IT's layers (Kim et al. 2020): layer-instance norms and class-activation-map attention.

Backend-free (Keras layers, keras.ops) and registered, so a `.keras` file of a generator that
uses them loads back. Statistics are taken in float32 whatever the layer's compute dtype.
"""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu.layers import weight_init


@keras.saving.register_keras_serializable(package="gan_tpu")
class UnitInterval(keras.constraints.Constraint):
    """Clip a variable into [0, 1]; Keras optimizers apply it after every update (the gate ρ)."""

    def __call__(self, w):
        return ops.clip(w, 0.0, 1.0)


def _layer_instance_mix(x, rho, epsilon):
    """ρ·IN(x) + (1 − ρ)·LN(x), in float32 (NHWC; IN over H, W; LN over H, W, C)."""
    x = ops.cast(x, "float32")
    in_mean = ops.mean(x, axis=(1, 2), keepdims=True)
    in_var = ops.var(x, axis=(1, 2), keepdims=True)
    ln_mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    ln_var = ops.var(x, axis=(1, 2, 3), keepdims=True)
    x_in = (x - in_mean) * ops.rsqrt(in_var + epsilon)
    x_ln = (x - ln_mean) * ops.rsqrt(ln_var + epsilon)
    rho = ops.cast(rho, "float32")
    return rho * x_in + (1.0 - rho) * x_ln


@keras.saving.register_keras_serializable(package="gan_tpu")
class ILN(keras.layers.Layer):
    """Layer-instance norm with learned per-channel γ, β and gate ρ (up-sampling blocks).

    ρ starts at `rho_init` (0: pure layer norm, as in the paper) and stays in [0, 1].
    """

    def __init__(self, epsilon: float = 1e-5, rho_init: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.rho_init = float(rho_init)

    def build(self, input_shape):
        c = input_shape[-1]
        self.rho = self.add_weight(shape=(c,), initializer=keras.initializers.Constant(self.rho_init),
                                   constraint=UnitInterval(), name="rho")
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta")

    def call(self, x):
        out = _layer_instance_mix(x, self.rho, self.epsilon)
        out = out * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "rho_init": self.rho_init}


@keras.saving.register_keras_serializable(package="gan_tpu")
class AdaLIN(keras.layers.Layer):
    """Adaptive layer-instance norm: `AdaLIN([x, gamma, beta])` = γ·(ρ·IN(x) + (1−ρ)·LN(x)) + β.

    γ, β are [B, C] (from the generator's MLP); ρ is learned per channel, starts at
    `rho_init` (1: pure instance norm, as in the paper) and stays in [0, 1].
    """

    def __init__(self, epsilon: float = 1e-5, rho_init: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.rho_init = float(rho_init)

    def build(self, input_shape):
        c = input_shape[0][-1]
        self.rho = self.add_weight(shape=(c,), initializer=keras.initializers.Constant(self.rho_init),
                                   constraint=UnitInterval(), name="rho")

    def call(self, inputs):
        x, gamma, beta = inputs
        out = _layer_instance_mix(x, self.rho, self.epsilon)
        gamma = ops.cast(gamma, "float32")[:, None, None, :]
        beta = ops.cast(beta, "float32")[:, None, None, :]
        return ops.cast(out * gamma + beta, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "rho_init": self.rho_init}


@keras.saving.register_keras_serializable(package="gan_tpu")
class CAMAttention(keras.layers.Layer):
    """Class-activation-map attention: `logits, features = CAMAttention()(x)`.

    A bias-free dense layer w (C -> 1) scores the global-average-pooled and the
    global-max-pooled features: logits [B, 2] (the auxiliary classifier η). Its weights
    rescale the feature maps channel by channel, x·w, and the two attended maps are
    concatenated: features [B, H, W, 2C] (the model follows with a 1x1 conv).

    `shared=True` uses one w for both poolings (the issue's and the authors' TensorFlow
    code); False gives each its own (the authors' PyTorch code). `spectral_norm=True`
    (discriminators) divides w by its spectral norm, which for a C x 1 matrix is exactly
    its L2 norm: no power iteration, no state.
    """

    def __init__(self, shared: bool = True, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.shared = bool(shared)
        self.spectral_norm = bool(spectral_norm)

    def build(self, input_shape):
        c = input_shape[-1]
        self.gap_kernel = self.add_weight(shape=(c, 1), initializer=weight_init(), name="gap_kernel")
        self.gmp_kernel = None if self.shared else \
            self.add_weight(shape=(c, 1), initializer=weight_init(), name="gmp_kernel")

    def _weight(self, kernel):
        w = ops.cast(kernel, "float32")
        if self.spectral_norm:
            w = w / ops.sqrt(ops.sum(ops.square(w)) + 1e-12)
        return w

    def call(self, x):
        x32 = ops.cast(x, "float32")
        w_gap = self._weight(self.gap_kernel)
        w_gmp = w_gap if self.shared else self._weight(self.gmp_kernel)
        gap_logit = ops.matmul(ops.mean(x32, axis=(1, 2)), w_gap)
        gmp_logit = ops.matmul(ops.max(x32, axis=(1, 2)), w_gmp)
        logits = ops.concatenate([gap_logit, gmp_logit], axis=-1)
        features = ops.concatenate([x32 * w_gap[:, 0], x32 * w_gmp[:, 0]], axis=-1)
        return logits, ops.cast(features, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2), (*input_shape[:-1], 2 * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "shared": self.shared, "spectral_norm": self.spectral_norm}
