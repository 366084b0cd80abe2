"""The photo -> Monet network of a trained run, ready for submissions at Kaggle's 256 px."""
from __future__ import annotations

import keras
import tensorflow as tf

SUBMISSION_SIZE = 256


def at_size(generator: keras.Model, size: int = SUBMISSION_SIZE):
    """Wrap a generator trained at its own input size to take and give `size` px images.

    Photos are area-downsampled to the training size, translated, and resized back
    (bilinear): the model paints at the scale it learned.
    """
    trained = int(generator.input_shape[1])
    if trained == size:
        return generator
    if keras.backend.backend() == "jax":  # jitted by JAX: keras.ops, no TensorFlow ops
        return AtSize(generator, size)

    def translate(images):
        small = tf.image.resize(images, [trained, trained], method="area")
        painted = generator(small, training=False)
        return tf.clip_by_value(tf.image.resize(painted, [size, size], method="bilinear"), -1.0, 1.0)

    return translate


def sampler_at_size(model, size: int = SUBMISSION_SIZE):
    """A noise model's `sample(batch_index, batch_size)`, resized (bilinear) to `size` px."""

    from keras import ops  # not tf.image: this also runs under Keras' JAX backend

    def sample(batch_index, batch_size: int):
        images = model.sample(batch_index, batch_size)
        if int(images.shape[1]) == size:
            return images
        return ops.clip(ops.image.resize(images, (size, size), interpolation="bilinear"), -1.0, 1.0)

    return sample


def painter(model):
    """What paints one [B, 256, 256, 3] generation batch (the budget guard times it): the
    translator at 256 px, or for a noise model its sampler (the batch only sets B)."""
    from gan_tpu.models.base import NoiseModel

    if isinstance(model, NoiseModel):
        sample = sampler_at_size(model)
        return lambda photos: sample(0, int(photos.shape[0]))
    return at_size(model.translator)


class AtSize(keras.layers.Layer):
    """`at_size` in keras.ops, for Keras' JAX backend (it runs inside `jax.jit`). The area
    downsampling by an integer factor is mean pooling; any other factor is an antialiased
    bilinear resize."""

    def __init__(self, generator: keras.Model, size: int = SUBMISSION_SIZE):
        super().__init__(name=f"{generator.name}_at_{size}")
        self.generator, self.size = generator, size
        self.trained = int(generator.input_shape[1])

    def call(self, images, training=False):
        from keras import ops

        factor = int(images.shape[1]) // self.trained
        if factor * self.trained == int(images.shape[1]):
            small = ops.average_pool(images, factor, factor, padding="valid")
        else:
            small = ops.image.resize(images, (self.trained, self.trained), antialias=True)
        painted = self.generator(small, training=False)
        return ops.clip(ops.image.resize(painted, (self.size, self.size), interpolation="bilinear"), -1.0, 1.0)
