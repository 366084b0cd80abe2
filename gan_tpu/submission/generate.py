"""The core of ``gan-tpu generate``: translate photos into a validated ``images.zip``, fast.

Model-agnostic: give :func:`write_submission` a ``translate`` callable (a Keras model or
any function mapping a float32 batch in [-1, 1] of shape [B, 256, 256, 3] to the same)
and an unbatched ``tf.data.Dataset`` of uint8 [256, 256, 3] photos. Noise-to-image
models use :func:`write_samples` with a ``sample(batch_index, batch_size)`` callable.

How it is fast (the starter notebook calls the generator eagerly once per image and
saves each file with PIL before zipping a folder):

- photos are batched with a static shape (the last partial batch is padded, and the
  padding dropped on the way out) and split over every replica of the strategy;
- the model runs inside one ``tf.function`` per batch (``strategy.run``), scaling to
  rounded 0-255 pixel values and checking for NaN/Inf on the device;
- JPEG encoding is a second ``tf.function`` (one ``encode_jpeg`` op per image, run in
  parallel by TensorFlow's executor) on a worker thread, so batch k is encoded while
  the model works on batch k+1;
- each JPEG streams straight into the zip (stored, not compressed) under a temporary
  name; the zip is validated and only then renamed to its final name.

Counts: by default every photo once, at least 7,000 (fewer photos are topped up with
deterministic flips/crops: member ``i+1`` is photo ``i % n`` in variant ``i // n``,
see :func:`fill_plan`) and at most 10,000. An explicit count outside 7,000-10,000 is
refused unless ``allow_any_count``. An output byte-identical to an earlier one (the
photo set holds the same photo twice) is skipped, and the next image takes its number.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from gan_tpu.errors import UserError
from gan_tpu.submission.validate import MAX_COUNT, MIN_COUNT, check_zip
from gan_tpu.submission.zipwriter import ZipStreamWriter

log = logging.getLogger("gan_tpu")

SIZE = 256
DEFAULT_PER_REPLICA_BATCH = 8
_MAX_CROP_MARGIN = 96  # fill variants crop at most 96 px off a side before resizing back
MAX_DUPLICATES = 1000  # more byte-identical outputs than this: the generator repeats itself


@dataclass
class SubmissionResult:
    """What :func:`write_submission` / :func:`write_samples` wrote."""

    path: str
    count: int
    filled: int  # members made from flipped/cropped photos (0 when photos sufficed)
    seconds: float
    bytes: int
    duplicates: int = 0  # outputs skipped as byte-identical to an earlier member

    @property
    def images_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


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


# ------------------------------------------------------------------ pipeline pieces


def _call(translate: Callable, x: tf.Tensor) -> tf.Tensor:
    if isinstance(translate, keras.layers.Layer):
        return translate(x, training=False)
    return translate(x)


def _postprocess(y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Model output -> (float32 pixel values 0-255, rounded; per-image all-finite flag).

    The uint8 cast happens on the host, in the encoder: TPUs have no uint8 arithmetic.
    """
    y = tf.cast(y, tf.float32)
    if y.shape.rank == 4 and (y.shape[1], y.shape[2]) != (SIZE, SIZE):
        y = tf.image.resize(y, [SIZE, SIZE], method="bilinear")
    finite = tf.reduce_all(tf.math.is_finite(y), axis=[1, 2, 3])
    pixels = tf.clip_by_value(tf.round((y + 1.0) * 127.5), 0.0, 255.0)
    return tf.where(tf.math.is_finite(pixels), pixels, 0.0), finite


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


def _distribute(ds: tf.data.Dataset, strategy: tf.distribute.Strategy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def _make_encoder(global_batch: int, quality: int) -> Callable:
    @tf.function(input_signature=[tf.TensorSpec([global_batch, SIZE, SIZE, 3], tf.float32)])
    def encode(pixels):
        with tf.device("/cpu:0"):
            images = tf.cast(pixels, tf.uint8)  # already rounded and clipped to 0-255
            # One op per image: TensorFlow's executor runs them in parallel.
            return tf.stack([tf.io.encode_jpeg(im, quality=quality, format="rgb")
                             for im in tf.unstack(images, num=global_batch)])

    return encode


def _on_jax() -> bool:
    return keras.backend.backend() == "jax"


def _jax_infer(fn: Callable, owner, strategy) -> Callable:
    """`infer(batch)` on Keras' JAX backend, where a Keras model cannot run inside a
    tf.function: `fn(batch)` (Keras layers / keras.ops) + the postprocessing, jitted by JAX
    over every device of the strategy (`runtime.JaxDevices`). The weights of `owner` (a layer,
    or a bound method's model) go in as arguments, not as baked-in constants."""
    from gan_tpu.backends.jax import compile_inference

    owner = getattr(owner, "__self__", owner)
    variables = owner.variables if isinstance(owner, keras.layers.Layer) else ()

    def post(batch):
        y = ops.cast(fn(batch), "float32")
        if tuple(y.shape[1:3]) != (SIZE, SIZE):
            y = ops.image.resize(y, (SIZE, SIZE), interpolation="bilinear")
        finite = ops.all(ops.isfinite(y), axis=(1, 2, 3))
        pixels = ops.clip(ops.round((y + 1.0) * 127.5), 0.0, 255.0)
        return ops.where(ops.isfinite(pixels), pixels, 0.0), batch["index"], batch["variant"], finite

    return compile_inference(post, variables, getattr(strategy, "distribution", None))


def _local(strategy, value) -> tf.Tensor:
    parts = strategy.experimental_local_results(value)
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)


def _stream(
    *,
    batches: Iterator,
    infer: Callable,
    encode: Callable,
    out_path: str,
    target: Optional[int],
    stop: Callable[[int, int], bool],
    validate_bounds: tuple[Optional[int], Optional[int]],
    progress: bool,
    file_wrapper=None,
    max_duplicates: int = MAX_DUPLICATES,
) -> tuple[int, int, int, int]:
    """Run infer -> encode -> zip over ``batches``; returns (written, filled, bytes, duplicates).

    ``stop(written, variant)`` says, before member ``written + 1`` (of fill variant
    ``variant``) is written, that the zip is complete. An output byte-identical to an
    earlier member (say, the photo set holds the same photo twice) is skipped and the
    stream goes on (into fill variants if need be); more than ``max_duplicates`` of
    them means the generator's outputs repeat, and is an error.
    """
    lo, hi = validate_bounds
    bar = keras.utils.Progbar(target, unit_name="image") if progress else None
    written = filled = duplicates = 0
    last_index = -1
    digests: set[bytes] = set()
    done = False

    def fetch(outputs):
        images, index, variant, finite = outputs
        if not isinstance(images, tf.Tensor):  # a JAX array (generation on Keras' JAX backend)
            images = np.asarray(images)
        return encode(images).numpy(), np.asarray(index), np.asarray(variant), np.asarray(finite)

    def write(result) -> bool:
        nonlocal written, filled, duplicates, last_index
        jpegs, index, variant, finite = result
        for j in np.argsort(np.where(index < 0, np.iinfo(np.int64).max, index), kind="stable"):
            if index[j] < 0:
                continue
            if stop(written, int(variant[j])):
                if bar is not None:
                    bar.update(written, finalize=True)  # ends the bar's line when target was None
                return True
            if not finite[j]:
                raise UserError(
                    f"the generator's output for image {int(index[j]) + 1} is not finite (NaN or Inf): "
                    f"the generator diverged; not writing {out_path}"
                )
            if int(index[j]) <= last_index:
                raise RuntimeError(f"generation out of order: image {int(index[j])} after {last_index}")
            last_index = int(index[j])
            digest = hashlib.blake2b(jpegs[j], digest_size=16).digest()
            if digest in digests:
                duplicates += 1
                if duplicates > max_duplicates:
                    raise UserError(
                        f"{duplicates} generated images are byte-identical to earlier ones: the "
                        f"generator's outputs repeat (collapsed?); not writing {out_path}"
                    )
                continue
            digests.add(digest)
            zw.add(f"{written + 1}.jpg", jpegs[j])
            written += 1
            filled += int(variant[j] > 0)
        if bar is not None:
            bar.update(written)
        return False

    with ZipStreamWriter(
        out_path,
        validate=lambda p: check_zip(p, min_count=lo, max_count=hi),
        file_wrapper=file_wrapper,
    ) as zw, ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg") as pool:
        pending: collections.deque = collections.deque()
        for batch in batches:
            pending.append(pool.submit(fetch, infer(batch)))  # encode k while the model runs k+1
            while len(pending) > 1 and not done:
                done = write(pending.popleft().result())
            if done:
                break
        while pending and not done:
            done = write(pending.popleft().result())
        for fut in pending:
            fut.cancel()
        if written == 0:
            raise UserError("no images were generated: the photo set is empty")
        if lo is not None and written < lo:
            raise UserError(f"only {written} distinct images were generated ({duplicates} repeats "
                            f"skipped), fewer than {lo}; not writing {out_path}")
        if duplicates:
            log.warning("generate: skipped %d output(s) byte-identical to earlier ones "
                        "(duplicate photos?)", duplicates)
        if progress:
            print(f"validating {written} images…", flush=True)
        zw.commit()
        size = os.path.getsize(zw.path)
    return written, filled, size, duplicates


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
      UserError: bad count/quality/batch, no photos, a non-finite generator output, or
        a zip that fails validation (nothing is left under ``out_path`` then).
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
        x = tf.cast(tf.ensure_shape(image, [SIZE, SIZE, 3]), tf.float32) / 127.5 - 1.0
        x = tf.cond(variant > 0, lambda: apply_variant(x, variant), lambda: x)
        return {"image": x, "index": index, "variant": variant}

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(global_batch).map(lambda b: _pad_batch(b, global_batch))
    ds = ds.prefetch(2)

    @tf.function
    def infer(batch):
        def replica_fn(b):
            images, finite = _postprocess(_call(translate, b["image"]))
            return images, b["index"], b["variant"], finite

        out = strategy.run(replica_fn, args=(batch,))
        return tuple(_local(strategy, t) for t in out)

    if _on_jax():
        batches, infer = ds, _jax_infer(lambda b: _call(translate, b["image"]), translate, strategy)
    else:
        batches = _distribute(ds, strategy)
    start = time.perf_counter()
    written, filled, size, duplicates = _stream(
        batches=iter(batches),
        infer=infer,
        encode=_make_encoder(global_batch, int(quality)),
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
    return SubmissionResult(os.path.abspath(out_path), written, filled, seconds, size, duplicates)


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

    ``sample`` runs on every replica inside a ``tf.function``; it gets a scalar int64
    ``batch_index``, unique over replicas and batches (seed from it for determinism),
    and the per-replica ``batch_size`` (a Python int), and returns float [batch_size,
    256, 256, 3] in [-1, 1]. Everything else is as in :func:`write_submission`.
    """
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: must be an integer from 1 to 100")
    total = resolve_count(None, count, allow_any_count=allow_any_count,
                          min_count=min_count, max_count=max_count)
    strategy = strategy or tf.distribute.get_strategy()
    global_batch = _global_batch(strategy, batch_size)
    per_replica = global_batch // strategy.num_replicas_in_sync

    # spare indices stand in for skipped repeats; the writer stops at the count
    ds = tf.data.Dataset.range(total + min(total, MAX_DUPLICATES) + global_batch)
    ds = ds.map(lambda i: {"index": i, "variant": tf.zeros([], tf.int64)})
    ds = ds.batch(global_batch).map(lambda b: _pad_batch(b, global_batch)).prefetch(2)

    @tf.function
    def infer(batch):
        def replica_fn(b):
            batch_index = tf.reduce_max(b["index"]) // per_replica  # padding rows hold -1
            images, finite = _postprocess(sample(batch_index, per_replica))
            return images, b["index"], b["variant"], finite

        out = strategy.run(replica_fn, args=(batch,))
        return tuple(_local(strategy, t) for t in out)

    if _on_jax():  # one call per global batch: batch_index counts global batches
        batches, infer = ds, _jax_infer(
            lambda b: sample(ops.max(b["index"]) // global_batch, global_batch), sample, strategy)
    else:
        batches = _distribute(ds, strategy)
    start = time.perf_counter()
    written, _, size, duplicates = _stream(
        batches=iter(batches),
        infer=infer,
        encode=_make_encoder(global_batch, int(quality)),
        out_path=os.fspath(out_path),
        target=total,
        stop=lambda written, variant: written >= total,
        validate_bounds=(total, total),
        progress=progress,
        file_wrapper=file_wrapper,
    )
    seconds = time.perf_counter() - start
    return SubmissionResult(os.path.abspath(out_path), written, 0, seconds, size, duplicates)


from gan_tpu.submission.options import add_generate_args, generate_kwargs  # noqa: E402,F401  (moved)


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
    encode = _make_encoder(global_batch, int(quality))
    ds = tf.data.Dataset.from_tensors(tf.zeros([global_batch, SIZE, SIZE, 3], tf.float32)).repeat()

    @tf.function
    def infer(x):
        out = strategy.run(lambda b: _postprocess(_call(translate, b))[0], args=(x,))
        return _local(strategy, out)

    if not _on_jax():
        batches = iter(_distribute(ds, strategy))
    else:
        batches = iter(ds.map(lambda x: {"image": x, "index": tf.zeros([global_batch], tf.int64),
                                         "variant": tf.zeros([global_batch], tf.int64)}))
        jax_infer = _jax_infer(lambda b: _call(translate, b["image"]), translate, strategy)
        infer = lambda batch: np.asarray(jax_infer(batch)[0])  # noqa: E731

    def run_one_batch() -> None:
        encode(infer(next(batches))).numpy()

    return run_one_batch, global_batch
