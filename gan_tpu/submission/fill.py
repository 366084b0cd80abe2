"""Fill variants: deterministic flips/crops that top a small photo set up to Kaggle's 7,000.

Member ``i + 1`` of a submission is photo ``i % n`` in variant ``i // n`` (:func:`fill_plan`);
variant 0 is the photo itself, variant v >= 1 the flip/crop of :func:`variant_params`, applied
on the device by :func:`apply_variant`.
"""
from __future__ import annotations

import tensorflow as tf

from gan_tpu.submission.validate import IMAGE_SHAPE

SIZE = IMAGE_SHAPE[0]  # Kaggle's 256 px
_MAX_CROP_MARGIN = 96  # fill variants crop at most 96 px off a side before resizing back


def fill_plan(index: int, photo_count: int) -> tuple[int, int]:
    """(photo index, variant) of member ``index + 1``: variant 0 is the photo itself."""
    return index % photo_count, index // photo_count


def variant_params(variant: int) -> tuple[bool, int, int, int]:
    """(flip, crop margin, top, left) of fill variant ``variant`` (a pure-Python mirror).

    Odd variants flip left-right. With k = variant // 2, the crop margin is min(16k, 96)
    px; below k = 6 the offsets are (7k, 13k) mod (margin + 1), from k = 6 on they walk
    all 97x97 offsets of the 96 px margin injectively, so up to 10,000 members from a
    single photo never repeat a (flip, crop).
    """
    k = variant // 2
    margin = min(16 * k, _MAX_CROP_MARGIN)
    if k < 6:
        top, left = (7 * k) % (margin + 1), (13 * k) % (margin + 1)
    else:
        j = k - 6
        top, left = (7 * j) % 97, (13 * (j // 97) + 5 * j) % 97
    return variant % 2 == 1, margin, top, left


def apply_variant(image: tf.Tensor, variant: tf.Tensor) -> tf.Tensor:
    """Deterministic flip/crop ``variant`` (>= 1) of a float [256, 256, 3] image.

    The crop (see :func:`variant_params`) is resized back to 256 px (bilinear).
    """
    variant = tf.cast(variant, tf.int32)
    k = variant // 2
    margin = tf.minimum(16 * k, _MAX_CROP_MARGIN)
    j = tf.maximum(k - 6, 0)
    top = tf.where(k < 6, tf.math.floormod(7 * k, margin + 1), tf.math.floormod(7 * j, 97))
    left = tf.where(k < 6, tf.math.floormod(13 * k, margin + 1),
                    tf.math.floormod(13 * (j // 97) + 5 * j, 97))
    side = SIZE - margin
    cropped = tf.slice(image, tf.stack([top, left, 0]), tf.stack([side, side, 3]))
    resized = tf.cond(
        margin > 0,
        lambda: tf.image.resize(cropped, [SIZE, SIZE], method="bilinear"),
        lambda: tf.reshape(cropped, [SIZE, SIZE, 3]),
    )
    out = tf.cond(tf.equal(variant % 2, 1), lambda: tf.image.flip_left_right(resized), lambda: resized)
    return tf.ensure_shape(out, [SIZE, SIZE, 3])
