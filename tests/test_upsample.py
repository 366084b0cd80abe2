"""Upsampling options: CUT's [1,3,3,1] blur, resize- and transposed convs, in every generator."""
import ast
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import layers as gl
from gan_tpu import models
from gan_tpu.models.bayesian_cyclegan import latent_resnet_generator
from gan_tpu.models.networks import resnet_generator, unet_generator
from gan_tpu.models.ugatit import ugatit_generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blur(x):
    return np.asarray(gl.BlurUpsample2D()(np.asarray(x, np.float32)))


def test_blur_of_an_impulse_is_the_1331_outer_product():
    x = np.zeros((1, 6, 6, 1), np.float32)
    x[0, 2, 3, 0] = 16.0
    out = _blur(x)[0, :, :, 0]
    assert out.shape == (12, 12)
    expected = np.zeros((12, 12))
    # pixel (i, j) spreads over rows 2i-1..2i+2 and columns 2j-1..2j+2
    expected[3:7, 5:9] = np.outer([1, 3, 3, 1], [1, 3, 3, 1])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_blur_equals_bilinear_x2_with_clamped_edges_and_keeps_channels_apart():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    bilinear = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    np.testing.assert_allclose(_blur(x), bilinear, atol=1e-5)
    one_channel = _blur(x[..., 1:2])
    np.testing.assert_allclose(_blur(x)[..., 1:2], one_channel, atol=1e-6)


def _period2_amplitude(y):
    """Spread of the four 2x2 phase means of each channel's interior (0: no period-2 pattern)."""
    inner = y[:, 2:-2, 2:-2, :]
    phases = np.stack([inner[:, a::2, b::2, :].mean(axis=(1, 2)) for a in (0, 1) for b in (0, 1)])
    return float(np.abs(phases - phases.mean(axis=0)).max())


@pytest.mark.parametrize("mode", gl.UPSAMPLE_MODES)
def test_a_flat_input_gives_a_period2_pattern_only_through_transposed_convs(mode):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 4))
    net = keras.Model(inputs, gl.upsample_conv(inputs, 5, mode=mode, name="up"))
    out = np.asarray(net(np.full((1, 8, 8, 4), 0.7, np.float32)))
    assert out.shape == (1, 16, 16, 5)
    amplitude = _period2_amplitude(out)
    if mode == "transpose":  # uneven kernel overlap: even and odd pixels sum different taps
        assert amplitude > 1e-3
    else:
        assert amplitude < 1e-6
        np.testing.assert_allclose(out[:, 1:-1, 1:-1], np.broadcast_to(out[:, 4:5, 4:5], (1, 14, 14, 5)),
                                   atol=1e-6)


def test_unknown_mode_is_an_error_that_names_it():
    with pytest.raises(ValueError, match="upsample must be one of .*'bicubic'"):
        gl.upsample_conv(keras.Input((4, 4, 1)), 2, mode="bicubic", name="up")
    with pytest.raises(ValueError, match="'bicubic'"):
        models.build("cyclegan", image_size=16, ngf=4, ndf=4, upsample="bicubic")


GENERATORS = {
    "unet": lambda mode: unet_generator(16, ngf=4, upsample=mode),
    "resnet": lambda mode: resnet_generator(16, ngf=4, n_blocks=1, skips=True, upsample=mode),
    "ugatit": lambda mode: keras.Model(*(lambda g: (g.inputs, g.outputs[0]))(
        ugatit_generator(16, ngf=4, n_blocks=1, light=True, upsample=mode))),
    "bayesian": lambda mode: latent_resnet_generator(16, ngf=4, n_blocks=1, upsample=mode),
}


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_every_generator_takes_every_mode(generator):
    x = np.random.default_rng(4).uniform(-1, 1, (2, 16, 16, 4 if generator == "bayesian" else 3))
    for mode in gl.UPSAMPLE_MODES:
        net = GENERATORS[generator](mode)
        assert np.asarray(net(x.astype(np.float32), training=False)).shape == (2, 16, 16, 3)
        kinds = {type(layer).__name__ for layer in net.layers}
        transposed = any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in net.layers)
        assert transposed == (mode == "transpose")
        assert ("BlurUpsample2D" in kinds) == (mode == "antialias")
        assert ("PhaseResizeConv2D" in kinds) == (mode == "resize")


def test_resize_and_antialias_blocks_compile_with_xla():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = gl.upsample_conv(inputs, 4, mode="antialias", name="up0", reflect=True)
    net = keras.Model(inputs, gl.upsample_conv(x, 2, mode="resize", name="up1"))
    x = tf.constant(np.random.default_rng(4).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32))
    compiled = tf.function(lambda v: net(v, training=False), jit_compile=True)(x)
    assert compiled.shape == (2, 32, 32, 2)
    np.testing.assert_allclose(compiled, net(x, training=False), atol=1e-5)


def test_registry_defaults_keep_todays_upsampling():
    for name in ("cyclegan", "cyclegan_resnet", "cyclegan_wgangp", "sn_cyclegan", "bayesian_cyclegan"):
        assert models.defaults(name)["upsample"] == "transpose", name
    for name in ("ugatit", "ugatit_light"):  # the authors' nearest-resize blocks, unchanged
        assert models.defaults(name)["upsample"] == "resize", name
    g = ugatit_generator(16, ngf=4, n_blocks=1, light=True)
    conv = g.get_layer("ugatit_g_up0_conv")  # nearest x2 + reflect-padded 3x3 conv, as one layer
    assert isinstance(conv, gl.PhaseResizeConv2D) and conv.reflect and conv.kernel.shape[:2] == (3, 3)
    assert not {"ugatit_g_up0_resize", "ugatit_g_up0_pad"} & {layer.name for layer in g.layers}


def test_an_antialias_generator_saves_and_loads_back(tmp_path):
    keras.utils.set_random_seed(5)
    net = resnet_generator(16, ngf=4, n_blocks=1, upsample="antialias")
    path = str(tmp_path / "g.keras")
    net.save(path)
    x = np.random.default_rng(6).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.saving.load_model(path)(x), net(x), atol=1e-6)


def test_layers_module_is_backend_free():
    tree = ast.parse(open(os.path.join(ROOT, "gan_tpu", "layers.py")).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"tensorflow", "jax", "torch"}


JAX_SCRIPT = """
import json, sys
import numpy as np
import keras
from gan_tpu import layers as gl
x = np.asarray(json.loads(sys.argv[1]), np.float32)
blur = gl.BlurUpsample2D()
inputs = keras.Input(x.shape[1:])
out = blur(inputs)
model = keras.Model(inputs, out)
print(json.dumps({"backend": keras.backend.backend(), "out": np.asarray(model(x)).tolist()}))
"""


def test_blur_gives_the_same_values_under_jax():
    pytest.importorskip("jax")
    x = np.random.default_rng(7).normal(size=(1, 3, 4, 2)).astype(np.float32)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(x.tolist())], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    np.testing.assert_allclose(np.asarray(result["out"]), _blur(x), atol=1e-6)
