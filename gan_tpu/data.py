"""tf.data readers for the competition's data: Monet/photo TFRecords, JPG folders and zips,
tensorflow-datasets data sets (``tfds:NAME[:SPLIT]``) and lists of any of these.

Kaggle ships `monet_tfrec/*.tfrec`, `photo_tfrec/*.tfrec` (tf.train.Example with `image_name`,
`image` (JPEG 256x256x3) and `target` bytes) and the same images as `monet_jpg/`, `photo_jpg/`.
Every path goes through `tf.io.gfile`, so `gs://` buckets work as local folders do.
"""
from __future__ import annotations

import dataclasses
import glob as _glob
import zipfile

import numpy as np
import tensorflow as tf

from gan_tpu import data_check, distributed, tfds_source
from gan_tpu.errors import UserError
from gan_tpu.pixels import to_float, to_uint8  # noqa: F401 (data.to_float, data.to_uint8)
from gan_tpu.record_names import count_in_name

DOMAINS = ("monet", "photo")
SOURCE_SIZE = 256
RECORD_SUFFIXES = (".tfrec", ".tfrecord", ".tfrecords")
IMAGE_SUFFIXES = (".jpg", ".jpeg")
FEATURES = {
    "image_name": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "target": tf.io.FixedLenFeature([], tf.string, default_value=""),
}
AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a domain's images live: record files, JPEG files, one zip of JPEGs, one
    tensorflow-datasets split (files = its ``tfds:`` spec), or a list of these (``parts``)."""

    kind: str  # "tfrec" | "jpg" | "zip" | "tfds" | "list"
    files: tuple[str, ...]
    count: int | None = None  # known without reading the data, else None
    parts: tuple["Source", ...] = ()
    skip: int = 0  # images left out at the start (held out for in-training evaluation)


# --------------------------------------------------------------------------- resolution


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _list(folder: str, suffixes: tuple[str, ...]) -> list[str]:
    names = tf.io.gfile.listdir(folder)
    return sorted(
        tf.io.gfile.join(folder, n) for n in names if n.lower().endswith(suffixes)
    )


def _from_files(files: list[str], origin: str) -> Source:
    records = [f for f in files if f.lower().endswith(RECORD_SUFFIXES)]
    images = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
    if records:
        counts = [count_in_name(f) for f in records]
        count = sum(counts) if None not in counts else None
        return Source("tfrec", tuple(records), count)
    if images:
        return Source("jpg", tuple(images), len(images))
    raise UserError(f"{origin}: no .tfrec records or .jpg images found")


def resolve(path, domain: str | None = None) -> Source:
    """Find a domain's images from a data root, a `*_tfrec`/`*_jpg` folder, a glob, a file,
    a ``tfds:NAME[:SPLIT]`` data set, or a list of these (their images combined).

    A data root (holding `monet_tfrec/`, `photo_jpg/`, ...) needs `domain`; records are
    preferred over JPEGs when both are there.
    """
    if isinstance(path, (list, tuple)):
        return _combined([resolve(p, domain) for p in path])
    path = str(path)
    if tfds_source.is_spec(path):
        return Source("tfds", (path,), tfds_source.count(path))
    if domain is not None and domain not in DOMAINS:
        raise UserError(f"domain {domain!r} is not one of {', '.join(DOMAINS)}")
    if _is_glob(path):
        files = sorted(tf.io.gfile.glob(path)) if "://" in path else sorted(_glob.glob(path))
        if not files:
            raise UserError(f"{path}: the pattern matches no files")
        return _from_files(files, path)
    if not tf.io.gfile.exists(path):
        raise UserError(f"{path}: no such file or folder")
    if not tf.io.gfile.isdir(path):
        if path.lower().endswith(".zip"):
            return Source("zip", (path,), None)
        if path.lower().endswith(RECORD_SUFFIXES + IMAGE_SUFFIXES):
            return _from_files([path], path)
        raise UserError(f"{path}: not a .tfrec, .jpg or .zip file")
    if domain is not None:
        for sub in (f"{domain}_tfrec", f"{domain}_jpg"):
            candidate = tf.io.gfile.join(path, sub)
            if tf.io.gfile.isdir(candidate):
                return _from_files(_list(candidate, RECORD_SUFFIXES + IMAGE_SUFFIXES), candidate)
    files = _list(path, RECORD_SUFFIXES + IMAGE_SUFFIXES)
    if not files and domain is None and any(
        tf.io.gfile.isdir(tf.io.gfile.join(path, f"{d}_{k}")) for d in DOMAINS for k in ("tfrec", "jpg")
    ):
        raise UserError(f"{path}: a data root; say which domain (monet or photo) to read")
    if not files and domain is not None:
        raise UserError(f"{path}: no {domain}_tfrec/ or {domain}_jpg/ folder and no images in it")
    return _from_files(files, path)


def _combined(parts: list[Source]) -> Source:
    if not parts:
        raise UserError("an empty list of sources")
    if len(parts) == 1:
        return parts[0]
    counts = [p.count for p in parts]
    return Source("list", tuple(f for p in parts for f in p.files),
                  None if None in counts else sum(counts), tuple(parts))


def example_bytes(name: str, jpeg: bytes, target: str) -> bytes:
    """One record in the competition's schema: `image_name`, `image` (JPEG), `target`."""
    def feature(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    example = tf.train.Example(features=tf.train.Features(feature={
        "image_name": feature(name.encode()), "image": feature(jpeg), "target": feature(target.encode()),
    }))
    return example.SerializeToString()


# --------------------------------------------------------------------------- reading


def _zip_member_names(path: str) -> list[str]:
    try:
        with tf.io.gfile.GFile(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as err:
        raise UserError(f"{path}: not a zip file ({err})") from None
    names = [n for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
    if not names:
        raise UserError(f"{path}: the zip holds no .jpg images")
    return names


def _zip_bytes(path: str) -> tf.data.Dataset:
    names = _zip_member_names(path)

    def members():
        with tf.io.gfile.GFile(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
            for name in names:
                yield name.encode(), zf.read(name)

    spec = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string))
    return tf.data.Dataset.from_generator(members, output_signature=spec)


def _parse_record(serialized):
    ex = tf.io.parse_single_example(serialized, FEATURES)
    return ex["image_name"], ex["image"]


def without_first(source: Source, count: int) -> Source:
    """The source less its first `count` images (in file order)."""
    known = None if source.count is None else max(0, source.count - count)
    return dataclasses.replace(source, skip=source.skip + count, count=known)


def _encoded(source: Source, *, parallel_files: bool = True) -> tf.data.Dataset:
    """(name, JPEG bytes) pairs, unbatched, in a deterministic order."""
    ds = _encoded_all(source, parallel_files=parallel_files)
    return ds.skip(source.skip) if source.skip else ds


def _encoded_all(source: Source, *, parallel_files: bool = True) -> tf.data.Dataset:
    if source.kind == "list":
        ds = _encoded(source.parts[0], parallel_files=parallel_files)
        for part in source.parts[1:]:
            ds = ds.concatenate(_encoded(part, parallel_files=parallel_files))
        return ds
    if source.kind == "tfds":
        return tfds_source.encoded(source.files[0])
    if source.kind == "tfrec":
        files = tf.data.Dataset.from_tensor_slices(list(source.files))
        if not parallel_files:
            return tf.data.TFRecordDataset(files).map(_parse_record, num_parallel_calls=AUTOTUNE)
        ds = files.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(source.files), 16),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        return ds.map(_parse_record, num_parallel_calls=AUTOTUNE)
    if source.kind == "jpg":
        names = tf.data.Dataset.from_tensor_slices(list(source.files))
        return names.map(lambda f: (f, tf.io.read_file(f)), num_parallel_calls=AUTOTUNE)
    return _zip_bytes(source.files[0])


def decode(jpeg: tf.Tensor, size: int = SOURCE_SIZE) -> tf.Tensor:
    """JPEG bytes -> uint8 [size, size, 3], with a static shape."""
    image = tf.io.decode_jpeg(jpeg, channels=3)
    return tf.ensure_shape(image, [size, size, 3])


def read_images(path: str, domain: str | None = None, *, source_size: int = SOURCE_SIZE,
                verify: bool = True) -> tf.data.Dataset:
    """Every image once, unbatched uint8 [source_size, source_size, 3], in file order."""
    source = resolve(path, domain)
    if verify:
        verify_source(source, source_size)
    return source_images(source, source_size)


def source_images(source: Source, source_size: int = SOURCE_SIZE) -> tf.data.Dataset:
    """A resolved source's images once, unbatched uint8, in file order (no verification)."""
    return _encoded(source).map(lambda _, jpeg: decode(jpeg, source_size), num_parallel_calls=AUTOTUNE)


def count_images(source: Source) -> int:
    """Image count: from `-N` record file names when all have one, otherwise counted once."""
    if source.count is not None:
        return source.count
    if source.kind == "zip":
        return max(0, len(_zip_member_names(source.files[0])) - source.skip)
    return int(_encoded(source).reduce(np.int64(0), lambda n, _: n + 1).numpy())


# --------------------------------------------------------------------------- verification


def _unit_label(source: Source, file: str | None, index: int, name: bytes) -> str:
    if source.kind == "tfrec":
        label = f"{file}: record {index}"
        return label + (f" ({name.decode(errors='replace')})" if name else "")
    if source.kind == "zip":
        return f"{file}: member {(name or _zip_member_names(file)[source.skip + index].encode()).decode(errors='replace')}"
    if source.kind == "tfds":
        return f"{file}: example {index}"
    return name.decode(errors="replace") if name else source.files[source.skip + index]


def verify_source(source: Source, source_size: int = SOURCE_SIZE) -> int:
    """Check every image decodes to source_size x source_size x 3; returns the image count.

    Reads every image once and raises one UserError listing every bad file (and record)
    found (`gan_tpu.data_check`), in the user's terms.
    """
    report = data_check.Report()
    total = _verify(source, source_size, report)
    if report.problems:
        raise UserError(report.message())
    return total


def _verify(source: Source, source_size: int, report: data_check.Report) -> int:
    if source.kind == "list":
        return sum(_verify(part, source_size, report) for part in source.parts)
    units = [(f, Source(source.kind, (f,))) for f in source.files] if source.kind == "tfrec" else [
        (source.files[0] if source.kind in ("zip", "tfds") else None, source)
    ]
    total = 0
    for file, unit in units:
        def label(index, name, file=file):
            return _unit_label(source, file, index, name)
        total += data_check.scan(_encoded(unit, parallel_files=False), label, file or source.files[0],
                                 source_size, report, record=source.kind in ("tfrec", "tfds"))
    return total


# --------------------------------------------------------------------------- training input


def augment(image: tf.Tensor, seed: tf.Tensor, *, size: int, rot90: bool = False) -> tf.Tensor:
    """Resize to size·286/256, random crop `size`, random flip (and rot90): stateless, seeded."""
    big = int(round(size * 286 / 256))
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.resize(image, [big, big], method="bilinear")
    image = tf.image.stateless_random_crop(image, [size, size, 3], seed=seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    if rot90:
        k = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
        image = tf.image.rot90(image, k)
    return image


def domain_dataset(source: Source, *, image_size: int, seed, source_size: int = SOURCE_SIZE,
                   augment_images: bool = True, rot90: bool = False, cache: bool = False,
                   shuffle_buffer: int = 2048, global_batch: int = 0) -> tf.data.Dataset:
    """One domain's endless stream of float32 [-1, 1] images of static shape, unbatched.

    Everything random is keyed on `seed` (an int or an int64 tensor), so a stream is the
    same every time it is built with the same seed.
    """
    seed = tf.cast(seed, tf.int64)
    share = _process_share(source) if global_batch else None
    # Shuffle the small encoded bytes, not decoded images, and never a buffer larger than
    # the data: a buffer over a repeated small set decodes thousands of images up front.
    ds = _encoded(share or source).map(lambda _, jpeg: jpeg)
    if cache:
        ds = ds.cache()
    count = (share or source).count
    block = min(shuffle_buffer, count) if count else shuffle_buffer
    shuffle_seed = seed * distributed.count() + distributed.index() if share else seed
    ds = shuffled_blocks(ds, block, shuffle_seed).enumerate()
    if share:  # past one process, reading its own files: the seeds of its rows' places
        ds = ds.map(lambda i, jpeg: (distributed.global_position(i, global_batch), jpeg))
    elif global_batch:  # past one process: this process's rows of each global batch
        ds = distributed.process_rows(ds, global_batch)

    def prepare(index, jpeg):
        image = to_float(decode(jpeg, source_size))
        if augment_images:
            return augment(image, tf.stack([seed, index]), size=image_size, rot90=rot90)
        if image_size != source_size:
            image = tf.image.resize(image, [image_size, image_size], method="area")
        return image

    return ds.map(prepare, num_parallel_calls=AUTOTUNE)


def shuffled_blocks(ds: tf.data.Dataset, block: int, seed) -> tf.data.Dataset:
    """`ds` repeated endlessly, each pass cut into blocks of `block` elements, each block
    permuted by a stateless shuffle keyed on (seed, block number) alone.

    Every pass holds each element once, and the order is the same on every process and
    whatever TensorFlow's global seed is (`Dataset.shuffle` mixes that seed into its own, and
    with a tensor seed and a global seed of 0 it cannot be traced inside `flat_map`).
    """
    seed = tf.cast(seed, tf.int64)

    def permute(number, elements):  # second key word < 0: never one of augment's (seed, index)
        return tf.random.experimental.stateless_shuffle(elements, tf.stack([seed, -1 - number]))

    blocks = ds.batch(block).repeat().enumerate().map(permute)
    return blocks.prefetch(1).unbatch()  # the next block is read while this one is used


def _process_share(source: Source) -> Source | None:
    """Past one process, this process's record files when they divide over the processes
    (gan_tpu.distributed.process_files); None: every process reads all and keeps its rows."""
    files = None if source.skip else distributed.process_files(source.files, source.kind)
    if files is None:
        return None
    counts = [count_in_name(f) for f in files]
    return dataclasses.replace(source, files=files, count=None if None in counts else sum(counts))


def unpaired_dataset(monet: Source, photo: Source, *, global_batch: int, image_size: int,
                     seed=0, **kwargs) -> tf.data.Dataset:
    """(monet, photo) batches of `global_batch` with static shapes; both streams repeat.
    Past one process, this process's rows of each global batch (gan_tpu.distributed)."""
    seed = tf.cast(seed, tf.int64)
    a = domain_dataset(monet, image_size=image_size, seed=2 * seed, global_batch=global_batch, **kwargs)
    b = domain_dataset(photo, image_size=image_size, seed=2 * seed + 1, global_batch=global_batch, **kwargs)
    local_batch = global_batch // distributed.count()  # this process's share (gan_tpu.distributed)
    return tf.data.Dataset.zip((a, b)).batch(local_batch, drop_remainder=True)


def training_stream(monet: Source, photo: Source, *, first_epoch: int, epochs: int, steps: int,
                    skip_steps: int = 0, seed: int = 0, **kwargs) -> tf.data.Dataset:
    """The batches of epochs [first_epoch, epochs), each epoch seeded by (seed, epoch).

    Seeding per epoch lets a resumed run see exactly the batches a straight run would:
    `skip_steps` drops the steps already trained in `first_epoch`.
    """
    def epoch_batches(epoch):
        return unpaired_dataset(monet, photo, seed=seed * 100_003 + epoch, **kwargs).take(steps)

    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches)
    return ds.skip(skip_steps).prefetch(AUTOTUNE)


def steps_per_epoch(monet_count: int, photo_count: int, global_batch: int) -> int:
    """One epoch passes over the larger domain once (the smaller one repeats)."""
    return max(1, max(monet_count, photo_count) // global_batch)
