"""Shared layers: one class per Keras registration name, and `.keras` files saved before
the merges (two `BlurUpsample2D` classes; BigGAN's `ClassOneHot` and StarGAN's own
`DomainLabel`) still load and paint the same."""
import ast
import os

import keras
import numpy as np

from gan_tpu import blur
from gan_tpu import layers as gl
from gan_tpu import models  # noqa: F401  (imports every model module: every registration)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "fixtures")


def _class_definitions() -> dict[str, list[str]]:
    """Every class name defined in gan_tpu, with the files that define it."""
    found: dict[str, list[str]] = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "gan_tpu")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                for node in ast.walk(ast.parse(open(path).read())):
                    if isinstance(node, ast.ClassDef):
                        found.setdefault(node.name, []).append(os.path.relpath(path, ROOT))
    return found


def test_every_registered_gan_tpu_layer_name_has_exactly_one_class():
    # two classes under one name: whichever module is imported last silently wins
    registered = [key.split(">", 1)[1] for key in keras.saving.get_custom_objects() if key.startswith("gan_tpu>")]
    assert "BlurUpsample2D" in registered and "BlurDownsample2D" in registered
    defined = _class_definitions()
    twice = {name: defined[name] for name in registered if len(defined.get(name, [])) != 1}
    assert not twice, f"registered names defined other than once: {twice}"
    assert keras.saving.get_registered_object("gan_tpu>BlurUpsample2D") is blur.BlurUpsample2D is gl.BlurUpsample2D
    assert keras.saving.get_registered_object("gan_tpu>BlurDownsample2D") is blur.BlurDownsample2D


def test_a_model_saved_with_both_former_blur_classes_loads_and_paints_the_same():
    """tests/fixtures/blur_layers_v0.keras was saved by the code before the merge (commit 3215384):
    a conv, then gan_tpu.layers' BlurUpsample2D, gan_tpu.models.antialias' BlurDownsample2D and
    BlurUpsample2D; the .npz holds an input and the output that code painted."""
    model = keras.saving.load_model(os.path.join(DATA, "blur_layers_v0.keras"))
    assert [type(layer) for layer in model.layers[2:]] == [blur.BlurUpsample2D, blur.BlurDownsample2D,
                                                           blur.BlurUpsample2D]
    saved = np.load(os.path.join(DATA, "blur_layers_v0.npz"))
    np.testing.assert_allclose(np.asarray(model(saved["x"])), saved["y"], rtol=0, atol=1e-6)


def test_blur_layers_save_and_load_under_their_names(tmp_path):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4, 6, 2))
    outputs = blur.BlurUpsample2D()(blur.BlurDownsample2D()(blur.BlurUpsample2D()(inputs)))
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "blur.keras")
    model.save(path)
    x = np.random.default_rng(2).normal(size=(2, 4, 6, 2)).astype("float32")
    loaded = keras.saving.load_model(path)
    assert [layer.__class__ for layer in loaded.layers[1:]] == [blur.BlurUpsample2D, blur.BlurDownsample2D,
                                                                blur.BlurUpsample2D]
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_class_one_hot_and_stargans_domain_label_load_from_files_saved_before_the_merge():
    """tests/fixtures/labels_v0.keras: BigGAN's ClassOneHot(3, 2) and StarGAN's DomainLabel()
    (Monet of 2 domains) as the code before the merge (commit 3215384) saved them."""
    from gan_tpu.models.stargan import DomainLabel

    model = keras.saving.load_model(os.path.join(DATA, "labels_v0.keras"))
    assert type(model.get_layer("class")) is gl.ClassOneHot and type(model.get_layer("domain")) is DomainLabel
    one_hot, domain = model(np.zeros((2, 4, 4, 3), "float32"))
    np.testing.assert_array_equal(np.asarray(one_hot), [[0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(np.asarray(domain), [[0, 1], [0, 1]])
    config = model.get_layer("domain").get_config()  # StarGAN's keys only: saved translators reload
    assert config["domains"] == 2 and config["domain"] == 1 and not {"classes", "class_id"} & set(config)
    assert keras.saving.get_registered_object("gan_tpu.biggan>ClassOneHot") is gl.ClassOneHot
