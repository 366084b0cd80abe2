"""Infer -> JPEG -> zip: the streaming loop behind ``write_submission`` and ``write_samples``.

JPEG encoding is a ``tf.function`` (one ``encode_jpeg`` op per image, run in parallel by
TensorFlow's executor) on a worker thread, so batch k is encoded while the model works on
batch k+1. Each JPEG streams straight into a :class:`ZipStreamWriter` (stored, under a
temporary name), which is validated and only then renamed to its final name.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from gan_tpu.errors import UserError
from gan_tpu.progress import progress_bar
from gan_tpu.submission.inference import SIZE, first_variant, host
from gan_tpu.submission.validate import check_zip
from gan_tpu.submission.zipwriter import ZipStreamWriter

log = logging.getLogger("gan_tpu")

MAX_DUPLICATES = 1000  # more byte-identical outputs than this: the generator repeats itself



def write_order(index) -> np.ndarray:
    """Positions of a batch's rows in image order, padding rows (index -1) last.

    The index is widened to int64 first: JAX hands back int32, and numpy >= 2.5 refuses to
    mix int64's maximum into an int32 array (older numpy silently wrapped it to -1).
    """
    index = np.asarray(index, dtype=np.int64)
    return np.argsort(np.where(index < 0, np.iinfo(np.int64).max, index), kind="stable")

def make_encoder(global_batch: int, quality: int) -> Callable:
    @tf.function(input_signature=[tf.TensorSpec([global_batch, SIZE, SIZE, 3], tf.float32)])
    def encode(pixels):
        with tf.device("/cpu:0"):
            images = tf.cast(pixels, tf.uint8)  # already rounded and clipped to 0-255
            # One op per image: TensorFlow's executor runs them in parallel.
            return tf.stack([tf.io.encode_jpeg(im, quality=quality, format="rgb")
                             for im in tf.unstack(images, num=global_batch)])

    return encode


def stream(
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
) -> tuple[int, int, int, int, tuple[float, int]]:
    """Run infer -> encode -> zip over ``batches``; returns (written, filled, bytes, duplicates,
    first), ``first`` = (``time.perf_counter()``, images written) when the first batch was in.

    ``stop(written, variant)`` says, before member ``written + 1`` (of fill variant
    ``variant``) is written, that the zip is complete; once true it stays true as
    ``written`` grows, so no batch is painted past the end (the rows in flight are
    written first when they may complete the zip). An output byte-identical to an
    earlier member (say, the photo set holds the same photo twice) is skipped and the
    stream goes on (into fill variants if need be); more than ``max_duplicates`` of
    them means the generator's outputs repeat, and is an error.
    """
    lo, hi = validate_bounds
    bar = progress_bar(target, unit_name="image") if progress else None
    written = filled = duplicates = 0
    last_index = -1
    digests: set[bytes] = set()
    done = False
    first: list = []

    def fetch(outputs):
        images, index, variant, finite = outputs
        return encode(host(images)).numpy(), np.asarray(index), np.asarray(variant), np.asarray(finite)

    def write(result) -> bool:
        nonlocal written, filled, duplicates, last_index
        jpegs, index, variant, finite = result
        for j in write_order(index):
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
        if not first:
            first.extend((time.perf_counter(), written))
        if bar is not None:
            bar.update(written)
        return False

    with ZipStreamWriter(
        out_path,
        validate=lambda p: check_zip(p, min_count=lo, max_count=hi),
        file_wrapper=file_wrapper,
    ) as zw, ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg") as pool:
        pending: collections.deque = collections.deque()  # (rows, future of fetch)
        for batch in batches:
            variant = first_variant(batch)
            if stop(written + sum(rows for rows, _ in pending), variant):
                # the rows in flight may complete the zip: write them before painting more
                while pending and not done:
                    done = write(pending.popleft()[1].result())
                if done or stop(written, variant):
                    done = True
                    if bar is not None:
                        bar.update(written, finalize=True)
                    break
            outputs = infer(batch)
            pending.append((int(outputs[1].shape[0]), pool.submit(fetch, outputs)))  # encode k while k+1 paints
            while len(pending) > 1 and not done:
                done = write(pending.popleft()[1].result())
            if done:
                break
        while pending and not done:
            done = write(pending.popleft()[1].result())
        for _, fut in pending:
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
    return written, filled, size, duplicates, tuple(first) or (time.perf_counter(), written)
