"""NoiseGAN: what every noise-to-image model (DCGAN, WGAN-GP, SN-GAN, ArtGAN, BigGAN) shares.

Batches arrive as (monet, photo) pairs from the data pipeline; unconditional models learn
the Monet images only. Training latents come from `latent_seed` (a keras SeedGenerator the
trainer checkpoints, and gives each replica its own stream of); submission latents from
`sample(batch_index, batch_size)`, seeded by the batch index alone, so a zip is
reproducible whatever the batch split.
"""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu.models.base import NoiseModel

SAMPLE_SEED = 20_160_107  # submission / sample-grid latents: seed (SAMPLE_SEED, batch_index)


class TensorSeed(keras.random.SeedGenerator):
    """A fixed seed held in an int tensor of shape [2]: keras.random takes only ints or
    SeedGenerators, and a submission batch's seed is a tensor inside a tf.function."""

    def __init__(self, seed):  # noqa: no state variable: nothing to track or checkpoint
        self._seed = seed

    def next(self, ordered=True):
        return self._seed


def truncated(z, threshold: float, seed_of):
    """The truncation trick: latents beyond ±threshold are redrawn (4 times; then clipped)."""
    for k in range(4):
        fresh = keras.random.normal(ops.shape(z), dtype=z.dtype, seed=seed_of(k + 1))
        z = ops.where(ops.abs(z) > threshold, fresh, z)
    return ops.clip(z, -threshold, threshold)


class NoiseGAN(NoiseModel):
    """Base of the noise models: `generator` (z -> image), `latent_dim`, `sample`."""

    def __init__(self, *, latent_dim: int, truncation: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {latent_dim}")
        if truncation < 0:
            raise ValueError(f"truncation must be 0 (off) or positive, got {truncation}")
        self.latent_dim = int(latent_dim)
        self.truncation = float(truncation)
        self.latent_seed = keras.random.SeedGenerator(name="latent_seed")

    def latents(self, batch_size):
        """Training latents z ~ N(0, I), a fresh draw per call."""
        return keras.random.normal((batch_size, self.latent_dim), seed=self.latent_seed)

    def sample_latents(self, batch_index, batch_size: int):
        """Latents of submission batch `batch_index`: N(0, I), truncated if `truncation` > 0."""
        dtype = self.latent_seed.state.dtype  # the backend's seed dtype (int64 on TF, uint32 on JAX)
        index = ops.cast(batch_index, dtype)

        def seed_of(k):
            return TensorSeed(ops.stack([ops.convert_to_tensor(SAMPLE_SEED + 7919 * k, dtype), index]))

        z = keras.random.normal((batch_size, self.latent_dim), seed=seed_of(0))
        return truncated(z, self.truncation, seed_of) if self.truncation else z

    def sample(self, batch_index, batch_size: int):
        return self.generator(self.sample_latents(batch_index, batch_size), training=False)
