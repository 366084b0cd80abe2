"""Anti-aliased x2 resampling (Zhang 2019, "Making convolutional networks shift-invariant
again") with CUT's fixed binomial filters, no learned weights; keras.ops only, static shapes.

- `BlurDownsample2D`: reflect-pad 1, then the [1, 2, 1] ⊗ [1, 2, 1] / 16 filter per channel
  at stride 2 (CUT's `Downsample`, filt_size 3; a stride-1 conv goes before it).
- `BlurUpsample2D`: CUT's `Upsample`, a transposed conv with the [1, 3, 3, 1] ⊗ [1, 3, 3, 1]
  filter (× 4) after a one-pixel replicate pad. Zero-stuffed, only every other tap meets a
  pixel, so each output pixel mixes its two nearest inputs 3:1 along each axis, edges
  replicated: y[2i] = ¼·x[i−1] + ¾·x[i], y[2i+1] = ¾·x[i] + ¼·x[i+1] (bilinear x2 with
  half-pixel centres and clamped edges). Computed that way (two taps per axis, interleaved),
  with no transposed conv over mostly zeros; both phases weigh to 1, so a flat image stays
  flat, with no period-2 pattern for a later conv to amplify.

Each class is registered once, as "gan_tpu>BlurDownsample2D" / "gan_tpu>BlurUpsample2D", the
names `.keras` files saved before these layers moved here (from gan_tpu.layers and
gan_tpu.models.antialias, which computed the same values) carry, so those load unchanged.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="gan_tpu")
class BlurDownsample2D(keras.layers.Layer):
    """Halve height and width: reflect pad 1, [1, 2, 1]² / 16 per channel, stride 2 (NHWC)."""

    def call(self, x):
        channels = int(x.shape[-1])
        taps = np.array([1.0, 2.0, 1.0])
        kernel = np.outer(taps, taps) / 16.0
        kernel = np.tile(kernel[:, :, None, None], (1, 1, channels, 1))
        x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        return ops.depthwise_conv(x, ops.cast(kernel, x.dtype), strides=2, padding="valid")

    def compute_output_shape(self, shape):
        half = lambda d: None if d is None else (d + 1) // 2  # noqa: E731
        return (shape[0], half(shape[1]), half(shape[2]), shape[3])


def _upsample_axis(x, axis: int):
    """Double `axis` of x (NHWC, axis 1 or 2) with the 3:1 two-tap rule, edges replicated."""
    n = int(x.shape[axis])
    take = lambda start, stop: x[(slice(None),) * axis + (slice(start, stop),)]  # noqa: E731
    before = ops.concatenate([take(0, 1), take(0, n - 1)], axis=axis)  # x[i-1], x[-1] := x[0]
    after = ops.concatenate([take(1, n), take(n - 1, n)], axis=axis)   # x[i+1], x[n] := x[n-1]
    even = 0.25 * before + 0.75 * x
    odd = 0.75 * x + 0.25 * after
    pairs = ops.stack([even, odd], axis=axis + 1)  # (..., n, 2, ...): phases interleave on reshape
    shape = [-1] + [int(d) for d in x.shape[1:]]
    shape[axis] = 2 * n
    return ops.reshape(pairs, shape)


@keras.saving.register_keras_serializable(package="gan_tpu")
class BlurUpsample2D(keras.layers.Layer):
    """Double height and width with CUT's fixed [1, 3, 3, 1] filter (NHWC)."""

    def call(self, x):
        return _upsample_axis(_upsample_axis(x, 1), 2)

    def compute_output_shape(self, shape):
        double = lambda d: None if d is None else 2 * d  # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), shape[3])
