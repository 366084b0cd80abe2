"""One generation path on either Keras backend: a painting function -> rounded 0-255 pixels
and a per-image all-finite flag, for each static-shape batch, over every replica.

On TensorFlow each batch is one ``tf.function`` (``strategy.run`` over a distributed
dataset). On Keras' JAX backend, where a Keras model cannot run inside a tf.function, the
same function is jitted by JAX over every device of the strategy (``runtime.JaxDevices``),
the weights going in as arguments, not as baked-in constants. ``write_submission``,
``write_samples`` and the generation timer all go through :func:`painted_batches`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from gan_tpu.pixels import to_pixels
from gan_tpu.submission.validate import IMAGE_SHAPE

SIZE = IMAGE_SHAPE[0]  # Kaggle's 256 px
Paint = Callable[[dict, int], Any]  # (batch of `rows` rows, rows) -> float [rows, H, W, 3] in [-1, 1]


def on_jax() -> bool:
    return keras.backend.backend() == "jax"


def call(translate: Callable, x):
    """``translate(x)``; a Keras layer or model is called with ``training=False``."""
    if isinstance(translate, keras.layers.Layer):
        return translate(x, training=False)
    return translate(x)


def postprocess(y) -> tuple[Any, Any]:
    """Model output -> (float32 pixel values 0-255, rounded, 256 px; per-image all-finite flag).

    keras.ops, so it runs inside ``strategy.run`` and ``jax.jit`` alike. The uint8 cast happens
    on the host, in the encoder: TPUs have no uint8 arithmetic.
    """
    y = ops.cast(y, "float32")
    if tuple(y.shape[1:3]) != (SIZE, SIZE):
        y = ops.image.resize(y, (SIZE, SIZE), interpolation="bilinear")
    finite = ops.all(ops.isfinite(y), axis=(1, 2, 3))
    pixels = to_pixels(y)
    return ops.where(ops.isfinite(pixels), pixels, 0.0), finite


def translating(translate: Callable) -> Paint:
    """The :data:`Paint` of a photo translator: it reads each batch's ``image``."""
    return lambda batch, rows: call(translate, batch["image"])


def painted_batches(paint: Paint, owner, ds: tf.data.Dataset, strategy, global_batch: int,
                    reuse: bool = False) -> tuple[Iterator, Callable]:
    """(batches, infer): ``infer(batch)`` is (pixels, index, variant, finite) of one batch.

    ``ds`` yields dicts of ``global_batch`` rows holding ``index`` and ``variant`` (and
    whatever ``paint`` reads, e.g. ``image``). ``paint(batch, rows)`` paints a batch of
    ``rows`` rows: one replica's share on TensorFlow, the whole global batch on JAX.
    ``owner`` is the Keras layer (or a bound method of one) whose weights ``paint`` uses.
    ``reuse``: ``paint`` is ``translating(owner)``, so on JAX the jitted inference is kept
    on the generator and compiled once per generator, size, batch and distribution (the
    budget's generation timer and the zip then share one compilation; the weights go in
    as arguments, so swapped-in EMA or best weights are used).
    """
    def outputs(batch, rows):
        pixels, finite = postprocess(paint(batch, rows))
        return pixels, batch["index"], batch["variant"], finite

    if on_jax():
        from gan_tpu.backends.jax import compile_inference

        owner = getattr(owner, "__self__", owner)
        variables = owner.variables if isinstance(owner, keras.layers.Layer) else ()
        distribution = getattr(strategy, "distribution", None)
        cache, key = _inference_cache(owner, global_batch, distribution) if reuse else ({}, None)
        if key not in cache:
            cache[key] = compile_inference(lambda batch: outputs(batch, global_batch), variables, distribution)
        return iter(ds), cache[key]

    rows = global_batch // strategy.num_replicas_in_sync

    @tf.function
    def infer(batch):
        out = strategy.run(lambda b: outputs(b, rows), args=(batch,))
        return tuple(_local(strategy, t) for t in out)

    return iter(_distribute(ds, strategy)), infer


def _inference_cache(translate, global_batch: int, distribution) -> tuple[dict, tuple]:
    """(the dict kept on the generator that `translate` runs, this inference's key in it).
    `translator.AtSize` wrappers, made anew per call, key by their generator and size."""
    generator = getattr(translate, "generator", translate)
    if not isinstance(generator, keras.layers.Layer):
        return {}, None
    cache = generator.__dict__.get("_gan_tpu_inference")
    if cache is None:
        cache = {}
        object.__setattr__(generator, "_gan_tpu_inference", cache)  # not a tracked Keras attribute
    size = getattr(translate, "size", None) if generator is not translate else None
    return cache, (size, global_batch, distribution)


def first_variant(batch: dict) -> int:
    """The fill variant of a batch's first row (a real row: padding comes last), read on the
    host before the batch is painted; the first replica holds the first rows."""
    variant = batch["variant"]
    if isinstance(variant, tf.distribute.DistributedValues):
        variant = variant.values[0]
    return int(variant[0])


def host(value):
    """A TF tensor as is, a JAX array as NumPy (for the TF JPEG encoder)."""
    return value if isinstance(value, tf.Tensor) else np.asarray(value)


def _distribute(ds: tf.data.Dataset, strategy: tf.distribute.Strategy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def _local(strategy, value) -> tf.Tensor:
    parts = strategy.experimental_local_results(value)
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
