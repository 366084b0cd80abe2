"""Feature extractors: images → ``[N, D]`` float32 features (and class probabilities).

One interface for all three (``get_extractor(spec)``):

* ``kaggle[:PATH]`` — Kaggle's own network: ``classify_image_graph_def.pb`` of the
  2015-12-05 Inception graph (the .pb, or ``inception-2015-12-05.tgz`` holding it),
  imported as a GraphDef and run batched in TF2. Images go in at ``ExpandDims:0`` as
  float pixels 0–255 at their own size (256×256 for Kaggle); the graph itself resizes
  to 299×299 (its ``ResizeBilinear`` node: TF1 bilinear, no half-pixel centres, no
  antialias) and scales to [−1, 1]. Features: ``pool_3:0`` (2,048-d). Probabilities
  for the Inception Score: ``pool_3 @ softmax/logits`` weights (OpenAI's IS code).
  Scores from this extractor are comparable with Kaggle's.
* ``inception_v3[:WEIGHTS]`` — ``keras.applications.InceptionV3`` (weights file or
  ``imagenet``). Resize: ``tf.image.resize`` bilinear, half-pixel centres, no
  antialias, to 299×299; scaling ``x/127.5 − 1``. Features: its 2,048-d average pool.
  Close to, but not the same network as, Kaggle's: not comparable with Kaggle's scores.
* ``tiny`` — a fixed-seed 3-layer conv net (64-d features, 10 classes) for tests and
  the demo. Resize: bilinear, half-pixel, no antialias, to 64×64; scaling to [−1, 1].
  NOT comparable with Kaggle's scores.

Inputs: ``uint8`` images are pixels 0–255; floating images are taken to be in
[−1, 1] (generator outputs) and mapped to 0–255 first.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import time

import numpy as np
import tensorflow as tf

from gan_tpu.errors import UserError
from gan_tpu.jax_cache import default_cache_dir

GRAPH_NAME = "classify_image_graph_def.pb"
GRAPH_TGZ = "inception-2015-12-05.tgz"
GRAPH_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INPUT_TENSOR = "ExpandDims:0"
OUTPUT_TENSOR = "pool_3:0"
LOGITS_MATMUL = "softmax/logits/MatMul"
KERAS_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"


def to_pixels(images):
    """uint8 → float32 0–255 as is; floats in [−1, 1] → (x + 1)·127.5, clipped to 0–255."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32)
    return tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 127.5, 0.0, 255.0)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Extractor:
    """Base class. Subclasses set ``name``, ``dim``, ``key`` and implement ``forward``."""

    name = "base"
    dim = 0
    comparable_with_kaggle = False
    has_probs = False
    key = "base"

    def __init__(self, strategy=None):
        self.strategy = strategy or tf.distribute.get_strategy()
        self._step = None

    def forward(self, pixels):
        """float32 pixels 0–255 ``[B, H, W, 3]`` → (features ``[B, D]``, probs ``[B, C]`` or None)."""
        raise NotImplementedError

    def __call__(self, images):
        """One batch (uint8, or floats in [−1, 1]) → (features, probs or None), on this replica."""
        feats, probs = self.forward(to_pixels(images))
        return tf.reshape(feats, [-1, self.dim]), probs

    @property
    def label(self) -> str:
        if self.comparable_with_kaggle:
            return self.name
        return f"{self.name} (not comparable with Kaggle's scores)"

    def _replica_step(self, images):
        feats, probs = self(images)
        return (feats, probs) if probs is not None else (feats,)

    def extract(self, images, batch_size: int = 64, progress=None):
        """Yields (features, probs or None) NumPy batches for a dataset or array of images.

        ``images``: an unbatched ``tf.data.Dataset`` of ``[H, W, 3]`` images, or an
        array/tensor ``[N, H, W, 3]``. ``batch_size`` is global: it is split over the
        strategy's replicas. ``progress(n_done)`` is called after each batch.
        """
        if not isinstance(images, tf.data.Dataset):
            images = tf.data.Dataset.from_tensor_slices(images)
        dataset = images.batch(batch_size).prefetch(2)
        strategy = self.strategy
        if self._step is None:
            self._step = tf.function(lambda x: strategy.run(self._replica_step, args=(x,)), reduce_retracing=True)
        done = 0
        for batch in strategy.experimental_distribute_dataset(dataset):
            out = self._step(batch)
            parts = [np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(o)]) for o in out]
            feats = parts[0].astype(np.float32, copy=False)
            probs = parts[1] if len(parts) > 1 else None
            done += feats.shape[0]
            if progress is not None:
                progress(done)
            yield feats, probs

    def features(self, images, batch_size: int = 64, progress=None):
        """All features (and probs or None) of ``images`` as NumPy arrays."""
        feats, probs = [], []
        for f, p in self.extract(images, batch_size, progress):
            feats.append(f)
            if p is not None:
                probs.append(p)
        f = np.concatenate(feats) if feats else np.zeros([0, self.dim], np.float32)
        return f, (np.concatenate(probs) if probs else None)


# --------------------------------------------------------------------------- kaggle
def missing_graph_message(path: str | None) -> str:
    where = f"{path} does not exist" if path else "no Inception graph found"
    return (
        f"kaggle extractor: {where}; download {GRAPH_URL} and pass --extractor kaggle:PATH "
        f"(the .tgz or the {GRAPH_NAME} inside it), or put either file in {default_cache_dir()}/"
    )


def find_graph(path: str | None = None) -> str:
    """The given path, else the first of ``<cache>/classify_image_graph_def.pb`` and ``.tgz``."""
    if path:
        if not os.path.isfile(path):
            raise UserError(missing_graph_message(path))
        return path
    for name in (GRAPH_NAME, GRAPH_TGZ):
        candidate = os.path.join(default_cache_dir(), name)
        if os.path.isfile(candidate):
            return candidate
    raise UserError(missing_graph_message(None))


def read_graph_bytes(path: str) -> bytes:
    """The GraphDef bytes from a .pb, or from the ``classify_image_graph_def.pb`` in a tar(.gz)."""
    if tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and os.path.basename(m.name) == GRAPH_NAME]
                if not members:
                    raise UserError(f"{path}: archive has no {GRAPH_NAME}")
                return tar.extractfile(members[0]).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise UserError(f"{path}: corrupt archive ({err})") from None
    with open(path, "rb") as fh:
        return fh.read()


def load_graph_def(path: str):
    """Parses and checks an Inception GraphDef (``ExpandDims`` input, ``pool_3`` output)."""
    data = read_graph_bytes(path)
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # google.protobuf.message.DecodeError and friends
        raise UserError(f"{path}: corrupt GraphDef (cannot parse {len(data)} bytes)") from None
    names = {node.name for node in graph_def.node}
    missing = [t for t in (INPUT_TENSOR, OUTPUT_TENSOR) if t.split(":")[0] not in names]
    if missing:
        raise UserError(f"{path}: not an Inception graph (no {', '.join(missing)} tensor)")
    return graph_def, _sha256(data)


class KaggleInception(Extractor):
    """Kaggle's scoring network: the 2015-12-05 Inception GraphDef, ``pool_3`` features."""

    name = "kaggle"
    dim = 2048
    comparable_with_kaggle = True

    def __init__(self, path: str | None = None, strategy=None):
        super().__init__(strategy)
        self.path = find_graph(path)
        graph_def, digest = load_graph_def(self.path)
        self.key = f"kaggle-{digest[:16]}"
        nodes = {node.name: node for node in graph_def.node}
        weights = None
        if LOGITS_MATMUL in nodes:
            weights = nodes[LOGITS_MATMUL].input[1]
            weights = weights if ":" in weights else weights + ":0"
        fetches = [OUTPUT_TENSOR] + ([weights] if weights else [])

        def imported(x):
            return tf.compat.v1.import_graph_def(
                graph_def, input_map={INPUT_TENSOR: x}, return_elements=fetches, name="inception")

        try:
            self._fn = tf.compat.v1.wrap_function(imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])
        except (ValueError, TypeError, tf.errors.OpError) as err:
            raise UserError(f"{self.path}: not a usable Inception graph ({str(err).splitlines()[0]})") from None
        out = self._fn.structured_outputs
        self.dim = int(out[0].shape[-1]) if out[0].shape[-1] is not None else 2048
        self.has_probs = weights is not None

    def forward(self, pixels):
        out = self._fn(pixels)
        feats = tf.reshape(out[0], [-1, self.dim])
        if not self.has_probs:
            return feats, None
        return feats, tf.nn.softmax(tf.matmul(feats, out[1]))


# --------------------------------------------------------------------------- inception_v3
class KerasInceptionV3(Extractor):
    """``keras.applications.InceptionV3``: 2,048-d average pool (+ ImageNet probs with the top)."""

    name = "inception_v3"
    dim = 2048

    def __init__(self, weights="imagenet", size: int = 299, strategy=None):
        super().__init__(strategy)
        import keras

        self.size = int(size)
        if weights not in (None, "imagenet") and not os.path.isfile(weights):
            raise UserError(
                f"inception_v3 extractor: weights file {weights} does not exist "
                f"(Keras' file is {KERAS_WEIGHTS}, normally in ~/.keras/models/)")
        with self.strategy.scope():
            self.model = self._build(keras, weights)
        self.key = f"inception_v3-{self.size}-" + (
            file_digest(weights)[:16] if weights not in (None, "imagenet") else str(weights).lower())

    def _build(self, keras, weights):
        shape = (self.size, self.size, 3)
        if weights == "imagenet":
            try:
                full = keras.applications.InceptionV3(weights="imagenet", input_shape=shape)
            except Exception as err:  # no network: urllib/HTTP errors, or a truncated download
                raise UserError(
                    f"inception_v3 extractor: cannot fetch ImageNet weights ({type(err).__name__}); "
                    f"put {KERAS_WEIGHTS} in ~/.keras/models/ or pass --extractor inception_v3:PATH") from None
            return self._with_pool(keras, full, True)
        full = keras.applications.InceptionV3(weights=None, input_shape=shape)
        if weights is None:
            return self._with_pool(keras, full, True)
        try:
            full.load_weights(weights)
            return self._with_pool(keras, full, True)
        except Exception:
            pass
        notop = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=shape)
        try:
            notop.load_weights(weights)
        except Exception as err:
            raise UserError(f"{weights}: not InceptionV3 weights ({str(err).splitlines()[0][:120]})") from None
        return self._with_pool(keras, notop, False)

    def _with_pool(self, keras, model, top):
        self.has_probs = top
        if not top:
            return model
        return keras.Model(model.inputs, [model.get_layer("avg_pool").output, model.output])

    def forward(self, pixels):
        x = tf.image.resize(pixels, [self.size, self.size], method="bilinear", antialias=False)
        out = self.model(x / 127.5 - 1.0, training=False)
        if self.has_probs:
            return out[0], out[1]
        return out, None


# --------------------------------------------------------------------------- tiny
class TinyExtractor(Extractor):
    """A fixed-seed random conv net: 64-d ReLU features, 10-way softmax. Tests and demo only."""

    name = "tiny"
    dim = 64
    has_probs = True
    key = "tiny-v1"
    SIZE = 64

    def __init__(self, strategy=None, seed: int = 1234):
        super().__init__(strategy)
        rng = np.random.RandomState(seed)
        chans = [3, 16, 32, 64]
        self.kernels = [
            tf.constant((rng.standard_normal((3, 3, a, b)) * np.sqrt(2.0 / (9 * a))).astype(np.float32))
            for a, b in zip(chans[:-1], chans[1:])
        ]
        self.biases = [tf.constant(rng.uniform(0.0, 0.1, b).astype(np.float32)) for b in chans[1:]]
        self.head = tf.constant((rng.standard_normal((64, 10)) / 8.0).astype(np.float32))

    def forward(self, pixels):
        x = tf.image.resize(pixels, [self.SIZE, self.SIZE], method="bilinear", antialias=False) / 127.5 - 1.0
        for kernel, bias in zip(self.kernels, self.biases):
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, 2, "SAME") + bias)
        feats = tf.reduce_mean(x, axis=[1, 2])
        return feats, tf.nn.softmax(feats @ self.head)


# --------------------------------------------------------------------------- registry
EXTRACTORS = ("kaggle", "inception_v3", "tiny")


def get_extractor(spec: str = "kaggle", strategy=None, **kwargs) -> Extractor:
    """``kaggle[:PATH]``, ``inception_v3[:WEIGHTS]`` (file, or ``imagenet``) or ``tiny``."""
    name, _, arg = spec.partition(":")
    if name == "kaggle":
        return KaggleInception(arg or None, strategy=strategy)
    if name == "inception_v3":
        return KerasInceptionV3(arg or "imagenet", strategy=strategy, **kwargs)
    if name == "tiny":
        if arg:
            raise UserError(f"extractor 'tiny' takes no argument, got {spec!r}")
        return TinyExtractor(strategy=strategy)
    raise UserError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")


class Progress:
    """Prints ``label: n/total images (x img/s)`` to stderr at most every ``every`` seconds."""

    def __init__(self, label: str, total: int | None = None, every: float = 5.0, stream=None):
        self.label, self.total, self.every = label, total, every
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done != self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        total = f"/{self.total}" if self.total else ""
        print(f"{self.label}: {done}{total} images ({rate:.1f} img/s)", file=self.stream, flush=True)
