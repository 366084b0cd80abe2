"""Readers: Kaggle layout, counts, static shapes, batch arithmetic and every bad input."""
import hashlib
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import data, runtime
from gan_tpu.errors import UserError
from gan_tpu.sample_data import write_sample_data
from tests.helpers import REALDATA, jpeg, smooth_images, write_domain_records, write_records, two_replicas


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sample"))
    write_sample_data(root, monet=6, photo=10, seed=3)
    return root


def test_record_round_trip_matches_pixels_within_jpeg_tolerance(tmp_path):
    images = smooth_images(5)
    write_domain_records(str(tmp_path / "monet_tfrec"), images)
    read = np.stack(list(data.read_images(str(tmp_path), "monet").as_numpy_iterator()))
    assert read.shape == (5, 256, 256, 3) and read.dtype == np.uint8
    assert np.abs(read.astype(int) - images.astype(int)).mean() < 2.0


def test_sample_data_has_kaggle_layout_and_records_equal_jpgs(sample_root):
    assert sorted(os.listdir(sample_root)) == ["monet_jpg", "monet_tfrec", "photo_jpg", "photo_tfrec"]
    names = sorted(os.listdir(os.path.join(sample_root, "photo_tfrec")))
    assert names == ["photo00-10.tfrec"]
    assert len(os.listdir(os.path.join(sample_root, "photo_jpg"))) == 10
    records = data.resolve(sample_root, "photo")
    jpgs = data.resolve(os.path.join(sample_root, "photo_jpg"))
    assert (records.kind, records.count, jpgs.kind, jpgs.count) == ("tfrec", 10, "jpg", 10)
    a = sorted(x.tobytes() for x in data.source_images(records).as_numpy_iterator())
    b = sorted(x.tobytes() for x in data.source_images(jpgs).as_numpy_iterator())
    assert a == b  # the same JPEG bytes behind both layouts


def test_sample_images_look_like_pictures(sample_root):
    sizes = [os.path.getsize(os.path.join(sample_root, "monet_jpg", f))
             for f in os.listdir(os.path.join(sample_root, "monet_jpg"))]
    # Uniform noise at q95 is ~150 KB, a flat image ~2 KB: pictures sit between.
    assert all(5_000 < s < 80_000 for s in sizes), sizes
    image = next(data.read_images(sample_root, "monet").as_numpy_iterator()).astype(float)
    neighbour = np.abs(np.diff(image, axis=1)).mean()
    assert neighbour < 20 and image.std() > 8  # smooth structure, not flat


def test_count_comes_from_file_names_else_is_counted(tmp_path):
    write_domain_records(str(tmp_path / "a"), smooth_images(3), name="photo00-352.tfrec")
    assert data.count_images(data.resolve(str(tmp_path / "a"))) == 352  # trusted, not read
    write_domain_records(str(tmp_path / "b"), smooth_images(3), name="photos.tfrec")
    assert data.count_images(data.resolve(str(tmp_path / "b"))) == 3


def test_paths_root_folder_glob_file_and_zip(sample_root, tmp_path):
    folder = os.path.join(sample_root, "monet_tfrec")
    assert data.resolve(folder).files == data.resolve(sample_root, "monet").files
    assert data.resolve(os.path.join(folder, "*.tfrec")).kind == "tfrec"
    one = data.resolve(data.resolve(folder).files[0])
    assert len(one.files) == 1
    zpath = tmp_path / "images.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i, img in enumerate(smooth_images(3)):
            zf.writestr(f"{i + 1}.jpg", jpeg(img))
    zipped = data.read_images(str(zpath))
    assert len(list(zipped)) == 3 and zipped.element_spec.shape == (256, 256, 3)


@pytest.mark.skipif(not os.path.isdir(REALDATA), reason="shared/realdata not present")
def test_reads_the_genuine_kaggle_record_file():
    path = os.path.join(REALDATA, "monet_tfrec")
    source = data.resolve(path)
    assert data.count_images(source) == 60 and data.verify_source(source) == 60
    first = next(data._encoded(source).as_numpy_iterator())
    assert len(first[0]) == 10 and int(first[0], 16) >= 0  # 10-hex image_name
    assert next(data.read_images(path).as_numpy_iterator()).shape == (256, 256, 3)


def test_training_stream_is_static_and_batched_globally(sample_root):
    monet, photo = data.resolve(sample_root, "monet"), data.resolve(sample_root, "photo")
    ds = data.training_stream(monet, photo, first_epoch=0, epochs=2, steps=3,
                              global_batch=4, image_size=32)
    spec = ds.element_spec
    assert [s.shape.as_list() for s in spec] == [[4, 32, 32, 3], [4, 32, 32, 3]]
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 6
    assert all(-1.0 <= b.min() and b.max() <= 1.0 for pair in batches for b in pair)


def test_resumed_stream_equals_the_straight_one(sample_root):
    monet, photo = data.resolve(sample_root, "monet"), data.resolve(sample_root, "photo")
    kw = dict(steps=3, global_batch=2, image_size=32, seed=5)
    straight = list(data.training_stream(monet, photo, first_epoch=0, epochs=3, **kw).as_numpy_iterator())
    resumed = list(data.training_stream(monet, photo, first_epoch=1, epochs=3, skip_steps=2,
                                        **kw).as_numpy_iterator())
    assert len(resumed) == 4
    for a, b in zip(straight[5:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def _rows(ds, domain=None):
    """A stream's images as short digests, in order (one domain's of each batch when `domain` is given)."""
    rows = []
    for element in ds.as_numpy_iterator():
        images = element if domain is None else element[domain]
        rows += [hashlib.sha1(x.tobytes()).hexdigest()[:12] for x in images]
    return rows


def test_each_pass_is_a_fresh_permutation_keyed_on_the_seed_alone(sample_root):
    photo = data.resolve(sample_root, "photo")  # 10 images in one file
    in_file_order = _rows(data.source_images(photo).map(data.to_float).batch(10))

    def passes(seed, block, n=3):
        ds = data.domain_dataset(photo, image_size=256, seed=seed, augment_images=False, shuffle_buffer=block)
        rows = _rows(ds.take(10 * n).batch(10))
        return [rows[10 * k:10 * (k + 1)] for k in range(n)]

    for block in (4, 2048):  # blocks of 4, 4 and 2 images per pass; one block of all 10
        three = passes(5, block)
        assert all(sorted(p) == sorted(in_file_order) for p in three)  # every image once a pass
        assert len({tuple(p) for p in three}) == 3 and in_file_order not in three
    assert all(set(p[:4]) == set(in_file_order[:4]) for p in passes(5, 4))  # a block stays a block
    assert passes(5, 2048, 1) == three[:1] and passes(6, 2048, 1) != three[:1]


def test_stream_order_ignores_tensorflow_global_seed(sample_root):
    """tf.data's shuffle mixes the global seed into its own: set_seed(0) made it fail inside
    flat_map, any other value changed the order. Only the config's seed may decide it."""
    from tensorflow.python.eager import context

    monet, photo = data.resolve(sample_root, "monet"), data.resolve(sample_root, "photo")

    def monet_rows(seed):  # 2 epochs x 3 steps x 2 images: the 6 paintings once an epoch
        return _rows(data.training_stream(monet, photo, first_epoch=0, epochs=2, steps=3, global_batch=2,
                                          image_size=32, augment_images=False, seed=seed), domain=0)

    saved = context.global_seed()
    try:
        orders = {}
        for global_seed in (None, 0, 123):
            tf.random.set_seed(global_seed)
            orders[global_seed] = monet_rows(5)
    finally:
        tf.random.set_seed(saved)
    assert orders[0] == orders[None] == orders[123]
    first, second = orders[None][:6], orders[None][6:]
    assert sorted(first) == sorted(second) and first != second  # epochs: other orders, same images
    assert monet_rows(6) != orders[None]


def test_global_batch_is_per_replica_times_replicas(sample_root):
    strategy = two_replicas()
    assert strategy.num_replicas_in_sync == 2
    global_batch = runtime.global_batch_size(3, strategy)
    assert global_batch == 6
    monet, photo = data.resolve(sample_root, "monet"), data.resolve(sample_root, "photo")
    ds = data.training_stream(monet, photo, first_epoch=0, epochs=1, steps=1,
                              global_batch=global_batch, image_size=32)
    dist = next(iter(strategy.experimental_distribute_dataset(ds)))
    shapes = [t.shape.as_list() for t in strategy.experimental_local_results(dist[0])]
    assert shapes == [[3, 32, 32, 3], [3, 32, 32, 3]]
    assert data.steps_per_epoch(300, 7038, global_batch) == 1173


# ----------------------------------------------------------------------------- bad input


def _error(path, domain=None):
    with pytest.raises(UserError) as err:
        data.verify_source(data.resolve(str(path), domain))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_folder(tmp_path):
    assert "no such file or folder" in _error(tmp_path / "nope")


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    assert "no .tfrec records or .jpg images" in _error(tmp_path)
    assert "no monet_tfrec/ or monet_jpg/" in _error(tmp_path, "monet")


def test_truncated_record_names_file_and_index(tmp_path):
    path = write_domain_records(str(tmp_path), smooth_images(3), name="monet00-3.tfrec")
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size - 500)
    message = _error(path)
    assert message == f"{path}: truncated record 2 (after 2 good records)"


def test_example_without_image(tmp_path):
    no_image = tf.train.Example(features=tf.train.Features(feature={
        "image_name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}))
    good = data.example_bytes("a", jpeg(smooth_images(1)[0]), "monet")
    path = write_records(str(tmp_path / "m-2.tfrec"), [good, no_image.SerializeToString()])
    message = _error(path)
    assert message == f"{path}: record 1 (x): no image (the Example's 'image' feature is missing or empty)"


def test_image_bytes_not_jpeg(tmp_path):
    png = tf.io.encode_png(smooth_images(1)[0]).numpy()
    path = write_records(str(tmp_path / "m-1.tfrec"), [data.example_bytes("p", png, "monet")])
    assert "record 0 (p): not a JPEG (PNG data)" in _error(path)


def test_image_not_256(tmp_path):
    small = jpeg(smooth_images(1, size=128)[0])
    path = write_records(str(tmp_path / "m-1.tfrec"), [data.example_bytes("s", small, "monet")])
    assert _error(path) == f"{path}: record 0 (s): 128×128 pixels, expected 256×256"
    (tmp_path / "jpgs").mkdir()
    (tmp_path / "jpgs" / "a.jpg").write_bytes(small)
    assert _error(tmp_path / "jpgs").endswith("a.jpg: 128×128 pixels, expected 256×256")


def test_corrupt_jpeg_body_in_jpg_folder(tmp_path):
    good = jpeg(smooth_images(1)[0])
    (tmp_path / "a.jpg").write_bytes(good)
    (tmp_path / "b.jpg").write_bytes(good[: len(good) // 3])
    assert _error(tmp_path).endswith("b.jpg: truncated or corrupt JPEG data (the header is fine, the image does not decode)")


def test_augment_false_gives_each_image_resized_and_rot90_only_turns_the_augmented_crop(tmp_path):
    images = smooth_images(2, seed=9)
    images[:, :64, :32] = 255  # a corner mark: flips and turns are visible
    source = data.resolve(write_domain_records(str(tmp_path / "m"), images), "monet")

    def stream(n=32, **kw):
        ds = data.domain_dataset(source, image_size=64, seed=5, **kw).take(n)
        return np.stack([x.numpy() for x in ds])

    plain = [tf.image.resize(data.to_float(tf.io.decode_jpeg(jpeg(i))), [64, 64], method="area").numpy()
             for i in images]
    for x in stream(8, augment_images=False):  # each image as it is, resized: no crop, flip, turn
        assert min(np.abs(x - y).max() for y in plain) < 1e-6
    cropped, turned = stream(augment_images=True), stream(augment_images=True, rot90=True)
    assert not any(np.allclose(x, y, atol=1e-3) for x in cropped for y in plain)  # augmented: never the plain image
    ks = []
    for x, y in zip(cropped, turned):  # the same crop and flip (same seeds), then turned k quarters
        k = [k for k in range(4) if np.array_equal(np.rot90(x, k), y)]
        assert len(k) == 1, k
        ks.append(k[0])
    assert sorted(set(ks)) == [0, 1, 2, 3], ks
