"""`[eval]` past one process (Keras' JAX backend, gan_tpu.distributed): each process paints
and embeds its own share of the eval photos, the feature rows are gathered in the photos'
order, and process 0's scores are every process's.

* :func:`paint_share`: the photos, in batches sharded over every device of the job (as the
  training batch is), painted with the translator's current weights; each process keeps the
  rows its own devices painted, with their places among the photos.
* :func:`gathered_rows`: every process's (places, feature rows) gathered over the job and
  put back in the photos' order (:func:`in_order`), so the moments and the memorization
  distance are accumulated exactly as one process accumulates them. The features are small
  (7,038 photos of 2,048 floats: 58 MB), smaller than a D x D covariance per process.
* :func:`agreed`: process 0's scores, on every process, so every process keeps the same best
  at the same step.

Alone, nothing here is used: the callback paints and embeds every photo as before.
"""
from __future__ import annotations

import math

import numpy as np

from gan_tpu import distributed


def batch_rows(count: int, batch_size: int, devices: int) -> int:
    """Rows of each painting batch: `batch_size` (at most `count`) rounded up to whole rows
    per device, so every batch has a static shape that splits over the devices."""
    return devices * math.ceil(min(batch_size, count) / devices)


def painter(translator):
    """`run(x)` for :func:`paint_share`: `translator` jitted over the job's devices, its
    weights as arguments (so the EMA or best weights swapped in are the ones used)."""
    import keras

    from gan_tpu.backends.jax import compile_inference
    from gan_tpu.submission.inference import call

    variables = translator.variables if isinstance(translator, keras.layers.Layer) else ()
    return compile_inference(lambda x: call(translator, x), variables, keras.distribution.distribution(),
                             gather=False)


def paint_share(run, photos: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(places, paintings) of this process's share of `photos`: the rows of each batch that
    its devices paint (`run` from :func:`painter`). Batches are padded with copies of the
    last photo; a padding row's place is `len(photos)` or more."""
    import jax

    n = len(photos)
    rows = batch_rows(n, batch_size, jax.device_count())
    places, painted = [], []
    for start in range(0, n, rows):
        batch = photos[start:start + rows]
        if len(batch) < rows:
            batch = np.concatenate([batch, np.repeat(batch[-1:], rows - len(batch), 0)])
        out = run(batch)
        taken = set()
        for shard in out.addressable_shards:
            first = shard.index[0].start or 0
            values = np.asarray(shard.data)
            for i in range(first, first + len(values)):
                if i not in taken:  # a row held by two of this process's devices counts once
                    taken.add(i)
                    places.append(start + i)
                    painted.append(values[i - first])
    return np.asarray(places, np.int64), np.stack(painted)


def in_order(places: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Rows gathered from every process (`places` [P, m], `rows` [P, m, ...]) as the `count`
    rows of the photos in order; padding (a place of `count` or more) is dropped. Every place
    must come exactly once: a share lost or counted twice is an error, not a score."""
    places = np.asarray(places).reshape(-1)
    rows = np.asarray(rows).reshape((places.size,) + np.shape(rows)[2:])
    real = places < count
    found, at = np.unique(places[real], return_index=True)
    if found.size != real.sum() or not np.array_equal(found, np.arange(count)):
        raise RuntimeError(f"[eval]: the processes' shares hold {real.sum()} rows for places "
                           f"{found[:8].tolist()}..., not each of 0..{count - 1} once")
    return rows[real][at]


def gathered_rows(places: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """This process's (places, rows), gathered with every other process's: all `count` rows
    in order, on every process. Shares of unequal length are padded to the longest."""
    longest = int(np.max(distributed.allgather(np.int64(len(places)))))
    pad = longest - len(places)
    places = np.concatenate([places, np.full(pad, count, np.int64)])
    rows = np.concatenate([rows, np.zeros((pad,) + rows.shape[1:], rows.dtype)])
    return in_order(distributed.allgather(places), distributed.allgather(rows), count)


def agreed(scores: dict) -> dict:
    """Process 0's {"fid", "distance", "mifid"} on every process (the others' may be empty),
    in full float64."""
    keys = ("fid", "distance", "mifid")
    values = np.array([[0.0 if scores.get(k) is None else scores[k], scores.get(k) is None] for k in keys],
                      np.float64)
    values = distributed.broadcast(values)
    return {k: None if absent else float(v) for k, (v, absent) in zip(keys, values)}
