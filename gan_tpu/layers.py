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


# --------------------------------------------------------------------------- upsampling
UPSAMPLE_MODES = ("transpose", "resize", "antialias")
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)  # CUT's (and StyleGAN's) binomial filter, per axis


@keras.saving.register_keras_serializable(package="gan_tpu")
class BlurUpsample2D(keras.layers.Layer):
    """x2 upsampling by the [1,3,3,1] blur, as CUT's anti-aliased `Upsample` (NHWC).

    CUT stuffs zeros between pixels, pads by replication and filters with
    [1,3,3,1]x[1,3,3,1] (gain 4). Zero-stuffed, only every other tap meets a pixel, so each
    output pixel is one of two 2-tap phases: even = (1·x[i-1] + 3·x[i]) / 4, odd =
    (3·x[i] + 1·x[i+1]) / 4. Computed that way (slices, no strided conv): both phases
    weigh to 1, so a flat image stays flat, with no period-2 pattern for a later conv to
    amplify. (The result equals bilinear x2 with half-pixel centres and clamped edges.)
    """

    def call(self, x):
        return self._along(self._along(x, 1), 2)

    @staticmethod
    def _along(x, axis):
        t0, t1, t2, t3 = BLUR_TAPS
        gain = sum(BLUR_TAPS) / 2.0
        pad = [[0, 0]] * 4
        pad[axis] = [1, 1]
        x_pad = ops.pad(x, pad, mode="symmetric")  # symmetric by 1 = replicate the edge

        def part(start, stop):
            index = [slice(None)] * 4
            index[axis] = slice(start, stop)
            return x_pad[tuple(index)]

        before, here, after = part(0, -2), part(1, -1), part(2, None)
        even = (t3 * before + t1 * here) / gain
        odd = (t2 * here + t0 * after) / gain
        both = ops.stack([even, odd], axis=axis + 1)  # [.., n, 2, ..]: phases interleave on reshape
        shape = [-1] + [int(d) for d in x.shape[1:]]
        shape[axis] *= 2
        return ops.reshape(both, shape)

    def compute_output_shape(self, shape):
        double = lambda d: None if d is None else 2 * d  # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), shape[3])


def check_upsample(mode: str) -> str:
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")
    return mode


def upsample_conv(x, filters: int, *, mode: str, name: str, transpose_kernel: int = 4,
                  use_bias: bool = False, reflect: bool = False):
    """x2 upsampling to `filters` channels, one of `UPSAMPLE_MODES`.

    "transpose": a `transpose_kernel` stride-2 transposed conv (the starter notebook's; its
    uneven kernel overlap leaves a checkerboard, Odena et al. 2016); "resize": nearest x2,
    then a 3x3 conv; "antialias": `BlurUpsample2D`, then a 3x3 conv (CUT's default).
    `reflect` pads the 3x3 conv by reflection instead of zeros. Layers are named
    `{name}_conv` (and `{name}_resize` / `{name}_blur`, `{name}_pad`).
    """
    init = weight_init()
    if check_upsample(mode) == "transpose":
        return keras.layers.Conv2DTranspose(filters, transpose_kernel, strides=2, padding="same",
                                            use_bias=use_bias, kernel_initializer=init, name=f"{name}_conv")(x)
    if mode == "resize":
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    else:
        x = BlurUpsample2D(name=f"{name}_blur")(x)
    if reflect:
        x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, 3, padding="valid" if reflect else "same", use_bias=use_bias,
                               kernel_initializer=init, name=f"{name}_conv")(x)
