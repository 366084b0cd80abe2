"""A fixed, documented "painterly" filter in TensorFlow ops: the paired truth of bench_quality.

The filter turns a photo into a painting-like picture in four deterministic steps, so a
translation model trained unpaired on photos vs filtered photos can be scored against the
exact painting each held-out photo should become:

1. Edge-preserving smoothing: two passes of a 5x5 bilateral filter (spatial sigma 2 px,
   range sigma 0.12 on a 0-1 scale) flatten texture but keep contours.
2. Colour quantization: each pixel moves 70 % of the way to the nearest of 12 fixed
   pastel colours (a Monet-like palette), so the palette shrinks.
3. Hue and saturation: hue +0.03 turns, saturation x0.85.
4. Canvas: a fixed woven-canvas pattern (two crossed sinusoids, 6 px period) and fixed
   diagonal brush-stroke noise (seed 0), +-6 levels, the same for every image.

Input and output: uint8 [N, H, W, 3].
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

PALETTE = np.array([
    [92, 120, 164], [140, 170, 206], [196, 214, 226], [86, 126, 96], [150, 180, 120],
    [206, 210, 156], [236, 206, 170], [222, 160, 132], [170, 120, 150], [120, 100, 140],
    [246, 236, 212], [70, 80, 90],
], np.float32) / 255.0
KERNEL, SPATIAL_SIGMA, RANGE_SIGMA, PASSES = 5, 2.0, 0.12, 2
PULL, HUE_SHIFT, SATURATION, CANVAS_LEVELS = 0.7, 0.03, 0.85, 6.0


def _bilateral(x: tf.Tensor) -> tf.Tensor:
    """One 5x5 bilateral pass on float images in [0, 1]."""
    r = KERNEL // 2
    padded = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    num = tf.zeros_like(x)
    den = tf.zeros_like(x[..., :1])
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = padded[:, r + dy:r + dy + h, r + dx:r + dx + w, :]
            spatial = np.exp(-(dy * dy + dx * dx) / (2 * SPATIAL_SIGMA ** 2))
            diff = tf.reduce_sum(tf.square(shifted - x), -1, keepdims=True)
            weight = spatial * tf.exp(-diff / (2 * RANGE_SIGMA ** 2))
            num += weight * shifted
            den += weight
    return num / den


def _quantize(x: tf.Tensor) -> tf.Tensor:
    palette = tf.constant(PALETTE)
    dist = tf.reduce_sum(tf.square(x[..., None, :] - palette), -1)
    nearest = tf.gather(palette, tf.argmin(dist, -1))
    return x + PULL * (nearest - x)


def canvas(height: int, width: int) -> np.ndarray:
    """The fixed canvas texture, float [H, W, 1] in about [-1, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    weave = 0.5 * (np.sin(2 * np.pi * x / 6) + np.sin(2 * np.pi * y / 6))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((height + 16, width + 16)).astype(np.float32)
    strokes = sum(np.roll(np.roll(noise, k, 0), k, 1) for k in range(8))[:height, :width] / np.sqrt(8)
    return (0.5 * weave + 0.25 * np.clip(strokes, -2, 2))[..., None].astype(np.float32)


@tf.function(reduce_retracing=True)
def painterly(images: tf.Tensor) -> tf.Tensor:
    """uint8 [N, H, W, 3] photos -> uint8 paintings (see the module docstring)."""
    x = tf.cast(images, tf.float32) / 255.0
    for _ in range(PASSES):
        x = _bilateral(x)
    x = _quantize(x)
    x = tf.image.adjust_hue(x, HUE_SHIFT)
    x = tf.image.adjust_saturation(x, SATURATION)
    h, w = images.shape[1], images.shape[2]
    x = x * 255.0 + CANVAS_LEVELS * tf.constant(canvas(h, w))
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
