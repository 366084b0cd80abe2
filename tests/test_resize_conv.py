"""`PhaseResizeConv2D`: nearest x2 + 3x3 conv computed at the low resolution (shifted matmuls,
four 2x2 phase convs, or one transposed conv).

Every check compares with the layers it replaces (UpSampling2D, ReflectionPadding2D, Conv2D)
holding the same weights: values and gradients on TensorFlow (eager and XLA) and JAX (jit),
XLA's FLOP count, and a generator saved as .keras with the old layers.
"""
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import layers as gl
from gan_tpu.models import networks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [(2, 1, 1, 3), (1, 5, 7, 3), (2, 2, 3, 3), (1, 8, 8, 3), (1, 3, 1, 2)]


def old_resize_conv(x, filters, *, name, reflect=False, use_bias=False, kernel_initializer="glorot_uniform"):
    """The "resize" block as `upsample_conv` built it before `PhaseResizeConv2D`."""
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    if reflect:
        x = gl.ReflectionPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, 3, padding="valid" if reflect else "same", use_bias=use_bias,
                               kernel_initializer=kernel_initializer, name=f"{name}_conv")(x)


def pair(shape, reflect, use_bias=True, filters=4):
    """(old UpSampling2D + Conv2D model, the phase layer), same weights (random bias too)."""
    inputs = keras.Input(shape[1:])
    old = keras.Model(inputs, old_resize_conv(inputs, filters, name="up", reflect=reflect, use_bias=use_bias))
    new = gl.PhaseResizeConv2D(filters, reflect=reflect, use_bias=use_bias)
    new.build(shape)
    weights = [np.random.default_rng(9).normal(size=w.shape).astype(np.float32) for w in old.get_weights()]
    old.set_weights(weights)
    new.set_weights(weights)
    return old, new


def _values_and_gradients(net, x, weights, jit):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = net(x)
            loss = tf.reduce_sum(y * weights)
        return (y, *tape.gradient(loss, [x, *net.trainable_variables]))
    return [t.numpy() for t in (tf.function(run, jit_compile=True) if jit else run)(x)]


@pytest.mark.parametrize("lowering, reflect", [("dots", False), ("phases", False), ("phases", True), ("transposed", False)],
                         ids=["dots", "phases", "phases-reflect", "transposed"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_values_and_gradients_equal_upsampling_then_conv_on_tensorflow(reflect, jit, lowering, monkeypatch):
    """Every lowering: the default shifted matmuls, four phase convs, one transposed conv
    (the first and last zero padding only; reflection always runs the phase convs)."""
    monkeypatch.setattr(gl.PhaseResizeConv2D, "lowering", lowering)
    for shape in SHAPES:
        old, new = pair(shape, reflect)
        x = tf.constant(np.random.default_rng(1).normal(size=shape).astype(np.float32))
        n, h, w, _ = shape
        weights = tf.constant(np.random.default_rng(2).normal(size=(n, 2 * h, 2 * w, 4)).astype(np.float32))
        want = _values_and_gradients(old, x, weights, jit)
        got = _values_and_gradients(new, x, weights, jit)
        assert got[0].shape == want[0].shape == (n, 2 * h, 2 * w, 4)
        for a, b in zip(got, want):  # float32 sums of at most 9 * 3 (kernel grad: 4 * 64) terms, reordered
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5, err_msg=str(shape))


def test_tensorflow_inference_runs_the_phase_convs_and_training_the_matmuls():
    """On TensorFlow, `training=False` (generation, [eval]) runs the phase convs, faster on
    TensorFlow's own kernels; training (and JAX) the shifted matmuls. Same values; the
    generator's `training` reaches the layer."""
    shape = (2, 4, 6, 3)
    old, new = pair(shape, reflect=False)
    x = tf.constant(np.random.default_rng(1).normal(size=shape).astype(np.float32))

    def ops_of(fn, x):
        return {op.type for op in tf.function(fn).get_concrete_function(x).graph.get_operations()}

    assert "Conv2D" in ops_of(lambda x: new(x, training=False), x)
    assert "Conv2D" not in ops_of(lambda x: new(x, training=True), x)
    assert "MatMul" in ops_of(lambda x: new(x, training=True), x)
    g = networks.unet_generator(32, ngf=4, upsample="resize")  # its other layers hold no matmul
    x32 = tf.zeros((1, 32, 32, 3))
    assert "MatMul" not in ops_of(lambda x: g(x, training=False), x32)
    assert "MatMul" in ops_of(lambda x: g(x, training=True), x32)
    for training in (False, True):
        np.testing.assert_allclose(new(x, training=training).numpy(), old(x).numpy(), rtol=1e-5, atol=2e-5)


def _optimized_hlo(net, x, weights) -> str:
    """XLA's optimized HLO of the layer's values and gradients (input, weights)."""
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = net(x)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, [x, *net.trainable_variables])
    return tf.function(run, jit_compile=True).experimental_get_compiler_ir(x)(stage="optimized_hlo")


def _convolutions(net, x, weights):
    """(output shape, window) of every convolution in the optimized HLO, sorted."""
    return sorted(re.findall(r"= (f32\[[\d,]*\])\S* convolution\(.*?window=\{([^}]*)\}", _optimized_hlo(net, x, weights)))


def _dot_multiply_adds(hlo: str) -> int:
    """Sum over the HLO's dots of output elements x contracted size."""
    shapes = {m[0]: [int(d) for d in m[1].split(",") if d]
              for m in re.findall(r"%(\S+) = f32\[([\d,]*)\]", hlo)}
    total = 0
    for out, lhs, dims in re.findall(r"%(\S+) = f32\[[\d,]*\]\S* dot\(%([^,\s)]+),.*?lhs_contracting_dims=\{([\d,]*)\}", hlo):
        total += int(np.prod(shapes[out])) * int(np.prod([shapes[lhs][int(d)] for d in dims.split(",")]))
    return total


def test_lowerings_compile_to_a_4x4_stride2_transposed_convs_multiply_adds(monkeypatch):
    """Forward, input and kernel gradient. Shifted matmuls (the default): no convolution,
    and the dots' multiply-adds are the transposed conv's true count, (4H - 2)(4W - 2) Cin
    Cout each, none on the zero border. `transposed`: the convolutions (shapes, windows) XLA
    runs for a 4x4 stride-2 transposed conv. `phases`: four phase convs."""
    shape = (1, 4, 6, 8)
    x = tf.constant(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    weights = tf.constant(np.random.default_rng(2).normal(size=(1, 8, 12, 16)).astype(np.float32))
    _, new = pair(shape, False, use_bias=False, filters=16)
    transpose = keras.layers.Conv2DTranspose(16, 4, strides=2, padding="same", use_bias=False)
    transpose.build(shape)
    want = _convolutions(transpose, x, weights)
    assert len(want) == 3 and any("lhs_dilate=2x2" in w for _, w in want), want
    hlo = _optimized_hlo(new, x, weights)
    assert " convolution(" not in hlo
    assert _dot_multiply_adds(hlo) == 3 * (4 * 4 - 2) * (4 * 6 - 2) * 8 * 16
    monkeypatch.setattr(gl.PhaseResizeConv2D, "lowering", "phases")
    assert len(_convolutions(new, x, weights)) == 12  # 4 phases x (forward, input and kernel gradients)
    monkeypatch.setattr(gl.PhaseResizeConv2D, "lowering", "transposed")
    assert _convolutions(new, x, weights) == want


def test_dynamic_sizes_fall_back_to_the_upsampled_conv_with_the_same_outputs():
    for reflect in (False, True):
        old, new = pair((1, 5, 6, 3), reflect)
        dynamic = tf.function(new, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        assert dynamic.get_concrete_function().structured_outputs.shape.as_list() == [None, None, None, 4]
        x = np.random.default_rng(3).normal(size=(2, 5, 6, 3)).astype(np.float32)
        np.testing.assert_allclose(dynamic(x), old(x), rtol=1e-5, atol=1e-5)


def test_weights_are_a_conv2d_3x3s_and_the_config_round_trips():
    layer = gl.PhaseResizeConv2D(5, reflect=True, use_bias=True, name="up_conv")
    layer.build((1, 4, 4, 3))
    assert [tuple(w.shape) for w in layer.weights] == [(3, 3, 3, 5), (5,)]
    assert [w.path for w in layer.weights] == ["up_conv/kernel", "up_conv/bias"]
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is gl.PhaseResizeConv2D and restored.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="3x3 stride-1"):
        gl.PhaseResizeConv2D(5, 4)


def test_a_generator_saved_with_the_old_layers_loads_and_paints_the_same_images(tmp_path, monkeypatch):
    """A .keras U-Net saved with the UpSampling2D + Conv2D blocks loads as it was; its
    weights, in order (as a checkpoint holds them), give today's generator the same images."""
    def old_upsample_conv(x, filters, *, mode, name, transpose_kernel=4, use_bias=False, reflect=False):
        assert mode == "resize"
        return old_resize_conv(x, filters, name=name, reflect=reflect, use_bias=use_bias,
                               kernel_initializer=gl.weight_init())

    keras.utils.set_random_seed(11)
    new = networks.unet_generator(16, ngf=4, upsample="resize")
    with monkeypatch.context() as patch:
        patch.setattr(networks, "upsample_conv", old_upsample_conv)
        old = networks.unet_generator(16, ngf=4, upsample="resize")
    assert "UpSampling2D" in {type(layer).__name__ for layer in old.layers}
    assert "UpSampling2D" not in {type(layer).__name__ for layer in new.layers}
    path = str(tmp_path / "old.keras")
    old.save(path)
    loaded = keras.saving.load_model(path)
    new.set_weights(loaded.get_weights())  # raises on any shape or count mismatch
    x = np.random.default_rng(12).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(new(x, training=False), loaded(x, training=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded(x, training=False), old(x, training=False), atol=1e-6)
    resaved = str(tmp_path / "new.keras")
    new.save(resaved)
    np.testing.assert_allclose(keras.saving.load_model(resaved)(x, training=False), new(x, training=False),
                               atol=1e-6)


JAX_SCRIPT = """
import json
import jax
import keras
import numpy as np
from gan_tpu import layers as gl
from tests.test_resize_conv import SHAPES, pair

def flops(fn, *args):
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])

out = {"backend": keras.backend.backend(), "worst": 0.0, "flops": {}}
for reflect, lowering in ((False, "dots"), (False, "phases"), (True, "phases"), (False, "transposed")):
    gl.PhaseResizeConv2D.lowering = lowering
    for shape in SHAPES:
        old, new = pair(shape, reflect)
        x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        n, h, w, _ = shape
        weights = np.random.default_rng(2).normal(size=(n, 2 * h, 2 * w, 4)).astype(np.float32)

        def loss(params, x, net):
            return keras.ops.sum(net.stateless_call(params, [], x)[0] * weights)

        results = []
        for net in (old, new):
            params = [v.value for v in net.trainable_variables]
            y = jax.jit(lambda p, x, net=net: net.stateless_call(p, [], x)[0])(params, x)
            grads = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(params, x, net)
            results.append([np.asarray(y), np.asarray(grads[1])] + [np.asarray(g) for g in grads[0]])
        for a, b in zip(*results):
            assert a.shape == b.shape, (a.shape, b.shape)
            out["worst"] = max(out["worst"], float(np.max(np.abs(a - b) / (2e-5 + 1e-5 * np.abs(b)))))
for reflect, lowering in ((False, "dots"), (False, "phases"), (True, "phases")):
    gl.PhaseResizeConv2D.lowering = lowering
    old, new = pair((1, 8, 8, 8), reflect, use_bias=False, filters=16)
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 8)).astype(np.float32)
    for label, net in (("old", old), (lowering, new)):
        params = [v.value for v in net.trainable_variables]
        out["flops"][f"{label} {reflect}"] = flops(lambda p, x, net=net: net.stateless_call(p, [], x)[0], params, x)
print(json.dumps(out))
"""


def test_values_gradients_and_flops_on_jax():
    """Under jax.jit, values and gradients within float32 rounding of UpSampling2D + Conv2D
    (worst error / tolerance < 1; every lowering), and XLA counts under half its FLOPs: 4/9
    of the taps, plus the elementwise work of padding and interleaving (forward at 8x8, 8 -> 16
    channels, measured: shifted matmuls 0.42, phase convs 0.39 with zero padding and 0.45
    with reflection, against 0.92 and 1.0 for the old form)."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["worst"] < 1.0, result["worst"]
    textbook = 2 * 16 * 16 * 9 * 8 * 16  # the 3x3 conv at 16x16: XLA counts these taps, skipping none
    for reflect, lowering, most in ((False, "dots", 0.45), (False, "phases", 0.45), (True, "phases", 0.5)):
        assert result["flops"][f"old {reflect}"] >= 0.85 * textbook, result["flops"]
        assert result["flops"][f"{lowering} {reflect}"] <= most * textbook, result["flops"]


def test_the_offset_kernels_are_built_once_per_kernel_inside_shared_phase_kernels(monkeypatch):
    """As the JAX train step calls a generator three times per loss: one build per kernel."""
    from gan_tpu import resize_dots

    built = []
    monkeypatch.setattr(resize_dots, "offset_kernels", lambda k, build=resize_dots.offset_kernels: built.append(1) or build(k))
    old, new = pair((1, 3, 4, 3), False)
    x = np.random.default_rng(4).normal(size=(1, 3, 4, 3)).astype(np.float32)
    with gl.shared_phase_kernels():
        inside = [new(x).numpy() for _ in range(3)]
    assert len(built) == 1
    new(x)
    assert len(built) == 2
    for y in inside:
        np.testing.assert_allclose(y, old(x).numpy(), rtol=1e-5, atol=1e-5)
