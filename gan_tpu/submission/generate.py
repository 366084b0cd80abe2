"""The core of ``gan-tpu generate``: translate photos into a validated ``images.zip``, fast.

Model-agnostic: give :func:`write_submission` a ``translate`` callable (a Keras model or
any function mapping a float32 batch in [-1, 1] of shape [B, 256, 256, 3] to the same)
and an unbatched ``tf.data.Dataset`` of uint8 [256, 256, 3] photos. Noise-to-image
models use :func:`write_samples` with a ``sample(batch_index, batch_size)`` callable.

How it is fast (the starter notebook calls the generator eagerly once per image and
saves each file with PIL before zipping a folder):

- photos are batched with a static shape (the last partial batch is padded, and the
  padding dropped on the way out) and split over every replica of the strategy;
- the model runs once per batch on the device, scaling to rounded 0-255 pixel values and
  checking for NaN/Inf there (``inference``: a ``tf.function``, or ``jax.jit`` on Keras'
  JAX backend);
- JPEG encoding overlaps the next batch's inference and streams into a zip that appears
  under its final name only once validated (``stream``, ``zipwriter``).

Counts: by default every photo once, at least 7,000 (fewer photos are topped up with
deterministic flips/crops: member ``i+1`` is photo ``i % n`` in variant ``i // n``,
see ``fill.fill_plan``) and at most 10,000. An explicit count outside 7,000-10,000 is
refused unless ``allow_any_count``. An output byte-identical to an earlier one (the
photo set holds the same photo twice) is skipped, and the next image takes its number.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
from keras import ops

from gan_tpu.errors import UserError
from gan_tpu.pixels import to_float
from gan_tpu.submission.fill import apply_variant
from gan_tpu.submission.inference import SIZE, host, painted_batches, translating
from gan_tpu.submission.stream import MAX_DUPLICATES, make_encoder, stream
from gan_tpu.submission.validate import MAX_COUNT, MIN_COUNT
from gan_tpu.submission.zipwriter import check_free_space

log = logging.getLogger("gan_tpu")

DEFAULT_PER_REPLICA_BATCH = 8


@dataclass
class SubmissionResult:
    """What :func:`write_submission` / :func:`write_samples` wrote."""

    path: str
    count: int
    filled: int  # members made from flipped/cropped photos (0 when photos sufficed)
    seconds: float
    bytes: int
    duplicates: int = 0  # outputs skipped as byte-identical to an earlier member
    first_seconds: float = 0.0  # until the first batch was in the zip (tracing/compiling included)
    first_count: int = 0  # images in the zip by then

    @property
    def images_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    @property
    def steady_images_per_second(self) -> float:
        """Throughput after the first batch: what the rest of a long run goes at."""
        seconds = self.seconds - self.first_seconds
        return (self.count - self.first_count) / seconds if seconds > 0 else float("inf")


# ------------------------------------------------------------------ count and fill plan


def resolve_count(
    photo_count: Optional[int],
    count: Optional[int],
    *,
    allow_any_count: bool = False,
    min_count: int = MIN_COUNT,
    max_count: int = MAX_COUNT,
) -> Optional[int]:
    """How many members to write; None when it depends on a photo count not known yet.

    An explicit ``count`` must lie in [min_count, max_count] unless ``allow_any_count``.
    Without one: every photo, topped up to ``min_count`` (unless ``allow_any_count``)
    and capped at ``max_count`` (unless ``allow_any_count``).
    """
    if count is not None:
        if count < 1:
            raise UserError(f"--count {count}: must be at least 1")
        if not allow_any_count and not min_count <= count <= max_count:
            raise UserError(
                f"--count {count}: Kaggle wants {min_count:,}-{max_count:,} images "
                "(use --allow-any-count for a demo)"
            )
        return count
    if photo_count is None:
        return None
    if photo_count < 1:
        raise UserError("no photos to translate: the photo set is empty")
    if allow_any_count:
        return photo_count
    return min(max(photo_count, min_count), max_count)


# ------------------------------------------------------------------ pipeline pieces


def _global_batch(strategy: tf.distribute.Strategy, batch_size: Optional[int]) -> int:
    replicas = strategy.num_replicas_in_sync
    if batch_size is None:
        return DEFAULT_PER_REPLICA_BATCH * replicas
    if batch_size < 1:
        raise UserError(f"--batch {batch_size}: must be at least 1")
    return int(math.ceil(batch_size / replicas) * replicas)  # every replica gets the same share


def _pad_batch(batch: dict, global_batch: int) -> dict:
    """Pad a (possibly short) batch to ``global_batch`` rows; padded rows get index -1."""
    short = global_batch - tf.shape(batch["index"])[0]
    out = {}
    for key, value in batch.items():
        pad_value = -1 if key == "index" else 0
        paddings = [[0, short]] + [[0, 0]] * (value.shape.rank - 1)
        padded = tf.pad(value, paddings, constant_values=tf.cast(pad_value, value.dtype))
        out[key] = tf.ensure_shape(padded, [global_batch] + value.shape[1:].as_list())
    return out


# ------------------------------------------------------------------ public entry points


def write_submission(
    translate: Callable[[tf.Tensor], tf.Tensor],
    photos: tf.data.Dataset,
    out_path: str | os.PathLike,
    *,
    count: Optional[int] = None,
    batch_size: Optional[int] = None,
    quality: int = 95,
    strategy: Optional[tf.distribute.Strategy] = None,
    allow_any_count: bool = False,
    progress: bool = True,
    photo_count: Optional[int] = None,
    min_count: int = MIN_COUNT,
    max_count: int = MAX_COUNT,
    file_wrapper=None,
) -> SubmissionResult:
    """Translate ``photos`` with ``translate`` and write a validated zip to ``out_path``.

    Args:
      translate: Keras model (called with ``training=False``) or callable mapping float32
        [B, 256, 256, 3] in [-1, 1] to the same. Build/load it inside ``strategy.scope()``.
      photos: unbatched, finite ``tf.data.Dataset`` of uint8 [256, 256, 3].
      out_path: the zip to write (its directory must exist). Replaced only when the new
        zip is complete and valid.
      count: members to write (see :func:`resolve_count`); default every photo, topped
        up to 7,000 with flips/crops, at most 10,000.
      batch_size: global batch (rounded up to a multiple of the replica count); default
        8 per replica.
      quality: JPEG quality, 1-100.
      strategy: the distribution strategy the model lives in; default the current one.
      allow_any_count: accept any count (demos); also turns the default top-up off.
      progress: show a ``keras.utils.Progbar``.
      photo_count: the number of photos when known and the dataset's cardinality is not
        (e.g. ``data.count_images(source)``): sets the progress bar's target and the
        number of passes over the photos; without it the stream stops by itself.
      min_count, max_count: the accepted range (Kaggle's 7,000-10,000 by default).
      file_wrapper: test hook passed to :class:`ZipStreamWriter`.

    Raises:
      UserError: bad count/quality/batch, no photos, less free space than the zip's
        estimated size, a full disk, a non-finite generator output, or a zip that fails
        validation (nothing is left under ``out_path`` then).
    """
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: must be an integer from 1 to 100")
    spec = photos.element_spec
    if not isinstance(spec, tf.TensorSpec) or spec.dtype != tf.uint8:
        raise ValueError(f"photos must be a dataset of uint8 [256, 256, 3] images, got {spec}")
    strategy = strategy or tf.distribute.get_strategy()
    global_batch = _global_batch(strategy, batch_size)

    cardinality = int(photos.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY and count is None:
        raise ValueError("photos is an endless dataset: pass count=")
    n = photo_count if photo_count is not None else (cardinality if cardinality >= 0 else None)
    if n is None:  # unknown size: check for emptiness before an endless fill loop
        if not any(True for _ in photos.take(1)):
            n = 0
    if n == 0:
        raise UserError("no photos to translate: the photo set is empty")
    total = resolve_count(n, count, allow_any_count=allow_any_count,
                          min_count=min_count, max_count=max_count)

    floor = 1 if allow_any_count else min_count
    cap = None if allow_any_count else max_count
    if count is not None:
        floor = cap = count
    check_free_space(out_path, total if total is not None else floor, int(quality))

    def stop(written: int, variant: int) -> bool:
        if cap is not None and written >= cap:
            return True
        return count is None and variant > 0 and written >= floor

    # Pass v over the photos yields fill variant v; the index runs over all passes. No
    # take(): the writer stops at the count, and one spare pass covers skipped repeats.
    if total and n:
        passes = math.ceil(total / n) + 1
    elif allow_any_count and count is None:
        passes = 2
    else:
        passes = (count or max_count) + 1
    ds = tf.data.Dataset.range(passes).flat_map(lambda v: photos.map(lambda im: (im, v)))
    ds = ds.enumerate()

    def prepare(index, pair):
        image, variant = pair
        x = to_float(tf.ensure_shape(image, [SIZE, SIZE, 3]))
        x = tf.cond(variant > 0, lambda: apply_variant(x, variant), lambda: x)
        return {"image": x, "index": index, "variant": variant}

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(global_batch).map(lambda b: _pad_batch(b, global_batch))
    ds = ds.prefetch(2)

    batches, infer = painted_batches(translating(translate), translate, ds, strategy, global_batch, reuse=True)
    start = time.perf_counter()
    written, filled, size, duplicates, (first_at, first_count) = stream(
        batches=batches,
        infer=infer,
        encode=make_encoder(global_batch, int(quality)),
        out_path=os.fspath(out_path),
        target=total,
        stop=stop,
        validate_bounds=((count, count) if count is not None
                         else (1, None) if allow_any_count else (min_count, max_count)),
        progress=progress,
        file_wrapper=file_wrapper,
    )
    seconds = time.perf_counter() - start
    if filled:
        log.info("generate: %d of %d images are flipped/cropped photos (only %s photos)",
                 filled, written, n if n is not None else "a few")
    log.info("generate: wrote %s: %d images in %.1f s (%.1f images/s)",
             out_path, written, seconds, written / max(seconds, 1e-9))
    return SubmissionResult(os.path.abspath(out_path), written, filled, seconds, size, duplicates,
                            first_at - start, first_count)


def write_samples(
    sample: Callable[[tf.Tensor, int], tf.Tensor],
    out_path: str | os.PathLike,
    *,
    count: int = MIN_COUNT,
    batch_size: Optional[int] = None,
    quality: int = 95,
    strategy: Optional[tf.distribute.Strategy] = None,
    allow_any_count: bool = False,
    progress: bool = True,
    min_count: int = MIN_COUNT,
    max_count: int = MAX_COUNT,
    file_wrapper=None,
) -> SubmissionResult:
    """The noise-to-image variant: ``sample(batch_index, batch_size)`` makes the images.

    ``sample`` runs on every replica inside a ``tf.function`` (on Keras' JAX backend: once
    per global batch, jitted); it gets a scalar int64 ``batch_index``, unique over replicas
    and batches (seed from it for determinism), and the per-call ``batch_size`` (a Python
    int), and returns float [batch_size, 256, 256, 3] in [-1, 1]. Everything else is as in
    :func:`write_submission`.
    """
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: must be an integer from 1 to 100")
    total = resolve_count(None, count, allow_any_count=allow_any_count,
                          min_count=min_count, max_count=max_count)
    check_free_space(out_path, total, int(quality))
    strategy = strategy or tf.distribute.get_strategy()
    global_batch = _global_batch(strategy, batch_size)

    # spare indices stand in for skipped repeats; the writer stops at the count
    ds = tf.data.Dataset.range(total + min(total, MAX_DUPLICATES) + global_batch)
    ds = ds.map(lambda i: {"index": i, "variant": tf.zeros([], tf.int64)})
    ds = ds.batch(global_batch).map(lambda b: _pad_batch(b, global_batch)).prefetch(2)

    def paint(batch, rows):  # padding rows hold index -1
        return sample(ops.max(batch["index"]) // rows, rows)

    batches, infer = painted_batches(paint, sample, ds, strategy, global_batch)
    start = time.perf_counter()
    written, _, size, duplicates, (first_at, first_count) = stream(
        batches=batches,
        infer=infer,
        encode=make_encoder(global_batch, int(quality)),
        out_path=os.fspath(out_path),
        target=total,
        stop=lambda written, variant: written >= total,
        validate_bounds=(total, total),
        progress=progress,
        file_wrapper=file_wrapper,
    )
    seconds = time.perf_counter() - start
    return SubmissionResult(os.path.abspath(out_path), written, 0, seconds, size, duplicates,
                            first_at - start, first_count)


def make_generation_timer(
    translate: Callable[[tf.Tensor], tf.Tensor],
    *,
    batch_size: Optional[int] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    quality: int = 95,
) -> tuple[Callable[[], None], int]:
    """(run_one_batch, global_batch): one generation batch (model + JPEG) for timing.

    Feed it to :class:`gan_tpu.budget.GenerationReserve`::

        timer, gb = make_generation_timer(gen, strategy=strategy)
        reserve = GenerationReserve(timer, batch_size=gb, count=7038)

    The first call compiles (that time counts as the compile overhead).
    """
    strategy = strategy or tf.distribute.get_strategy()
    global_batch = _global_batch(strategy, batch_size)
    encode = make_encoder(global_batch, int(quality))
    zeros = tf.zeros([global_batch], tf.int64)
    ds = tf.data.Dataset.from_tensors({"image": tf.zeros([global_batch, SIZE, SIZE, 3], tf.float32),
                                       "index": zeros, "variant": zeros}).repeat()
    batches, infer = painted_batches(translating(translate), translate, ds, strategy, global_batch, reuse=True)

    def run_one_batch() -> None:
        encode(host(infer(next(batches))[0])).numpy()

    return run_one_batch, global_batch
