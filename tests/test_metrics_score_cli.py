"""`gan-tpu score` through gan_tpu.cli.main on real small files, and the MiFID training callback."""
import csv
import json
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import cli
from gan_tpu.metrics import extractors as ex
from gan_tpu.metrics import kaggle_numpy as kn
from gan_tpu.metrics import stats
from gan_tpu.metrics.checkerboard import checkerboard_index
from gan_tpu.metrics.callback import MiFIDCallback
from gan_tpu.metrics.scoring import Reference
from gan_tpu.sample_data import write_sample_data
from tests.helpers import jpeg
from tests.test_metrics_extractors import write_standin


def write_zip(path, images):
    with zipfile.ZipFile(path, "w") as zf:
        for i, image in enumerate(images):
            zf.writestr(f"{i:05d}.jpg", jpeg(image))
    return str(path)


def decode_zip(path):
    with zipfile.ZipFile(path) as zf:
        return np.stack([tf.io.decode_jpeg(zf.read(n)).numpy() for n in sorted(zf.namelist())])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    data = str(root / "data")
    write_sample_data(data, monet=8, photo=12, seed=5)
    photos = np.stack(list(tf.data.Dataset.list_files(os.path.join(data, "photo_jpg", "*.jpg"), shuffle=False)
                           .map(lambda f: tf.io.decode_jpeg(tf.io.read_file(f))).as_numpy_iterator()))
    zip_path = write_zip(root / "images.zip", photos)
    return {"root": root, "data": data, "monet_tfrec": os.path.join(data, "monet_tfrec"), "zip": zip_path}


def score(args, capsys):
    code = cli.main(["score", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_score_tiny_prints_table_writes_json_and_caches(files, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    out_json = str(tmp_path / "scores.json")
    args = [files["zip"], "--reference", files["data"], "--extractor", "tiny", "--cache", cache,
            "--json", out_json, "--batch", "5", "--kid-subsets", "4", "--checkerboard", "10",
            "--photos", os.path.join(files["data"], "photo_jpg")]
    code, out, err = score(args, capsys)
    assert code == 0, err
    lines = out.splitlines()
    for label in ("FID:", "memorization distance:", "MiFID:", "KID:", "Inception Score:", "checkerboard index:"):
        assert sum(line.startswith(label) for line in lines) == 1, out
    assert "10 images; photos " in out and "not a Kaggle figure" in out
    assert "not comparable with Kaggle's scores" in out
    assert "12 generated, 8 reference" in out
    assert "generated: 12/12 images" in err and "reference: extracting tiny features of 8 images" in err
    scores = json.load(open(out_json))
    assert scores["n_generated"] == 12 and scores["n_reference"] == 8
    assert scores["extractor"] == "tiny" and scores["comparable_with_kaggle"] is False
    # The same numbers as Kaggle's formula on the same features.
    tiny = ex.get_extractor("tiny")
    gen, _ = tiny.features(decode_zip(files["zip"]))
    ref, _ = tiny.features(np.stack(list(tf.data.TFRecordDataset(
        tf.io.gfile.glob(files["monet_tfrec"] + "/*.tfrec")).map(
        lambda r: tf.io.decode_jpeg(tf.io.parse_single_example(
            r, {"image": tf.io.FixedLenFeature([], tf.string)})["image"])).as_numpy_iterator())))
    want = kn.mifid(gen, ref)
    assert scores["fid"] == pytest.approx(want["fid"], rel=1e-3)
    assert scores["distance"] == pytest.approx(want["distance"], abs=1e-5)
    assert scores["mifid"] == pytest.approx(want["mifid"], rel=1e-3)
    # The checkerboard index of the first 10 images, the photo folder's as its baseline.
    assert scores["checkerboard_images"] == 10
    assert scores["checkerboard"] == pytest.approx(checkerboard_index(decode_zip(files["zip"])[:10]), rel=1e-9)
    photo_files = sorted(os.listdir(os.path.join(files["data"], "photo_jpg")))[:10]
    photos = np.stack([tf.io.decode_jpeg(tf.io.read_file(os.path.join(files["data"], "photo_jpg", f))).numpy()
                       for f in photo_files])
    assert scores["checkerboard_photos"] == pytest.approx(checkerboard_index(photos), rel=1e-9)
    cached = os.listdir(cache)
    assert len(cached) == 1 and cached[0].startswith("reference-tiny-") and cached[0].endswith(".npz")
    # Second run: the reference comes from the cache, same numbers.
    code, out2, err2 = score(args, capsys)
    assert code == 0 and "reference: extracting" not in err2 and "(cache " in err2
    assert json.load(open(out_json))["fid"] == pytest.approx(scores["fid"], rel=1e-12)
    # The cached .npz (or a --save-reference one) is itself a reference.
    code, out3, _ = score([files["zip"], "--reference", os.path.join(cache, cached[0]), "--extractor", "tiny",
                           "--kid-subsets", "0", "--checkerboard", "0", "--json", out_json], capsys)
    assert code == 0 and "KID:" not in out3 and "checkerboard" not in out3
    assert json.load(open(out_json))["mifid"] == pytest.approx(scores["mifid"], rel=1e-9)


def test_score_with_kaggle_standin_graph_tgz(files, tmp_path, capsys):
    tgz = write_standin(str(tmp_path), tgz=True)
    saved = str(tmp_path / "ref.npz")
    code, out, err = score([files["zip"], "--reference", files["monet_tfrec"], "--extractor", f"kaggle:{tgz}",
                            "--no-cache", "--save-reference", saved, "--kid-subsets", "3"], capsys)
    assert code == 0, err
    assert "extractor:              kaggle" in out and "not comparable" not in out
    ref = Reference.load(saved)
    assert ref.n == 8 and ref.features.shape == (8, 16)
    # A reference made with another extractor is refused.
    code, _, err = score([files["zip"], "--reference", saved, "--extractor", "tiny"], capsys)
    assert code == 2 and "made with extractor kaggle-" in err


def one_line_error(args, capsys):
    code, out, err = score(args, capsys)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.startswith("gan-tpu: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_a_one_line_error(files, tmp_path, capsys):
    ref = ["--reference", files["data"], "--extractor", "tiny", "--no-cache"]
    assert "no such file" in one_line_error([str(tmp_path / "missing.zip"), *ref], capsys)
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"this is not a zip")
    assert "not a zip" in one_line_error([str(bad_zip), *ref], capsys)
    png_zip = tmp_path / "png.zip"
    with zipfile.ZipFile(png_zip, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.jpg", tf.io.encode_png(np.full((256, 256, 3), i * 50, np.uint8)).numpy())
    assert "not JPEG data" in one_line_error([str(png_zip), *ref], capsys)
    small = write_zip(tmp_path / "small.zip", np.random.RandomState(0).randint(0, 255, (2, 64, 64, 3)).astype(np.uint8))
    assert "not 256x256x3" in one_line_error([small, *ref], capsys)
    one = write_zip(tmp_path / "one.zip", decode_zip(files["zip"])[:1])
    assert "at least 2 images" in one_line_error([one, *ref], capsys)
    lone_ref = tmp_path / "lone"
    lone_ref.mkdir()
    (lone_ref / "a.jpg").write_bytes(jpeg(decode_zip(files["zip"])[0]))
    assert "at least 2 images" in one_line_error(
        [files["zip"], "--reference", str(lone_ref), "--extractor", "tiny", "--no-cache"], capsys)
    assert "no such reference" in one_line_error(
        [files["zip"], "--reference", str(tmp_path / "nothing"), "--extractor", "tiny"], capsys)
    assert "unknown extractor 'vgg'" in one_line_error([files["zip"], "--reference", files["data"],
                                                        "--extractor", "vgg"], capsys)
    msg = one_line_error([files["zip"], "--reference", files["data"],
                          "--extractor", f"kaggle:{tmp_path}/classify_image_graph_def.pb"], capsys)
    assert "does not exist" in msg and ex.GRAPH_TGZ in msg and ex.GRAPH_NAME in msg
    corrupt = tmp_path / "corrupt.pb"
    corrupt.write_bytes(b"\x0a\xff\xff\xff garbage")
    assert "corrupt GraphDef" in one_line_error([files["zip"], "--reference", files["data"],
                                                  "--extractor", f"kaggle:{corrupt}"], capsys)
    not_npz = tmp_path / "x.npz"
    not_npz.write_bytes(b"nope")
    assert "not a reference .npz" in one_line_error([files["zip"], "--reference", str(not_npz),
                                                     "--extractor", "tiny"], capsys)


class _Net:
    """A stand-in 'translator': a fixed per-channel scaling of [-1, 1] images."""

    def __init__(self, scale):
        self.scale = tf.constant(scale, tf.float32)

    def __call__(self, x, training=False):
        return tf.clip_by_value(x * self.scale, -1.0, 1.0)


def test_mifid_callback_logs_csv_tensorboard_and_keeps_best(tmp_path):
    import keras

    rng = np.random.RandomState(0)
    photos = rng.uniform(-1, 1, (10, 32, 32, 3)).astype(np.float32)
    tiny = ex.get_extractor("tiny")
    ref_feats, _ = tiny.features(rng.randint(0, 255, (12, 32, 32, 3)).astype(np.uint8))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    translators = iter([_Net([0.2, 0.2, 0.2]), _Net([0.9, 1.0, 1.0]), _Net([1.0, 1.0, 1.0])])  # best: 2
    current = {}

    def translator(x, training=False):
        return current["net"](x, training=training)

    class Swap(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            current["net"] = next(translators)

    epoch_weights = []

    class Record(keras.callbacks.Callback):  # the weights each epoch ends with
        def on_epoch_end(self, epoch, logs=None):
            epoch_weights.append([w.copy() for w in self.model.get_weights()])

    best = []
    callback = MiFIDCallback(photos, Reference.from_features(ref_feats), tiny, str(tmp_path), every=1,
                             translator=translator, batch_size=4, on_best=lambda e, s: best.append(e))
    # Data that moves the weights every epoch, so each epoch's weights differ.
    history = model.fit(rng.normal(size=(8, 4)), rng.normal(size=(8, 1)), epochs=3, verbose=0,
                        callbacks=[Swap(), callback, Record()])
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    mifids = [float(r["mifid"]) for r in rows]
    assert history.history["mifid"] == pytest.approx(mifids)
    assert best[0] == 1 and callback.best == pytest.approx(min(mifids))
    assert json.load(open(tmp_path / "best.json"))["epoch"] == callback.best_epoch
    saved = keras.models.clone_model(model)
    saved.load_weights(tmp_path / "best.weights.h5")
    assert callback.best_epoch == 2  # not the last: the last epoch's weights must not be what was kept
    for got, best_w, last in zip(saved.get_weights(), epoch_weights[1], epoch_weights[-1]):
        np.testing.assert_array_equal(got, best_w)
        assert not np.array_equal(got, last)
    events = [os.path.join(tmp_path, "tensorboard", f) for f in os.listdir(tmp_path / "tensorboard")]
    tags = [(v.tag, e.step, float(tf.make_ndarray(v.tensor))) for path in events
            for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value]
    assert [(t[1], t[2]) for t in tags if t[0] == "score/mifid"] == [
        (i + 1, pytest.approx(m, rel=1e-6)) for i, m in enumerate(mifids)]
    with pytest.raises(ValueError):
        MiFIDCallback(photos, Reference.from_features(ref_feats), tiny, str(tmp_path), every=0)


def test_score_paths_api_for_the_demo(files):
    from gan_tpu.metrics.score import format_scores, score_paths

    logged = []
    scores = score_paths(files["zip"], files["data"], "tiny", kid_subsets=0, log=logged.append)
    assert scores["n_generated"] == 12 and scores["fid"] > 0 and "kid" not in scores
    assert scores["mifid"] == pytest.approx(scores["fid"] / (stats.threshold_distance(scores["distance"]) + 1e-15))
    lines = format_scores(scores, 0.1)
    assert lines[0] == "extractor:              tiny (not comparable with Kaggle's scores)"
    assert any(m.startswith("scoring 12 images") for m in logged)


def test_score_says_why_it_skips_the_checkerboard_index_of_upscaled_images(files, tmp_path, capsys):
    photos = decode_zip(files["zip"])
    upscaled = tf.image.resize(tf.image.resize(photos, [32, 32], method="area"), [256, 256], method="bilinear")
    zip_path = write_zip(tmp_path / "upscaled.zip", tf.cast(tf.round(upscaled), tf.uint8).numpy())
    out_json = str(tmp_path / "scores.json")
    code, out, err = score([zip_path, "--reference", files["data"], "--extractor", "tiny", "--kid-subsets", "0",
                            "--checkerboard", "10", "--json", out_json], capsys)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("checkerboard index:"))
    assert "not measured: the images have little detail at the pixel scale" in line
    scores = json.load(open(out_json))
    assert scores["checkerboard"] is None and 0 < scores["checkerboard_detail"] < 0.01
