"""DCGAN (Radford et al. 2016), and NoiseGAN: what every noise-to-image model shares.

Batches arrive as (monet, photo) pairs from the data pipeline; unconditional models learn
the Monet images only. Training latents come from `latent_seed` (a keras SeedGenerator the
trainer checkpoints, and gives each replica its own stream of); submission latents from
`sample(batch_index, batch_size)`, seeded by the batch index alone, so a zip is
reproducible whatever the batch split.
"""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.base import NoiseModel, Player
from gan_tpu.models.noise_networks import dcgan_discriminator, dcgan_generator
from gan_tpu.models.registry import register

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



@register(
    "dcgan",
    latent_dim=100,          # z ~ N(0, I) in R^100
    ngf=64,                  # generator width at the largest resolution (x2 per halving, at most x8)
    ndf=64,                  # discriminator width at the first layer
    lr=2e-4,
    beta_1=0.5,
    truncation=0.0,          # generation only: redraw latents beyond ±t (0: off)
)
class DCGAN(NoiseGAN):
    """Radford et al.: transposed-conv generator from z to the image size, BatchNorm + ReLU,
    tanh out; strided-conv discriminator, LeakyReLU 0.2; BatchNorm everywhere except G's
    output and D's input (synchronized across replicas); Adam 2e-4, β1 0.5; BCE.

    Each step trains the discriminator on the Monet batch against fresh fakes, then the
    generator on another fresh batch of latents.
    """

    loss_names = ("d_loss", "g_loss", "d_real", "d_fake")

    def __init__(self, image_size: int, *, latent_dim, ngf, ndf, lr, beta_1, truncation=0.0, **kwargs):
        super().__init__(latent_dim=latent_dim, truncation=truncation, **kwargs)
        self.generator = dcgan_generator(image_size, latent_dim=latent_dim, ngf=ngf, norm="batch")
        self.discriminator = dcgan_discriminator(image_size, ndf=ndf, norm="batch")
        self.d_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), beta_1=beta_1, name="d_adam")
        self.g_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), beta_1=beta_1, name="g_adam")

    def make_players(self):
        return [
            Player("discriminator", [self.discriminator], self.d_optimizer, self.discriminator_loss),
            Player("generator", [self.generator], self.g_optimizer, self.generator_loss),
        ]

    def discriminator_loss(self, batch, context, training):
        monet = batch[0]
        fake = ops.stop_gradient(self.generator(self.latents(ops.shape(monet)[0]), training=training))
        real_logits = self.discriminator(monet, training=training)
        fake_logits = self.discriminator(fake, training=training)
        loss = losses.discriminator_loss("bce", real_logits, fake_logits)
        return loss, {"d_loss": loss, "d_real": ops.mean(ops.sigmoid(real_logits)),
                      "d_fake": ops.mean(ops.sigmoid(fake_logits))}

    def generator_loss(self, batch, context, training):
        fake = self.generator(self.latents(ops.shape(batch[0])[0]), training=training)
        loss = losses.generator_loss("bce", self.discriminator(fake, training=training))
        return loss, {"g_loss": loss}
