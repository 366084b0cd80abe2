"""The shared building blocks: normalization by name, reflection padding."""
import keras
import numpy as np
import pytest

from gan_tpu.layers import ReflectionPadding2D, norm_layer


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
