"""DCGAN (Radford et al. 2016): transposed-conv generator, strided-conv discriminator, BCE."""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.base import Player
from gan_tpu.models.noise_base import NoiseGAN
from gan_tpu.models.noise_networks import dcgan_discriminator, dcgan_generator
from gan_tpu.models.registry import register


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
