"""``tfds:NAME[:SPLIT]`` sources and source lists: tensorflow-datasets' mock data and a tiny
data set prepared here, read through tensorflow-datasets' own code; no network."""
import os

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import config, data, train
from gan_tpu.errors import UserError
from tests.helpers import jpeg, smooth_images

tfds = pytest.importorskip("tensorflow_datasets")

SIZE = 32


class GanTpuTestPaintings(tfds.core.GeneratorBasedBuilder):
    """Registered as ``gan_tpu_test_paintings``: JPEG images as cycle_gan stores them."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(SIZE, SIZE, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(num_classes=2),
        }))

    def _split_generators(self, dl_manager):
        return {"trainA": self._generate_examples(5, seed=0), "testA": self._generate_examples(2, seed=1)}

    def _generate_examples(self, n, seed):
        for i, image in enumerate(smooth_images(n, SIZE, seed)):
            yield i, {"image": image, "label": 0}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tfds"))
    GanTpuTestPaintings(data_dir=folder).download_and_prepare()
    return folder


@pytest.fixture
def prepared(tfds_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    return tfds_dir


def _encoded_images(source):
    return [tf.io.decode_jpeg(b).numpy() for _, b in data._encoded(source).as_numpy_iterator()]


def test_a_prepared_split_is_counted_verified_and_read_as_stored(prepared):
    source = data.resolve("tfds:gan_tpu_test_paintings:trainA", "monet")
    assert (source.kind, source.count) == ("tfds", 5)
    assert data.verify_source(source, SIZE) == 5
    stored = tfds.load("gan_tpu_test_paintings", split="trainA", data_dir=prepared, shuffle_files=False,
                       decoders={"image": tfds.decode.SkipDecoding()})
    assert [b for _, b in data._encoded(source).as_numpy_iterator()] == [ex["image"].numpy() for ex in stored]
    images = np.stack(_encoded_images(source))
    want = smooth_images(5, SIZE, 0).astype(float)
    assert images.shape == (5, SIZE, SIZE, 3)
    # each one the JPEG of one of the written images (tensorflow-datasets orders examples by key hash)
    errors = np.abs(images[:, None].astype(float) - want[None]).mean(axis=(2, 3, 4))
    assert sorted(errors.argmin(axis=1)) == list(range(5)) and errors.min(axis=1).max() < 4


def test_a_list_combines_sources_in_order(prepared, tmp_path):
    folder = tmp_path / "jpg"
    folder.mkdir()
    extra = smooth_images(3, SIZE, 7)
    for i, image in enumerate(extra):
        (folder / f"{i}.jpg").write_bytes(jpeg(image))
    source = data.resolve(["tfds:gan_tpu_test_paintings:trainA", "tfds:gan_tpu_test_paintings:testA",
                           str(folder)], "monet")
    assert source.kind == "list" and source.count == 5 + 2 + 3 and data.count_images(source) == 10
    assert data.verify_source(source, SIZE) == 10
    images = _encoded_images(source)
    single = _encoded_images(data.resolve("tfds:gan_tpu_test_paintings:testA"))
    np.testing.assert_array_equal(images[5], single[0])
    np.testing.assert_array_equal(images[7], tf.io.decode_jpeg(jpeg(extra[0])).numpy())
    assert [part.kind for part in source.parts] == ["tfds", "tfds", "jpg"]
    assert source.parts[0].files == ("tfds:gan_tpu_test_paintings:trainA",)


def test_a_tfds_source_list_trains(prepared, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, image in enumerate(smooth_images(4, SIZE, 9)):
        (photos / f"{i}.jpg").write_bytes(jpeg(image))
    out = str(tmp_path / "run")
    cfg = config.load("demo", [
        'data.monet=["tfds:gan_tpu_test_paintings:trainA", "tfds:gan_tpu_test_paintings:testA"]',
        f'data.photo="{photos}"', f"data.image_size={SIZE}", f"data.source_size={SIZE}",
        'model.generator="resnet"', "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
        "train.batch_size=2", "train.samples=1", "train.epochs=1", "train.steps_per_epoch=2", f'output.dir="{out}"'])
    assert cfg["data"]["monet"][1] == "tfds:gan_tpu_test_paintings:testA"
    run = train.train(cfg, verbose=0)
    assert int(run.step.numpy()) == 2
    assert config.load(os.path.join(out, "config.toml"))["data"]["monet"] == cfg["data"]["monet"]
    history = open(os.path.join(out, "history.csv")).read().splitlines()
    assert len(history) == 2 and "nan" not in history[1]


def test_unknown_data_set_split_and_missing_download_are_one_line_errors(prepared, tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"^tfds:no_such_paintings: tensorflow-datasets has no data set "
                                        r"'no_such_paintings'$"):
        data.resolve("tfds:no_such_paintings")
    with pytest.raises(UserError, match=r"^tfds:gan_tpu_test_paintings:trainC: no split 'trainC' "
                                        r"\(splits: testA, trainA\)$"):
        data.resolve("tfds:gan_tpu_test_paintings:trainC")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(empty))
    with pytest.raises(UserError) as err:
        data.verify_source(data.resolve("tfds:cycle_gan/monet2photo", "monet"))
    message = str(err.value)
    assert message.startswith(f"tfds:cycle_gan/monet2photo: not downloaded to {empty}; ")
    assert "tfds build cycle_gan/monet2photo" in message and "\n" not in message
    with pytest.raises(UserError, match=r"^data.monet: tfds:: expected tfds:NAME\[:SPLIT\]"):
        train.resolve_sources({"data": {"monet": "tfds:", "photo": str(tmp_path)}})


def test_mock_monet2photo_is_verified_like_any_source():
    # tensorflow-datasets' mock data: random PNG images of random sizes for cycle_gan's
    # features, so verification must reject them, naming the source and the example.
    with tfds.testing.mock_data(num_examples=3):
        source = data.resolve("tfds:cycle_gan/monet2photo", "monet")
        assert source.kind == "tfds" and source.files == ("tfds:cycle_gan/monet2photo",)
        assert data.count_images(source) == 3
        with pytest.raises(UserError, match=r"(?m)\A3 bad images.*\n  tfds:cycle_gan/monet2photo: example 0: not a JPEG \(PNG data\)$"):
            data.verify_source(source)


def test_config_lists_hold_strings():
    with pytest.raises(UserError, match=r"data.monet: expected string or list of strings, got list \[1\]"):
        config.load("demo", ["data.monet=[1]"])
    with pytest.raises(UserError, match=r"data.monet: expected string or list of strings, got list \[\]"):
        config.load("demo", ["data.monet=[]"])
