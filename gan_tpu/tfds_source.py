"""Images from a tensorflow-datasets data set: ``tfds:NAME[:SPLIT]`` (``pip install gan_tpu[tfds]``).

``tfds:cycle_gan/monet2photo`` reads the CycleGAN monet2photo Monet paintings (split
``trainA``, 1,072 of them; ``testA`` has 121 more). The examples' stored image bytes are read
as they are (no decode by tensorflow-datasets), so the source is verified, decoded and
augmented exactly as record files are. Nothing is downloaded here: a data set that is not
prepared in ``$TFDS_DATA_DIR`` (default ``~/tensorflow_datasets``) is a one-line error
saying how to fetch it once (``tfds build NAME``).
"""
from __future__ import annotations

import os

import tensorflow as tf

from gan_tpu.errors import UserError

PREFIX = "tfds:"
DEFAULT_SPLITS = {"cycle_gan": "trainA"}  # the family's Monet (A) side
IMAGE_KEY = "image"


def is_spec(path) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def parse(spec: str) -> tuple[str, str]:
    """``tfds:NAME[:SPLIT]`` -> (NAME, SPLIT); SPLIT defaults to ``trainA`` for cycle_gan, else ``train``."""
    body = spec[len(PREFIX):]
    name, _, split = body.partition(":")
    if not name:
        raise UserError(f"{spec}: expected tfds:NAME[:SPLIT], e.g. tfds:cycle_gan/monet2photo")
    return name, split or DEFAULT_SPLITS.get(name.split("/")[0], "train")


def _tfds(spec: str):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError(f"{spec}: tensorflow-datasets is not installed (pip install 'gan_tpu[tfds]')") from None
    return tfds


def data_dir() -> str | None:
    """``$TFDS_DATA_DIR`` when set (read at each call), else tensorflow-datasets' default."""
    return os.environ.get("TFDS_DATA_DIR") or None


def _builder(spec: str):
    tfds = _tfds(spec)
    name, split = parse(spec)
    try:
        builder = tfds.builder(name, data_dir=data_dir())
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"{spec}: tensorflow-datasets has no data set {name!r}") from None
    except ValueError as err:  # e.g. an unknown config of a known data set
        raise UserError(f"{spec}: {str(err).splitlines()[0]}") from None
    return tfds, builder, name, split


def _missing(spec: str, name: str) -> UserError:
    where = data_dir() or "~/tensorflow_datasets"
    return UserError(f"{spec}: not downloaded to {where}; fetch it once with `tfds build {name}` "
                     f"(needs network), or set TFDS_DATA_DIR to a folder that holds it")


def _check_split(spec: str, builder, split: str) -> int | None:
    """The split's example count, or None when tensorflow-datasets does not know it (mock data)."""
    splits = dict(builder.info.splits)
    if not splits:
        return None
    base = split.split("[")[0]
    if base not in splits:
        raise UserError(f"{spec}: no split {base!r} (splits: {', '.join(sorted(splits))})")
    return splits[split].num_examples if split == base else None


def count(spec: str) -> int | None:
    """The image count of a prepared split (None if unknown), after the checks ``encoded`` makes."""
    _, builder, name, split = _builder(spec)
    return _check_split(spec, builder, split)


def encoded(spec: str) -> tf.data.Dataset:
    """(name, encoded image bytes) pairs of the split, in the data set's order."""
    tfds, builder, name, split = _builder(spec)
    _check_split(spec, builder, split)
    if IMAGE_KEY not in builder.info.features:
        raise UserError(f"{spec}: examples have no {IMAGE_KEY!r} feature "
                        f"(features: {', '.join(sorted(builder.info.features))})")
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={IMAGE_KEY: tfds.decode.SkipDecoding()})
    except AssertionError:  # tensorflow-datasets' "could not find data in DATA_DIR"
        raise _missing(spec, name) from None
    except ValueError as err:  # a split tensorflow-datasets rejects
        raise UserError(f"{spec}: {str(err).splitlines()[0]}") from None
    return ds.map(lambda ex: (tf.constant(b""), ex[IMAGE_KEY]), num_parallel_calls=tf.data.AUTOTUNE)
