"""Feature extractors: the kaggle GraphDef loader (on a stand-in graph), inception_v3, tiny."""
import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import two_replicas as make_two_replicas

from gan_tpu.errors import UserError
from gan_tpu.metrics import extractors as ex

STANDIN_DIM = 16
STANDIN_CLASSES = 5


def standin_graph_def(seed=0):
    """A small GraphDef shaped like Kaggle's: Cast → ExpandDims:0 → ResizeBilinear → … → pool_3:0,
    plus softmax/logits/MatMul, with made-up weights (the real graph cannot be had here)."""
    rng = np.random.RandomState(seed)
    graph = tf.Graph()
    with graph.as_default():
        cast = tf.compat.v1.placeholder(tf.float32, [None, None, 3], name="Cast")
        x = tf.expand_dims(cast, 0, name="ExpandDims")
        x = tf.compat.v1.image.resize_bilinear(x, [32, 32], name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1.0 / 128.0, name="Mul")
        w = tf.constant((rng.standard_normal((3, 3, 3, STANDIN_DIM)) * 0.3).astype(np.float32), name="conv/weights")
        x = tf.nn.relu(tf.nn.conv2d(x, w, 2, "SAME"))
        x = tf.nn.avg_pool2d(x, 16, 1, "VALID", name="pool_3")
        flat = tf.reshape(x, [-1, STANDIN_DIM], name="pool_3/_reshape")
        sw = tf.constant(rng.standard_normal((STANDIN_DIM, STANDIN_CLASSES)).astype(np.float32), name="softmax/weights")
        tf.nn.softmax(tf.matmul(flat, sw, name="softmax/logits/MatMul"), name="softmax")
    return graph.as_graph_def()


def write_standin(folder, tgz=False, data=None):
    data = data or standin_graph_def().SerializeToString()
    if not tgz:
        path = os.path.join(folder, ex.GRAPH_NAME)
        with open(path, "wb") as fh:
            fh.write(data)
        return path
    path = os.path.join(folder, ex.GRAPH_TGZ)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in (("LICENSE", b"Apache"), (ex.GRAPH_NAME, data)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def per_image_in_tf1_session(images):
    """What Kaggle's scorer does: feed each image to ExpandDims:0 in a TF1 session."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(standin_graph_def(), name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            feats, probs = zip(*[sess.run(["pool_3:0", "softmax:0"], {"ExpandDims:0": im[None].astype(np.float32)})
                                 for im in images])
    return np.stack([f.reshape(-1) for f in feats]), np.stack([p.reshape(-1) for p in probs])


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(1).randint(0, 256, (7, 40, 40, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def two_replicas():
    strategy = make_two_replicas()
    assert strategy.num_replicas_in_sync == 2
    return strategy


@pytest.mark.parametrize("tgz", [False, True], ids=["pb", "tgz"])
def test_kaggle_loader_matches_tf1_session_batched_over_two_replicas(tmp_path, images, two_replicas, tgz):
    path = write_standin(str(tmp_path), tgz)
    extractor = ex.get_extractor(f"kaggle:{path}", strategy=two_replicas)
    assert extractor.dim == STANDIN_DIM and extractor.has_probs and extractor.comparable_with_kaggle
    feats, probs = extractor.features(images, batch_size=4)  # 4 + 3: a partial last batch
    want_feats, want_probs = per_image_in_tf1_session(images)
    assert feats.shape == (7, STANDIN_DIM) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, want_feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-6)


def test_kaggle_key_is_the_graph_digest_for_pb_and_tgz(tmp_path):
    data = standin_graph_def().SerializeToString()
    a = ex.get_extractor(f"kaggle:{write_standin(str(tmp_path), False, data)}")
    b = ex.get_extractor(f"kaggle:{write_standin(str(tmp_path), True, data)}")
    assert a.key == b.key and a.key.startswith("kaggle-")


def test_kaggle_found_in_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_TPU_CACHE", str(tmp_path))
    with pytest.raises(UserError, match=f"{ex.GRAPH_TGZ}.*{tmp_path}"):
        ex.get_extractor("kaggle")
    write_standin(str(tmp_path), tgz=True)
    assert ex.get_extractor("kaggle").path == os.path.join(str(tmp_path), ex.GRAPH_TGZ)


def test_kaggle_bad_files_are_one_line_errors(tmp_path):
    def error(spec):
        with pytest.raises(UserError) as info:
            ex.get_extractor(spec)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "does not exist" in error(f"kaggle:{tmp_path}/nope.pb")
    assert ex.GRAPH_NAME in error(f"kaggle:{tmp_path}/nope.pb")
    corrupt = tmp_path / "corrupt.pb"
    corrupt.write_bytes(b"\x0a\xff\xff\xff garbage")
    assert "corrupt GraphDef" in error(f"kaggle:{corrupt}")
    other = tf.Graph()
    with other.as_default():
        tf.identity(tf.constant(1.0), name="out")
    wrong = tmp_path / "other.pb"
    wrong.write_bytes(other.as_graph_def().SerializeToString())
    assert "not an Inception graph" in error(f"kaggle:{wrong}")
    empty_tgz = tmp_path / "empty.tgz"
    with tarfile.open(empty_tgz, "w:gz") as tar:
        info = tarfile.TarInfo("README")
        tar.addfile(info, io.BytesIO(b""))
    assert f"no {ex.GRAPH_NAME}" in error(f"kaggle:{empty_tgz}")
    assert "unknown extractor 'resnet'" in error("resnet")
    assert "inception_v3 extractor" in error(f"inception_v3:{tmp_path}/missing.weights.h5")


def test_inputs_uint8_and_minus_one_to_one_floats_mean_the_same_pixels(images):
    tiny = ex.get_extractor("tiny")
    floats = images.astype(np.float32) / 127.5 - 1.0
    a, _ = tiny.features(images, 8)
    b, _ = tiny.features(floats, 8)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ex.to_pixels(tf.constant([[-2.0, 1.5]])).numpy(), [[0.0, 255.0]])


def test_tiny_is_fixed_seeded_labelled_and_resizes_bilinear_to_64(images, two_replicas):
    tiny = ex.get_extractor("tiny")
    again = ex.get_extractor("tiny", strategy=two_replicas)
    f1, p1 = tiny.features(images, 7)
    f2, p2 = again.features(images, 4)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    assert f1.shape == (7, 64) and p1.shape == (7, 10) and (f1 >= 0).all()
    np.testing.assert_allclose(p1.sum(1), 1.0, rtol=1e-5)
    assert "not comparable with Kaggle" in tiny.label and not tiny.comparable_with_kaggle
    # Documented resize: tf.image.resize bilinear (half-pixel, no antialias) to 64x64 first.
    resized = tf.image.resize(tf.cast(images, tf.float32), [64, 64], method="bilinear", antialias=False)
    direct, _ = tiny.forward(tf.cast(resized, tf.float32))
    np.testing.assert_allclose(f1, direct.numpy(), rtol=1e-5, atol=1e-6)
    near, _ = tiny.forward(tf.image.resize(tf.cast(images, tf.float32), [64, 64], method="nearest"))
    assert np.abs(near.numpy() - f1).max() > 1e-3  # the resize choice does move the features


def test_inception_v3_random_weights_tiny_size_and_weights_file(tmp_path, images):
    import keras

    v3 = ex.KerasInceptionV3(weights=None, size=75)
    feats, probs = v3.features(images[:3], 3)
    assert feats.shape == (3, 2048) and probs.shape == (3, 1000) and v3.key == "inception_v3-75-none"
    assert "not comparable" in v3.label
    # Documented preprocessing: bilinear resize to the input size, then x / 127.5 - 1.
    x = tf.image.resize(tf.cast(images[:3], tf.float32), [75, 75], method="bilinear", antialias=False) / 127.5 - 1
    np.testing.assert_allclose(feats, v3.model(x)[0].numpy(), rtol=1e-4, atol=1e-5)
    # A no-top weights file (what include_top=False saves) loads, without class probabilities.
    notop = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=(75, 75, 3))
    path = str(tmp_path / "notop.weights.h5")
    notop.save_weights(path)
    loaded = ex.get_extractor(f"inception_v3:{path}", size=75)
    f2, p2 = loaded.features(images[:2], 2)
    assert p2 is None and f2.shape == (2, 2048) and not loaded.has_probs
    np.testing.assert_allclose(f2, notop(x[:2]).numpy(), rtol=1e-4, atol=1e-5)
    bogus = tmp_path / "bogus.weights.h5"
    bogus.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not InceptionV3 weights"):
        ex.get_extractor(f"inception_v3:{bogus}", size=75)


def test_progress_prints_counts(capsys):
    import sys

    progress = ex.Progress("generated", total=10, every=0.0, stream=sys.stdout)
    progress(4)
    progress(10)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("generated: 4/10 images (") and out[1].startswith("generated: 10/10 images")
