"""The shared building blocks: normalization by name, reflection padding, phase-split transposed convs."""
import keras
import numpy as np
import pytest

from gan_tpu.layers import PhaseConv2DTranspose, ReflectionPadding2D, norm_layer, shared_phase_kernels


def _normalized(kind: str, size: int, channels: int = 6):
    inputs = keras.Input((size, size, channels))
    layer = norm_layer(kind, name="n")
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(size).normal(3.0, 2.0, (2, size, size, channels)).astype(np.float32)
    return layer, model(x).numpy()


def test_layer_norm_is_per_image_with_per_channel_affine_at_any_size():
    small, out = _normalized("layer", 8)
    large, _ = _normalized("layer", 32)
    # a scale and an offset per channel, whatever the image size: no per-pixel weights
    assert small.count_params() == large.count_params() == 2 * 6
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-3)


def test_instance_norm_normalizes_each_channel_of_each_image():
    _, out = _normalized("instance", 8)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)
    # gamma starts near 1 (N(1, 0.02)), so each channel's spread is close to 1
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, atol=0.1)


def test_none_passes_through_and_unknown_kinds_are_errors():
    inputs = np.ones((1, 4, 4, 2), np.float32)
    np.testing.assert_array_equal(norm_layer("none")(inputs), inputs)
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        norm_layer("group")


def test_reflection_padding_mirrors_the_border():
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    out = np.asarray(ReflectionPadding2D(1)(x))[0, :, :, 0]
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out[0, 1:4], x[0, 1, :, 0])  # row above = row 1
    np.testing.assert_array_equal(out[1:4, 0], x[0, :, 1, 0])  # column left = column 1


def _transposed_pair(kernel, strides, use_bias, shape=(2, 5, 6, 3)):
    reference = keras.layers.Conv2DTranspose(4, kernel, strides=strides, padding="same", use_bias=use_bias,
                                             bias_initializer="random_normal")
    phases = PhaseConv2DTranspose(4, kernel, strides=strides, padding="same", use_bias=use_bias, phases=True)
    reference.build(shape)
    phases.build(shape)
    phases.set_weights(reference.get_weights())
    return reference, phases


@pytest.mark.parametrize("kernel,strides,use_bias,shape", [
    (4, 2, False, (2, 5, 6, 3)), (3, 2, True, (2, 5, 6, 3)), (5, 2, False, (2, 5, 6, 3)), (2, 2, True, (2, 5, 6, 3)),
    (3, 3, False, (2, 5, 6, 3)), (3, 1, True, (2, 5, 6, 3)), ((4, 3), (2, 1), False, (2, 5, 6, 3)),
    (4, 2, False, (1, 1, 1, 3)), (5, 2, True, (1, 1, 2, 3)), (7, 3, False, (1, 2, 1, 3))])  # inputs smaller than a tap row
def test_phase_conv_transpose_matches_keras_values_and_gradients(kernel, strides, use_bias, shape):
    import tensorflow as tf

    reference, phases = _transposed_pair(kernel, strides, use_bias, shape)
    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    weights = tf.constant(np.random.default_rng(1).normal(size=reference(x).shape).astype(np.float32))
    results = []
    for layer in (reference, phases):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * weights)
        results.append((y.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables])]))
    n, h, w, _ = shape
    assert results[0][0].shape == results[1][0].shape == (n, h * reference.strides[0], w * reference.strides[1], 4)
    for want, got in zip(*results):  # float32 sums of at most 3 * 25 terms, reordered
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_phase_conv_transpose_falls_back_and_round_trips_its_config():
    valid = PhaseConv2DTranspose(4, 4, strides=2, padding="valid", phases=True)
    reference = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="valid")
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 3)).astype(np.float32)
    reference.build(x.shape)
    valid.build(x.shape)
    valid.set_weights(reference.get_weights())
    np.testing.assert_allclose(valid(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)  # Keras' own path
    restored = keras.layers.deserialize(keras.layers.serialize(valid))
    assert type(restored) is PhaseConv2DTranspose and restored.get_config() == valid.get_config()


def test_phase_kernels_are_shared_by_the_calls_inside_shared_phase_kernels_only():
    reference, phases = _transposed_pair(3, 2, False)
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    assert phases._phase_kernels() is not phases._phase_kernels()
    with shared_phase_kernels():
        first = phases._phase_kernels()
        assert phases._phase_kernels() is first
        inside = phases(x).numpy()
    assert phases._phase_kernels() is not first
    np.testing.assert_allclose(inside, reference(x).numpy(), rtol=1e-5, atol=1e-5)
