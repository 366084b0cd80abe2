"""Backend-free building blocks shared by the models (Keras 3 layers and keras.ops only)."""
from __future__ import annotations

import keras
from keras import ops


def weight_init(stddev: float = 0.02) -> keras.initializers.Initializer:
    """N(0, 0.02), the DCGAN/CycleGAN convention."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev)


def instance_norm(name: str | None = None) -> keras.layers.Layer:
    """Instance normalization: one group per channel (tensorflow-addons is retired)."""
    return keras.layers.GroupNormalization(
        groups=-1, epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
        name=name,
    )


def norm_layer(kind: str, name: str | None = None) -> keras.layers.Layer:
    """"instance", "layer", "batch" (synchronized across replicas) or "none".

    "layer" normalizes over H, W and C per image with a per-channel scale and offset (one
    group), as layer norm in convolutional GANs does: Keras' LayerNormalization over
    H, W, C would learn a per-pixel affine, tying the network to its training size.
    """
    if kind == "instance":
        return instance_norm(name)
    if kind == "layer":
        return keras.layers.GroupNormalization(groups=1, epsilon=1e-5, name=name)
    if kind == "batch":  # JAX (DataParallel/GSPMD) computes batch statistics over the global batch anyway
        return keras.layers.BatchNormalization(synchronized=keras.backend.backend() == "tensorflow", name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise ValueError(f"unknown norm {kind!r}")


@keras.saving.register_keras_serializable(package="gan_tpu")
class ReflectionPadding2D(keras.layers.Layer):
    """Reflect-pad height and width by `padding` pixels (NHWC)."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        p = 2 * self.padding
        grow = lambda d: None if d is None else d + p  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
