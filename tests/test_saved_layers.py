"""Shared layers: one class per Keras registration name, and `.keras` files saved before
the merges (two `BlurUpsample2D` classes; BigGAN's `ClassOneHot` and StarGAN's own
`DomainLabel`) still load and paint the same."""
import ast
import json
import os
import zipfile

import keras
import numpy as np

from gan_tpu import blur
from gan_tpu import layers as gl
from gan_tpu import models  # noqa: F401  (imports every model module: every registration)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "fixtures")


def _saved_by_the_old_code(model, path, modules: dict[str, tuple[str, dict]]) -> str:
    """`model` saved to `path` as the code before the merges (commit 3215384) wrote it: each
    named layer's class under its old module (and config keys), the weights as saved today."""
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        if layer["name"] in modules:
            layer["module"], keys = modules[layer["name"]]
            layer["config"] = {k: v for k, v in layer["config"].items() if k not in keys} | keys
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


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


def test_a_model_saved_with_both_former_blur_classes_loads_and_paints_the_same(tmp_path):
    """A conv, then gan_tpu.layers' BlurUpsample2D, gan_tpu.models.antialias' BlurDownsample2D and
    BlurUpsample2D, saved under those modules; tests/fixtures/blur_layers_v0.npz holds the conv's
    weights, an input and the output the code before the merge (commit 3215384) painted."""
    saved = np.load(os.path.join(DATA, "blur_layers_v0.npz"))
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(2, 3, padding="same", name="conv")
    x = blur.BlurUpsample2D(name="up_layers")(conv(inputs))
    outputs = blur.BlurUpsample2D(name="up_cut")(blur.BlurDownsample2D(name="down_cut")(x))
    built = keras.Model(inputs, outputs, name="blur_v0")
    conv.set_weights([saved["conv_kernel"], saved["conv_bias"]])
    path = _saved_by_the_old_code(built, str(tmp_path / "blur_v0.keras"), {
        "up_layers": ("gan_tpu.layers", {}), "down_cut": ("gan_tpu.models.antialias", {}),
        "up_cut": ("gan_tpu.models.antialias", {})})
    model = keras.saving.load_model(path)
    assert [type(layer) for layer in model.layers[2:]] == [blur.BlurUpsample2D, blur.BlurDownsample2D,
                                                           blur.BlurUpsample2D]
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


def test_class_one_hot_and_stargans_domain_label_load_from_files_saved_before_the_merge(tmp_path):
    """BigGAN's ClassOneHot(3, 2) and StarGAN's DomainLabel() (Monet of 2 domains) as the code
    before the merge (commit 3215384) saved them: under gan_tpu.models.biggan_layers and
    gan_tpu.models.stargan, DomainLabel with its own keys (domain, domains)."""
    from gan_tpu.models.stargan import DomainLabel

    inputs = keras.Input((4, 4, 3))
    built = keras.Model(inputs, [gl.ClassOneHot(3, 2, name="class")(inputs), DomainLabel(name="domain")(inputs)])
    path = _saved_by_the_old_code(built, str(tmp_path / "labels_v0.keras"), {
        "class": ("gan_tpu.models.biggan_layers", {}),
        "domain": ("gan_tpu.models.stargan", {"domain": 1, "domains": 2})})
    model = keras.saving.load_model(path)
    assert type(model.get_layer("class")) is gl.ClassOneHot and type(model.get_layer("domain")) is DomainLabel
    one_hot, domain = model(np.zeros((2, 4, 4, 3), "float32"))
    np.testing.assert_array_equal(np.asarray(one_hot), [[0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(np.asarray(domain), [[0, 1], [0, 1]])
    config = model.get_layer("domain").get_config()  # StarGAN's keys only: saved translators reload
    assert config["domains"] == 2 and config["domain"] == 1 and not {"classes", "class_id"} & set(config)
    assert keras.saving.get_registered_object("gan_tpu.biggan>ClassOneHot") is gl.ClassOneHot
