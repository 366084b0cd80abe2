"""SN-GAN (Miyato et al. 2018): ResNet generator and a spectrally normalized ResNet
discriminator trained with the hinge loss."""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.base import Player
from gan_tpu.models.noise_base import NoiseGAN
from gan_tpu.models.noise_networks import sngan_discriminator, sngan_generator
from gan_tpu.models.registry import register


@register(
    "sngan",
    latent_dim=128,
    ngf=64,                  # generator width at the largest resolution (x2 per halving, at most x8)
    ndf=64,                  # discriminator width at the first block
    n_dis=5,                 # discriminator updates per generator update
    lr=2e-4,
    beta_1=0.0,
    beta_2=0.9,
    truncation=0.0,          # generation only: redraw latents beyond ±t (0: off)
)
class SNGAN(NoiseGAN):
    """Miyato et al.'s ResNet GAN: spectral norm (one power iteration per step) on every
    discriminator layer, batch norm in the generator, hinge loss, `n_dis` discriminator
    updates per generator update, Adam 2e-4, (β1, β2) = (0, 0.9) (their ResNet setting).
    Each batch updates the generator first, then the discriminator `n_dis` times, as in
    Miyato et al.'s updater.
    """

    loss_names = ("d_loss", "g_loss")

    def __init__(self, image_size: int, *, latent_dim, ngf, ndf, n_dis, lr, beta_1, beta_2,
                 truncation=0.0, **kwargs):
        super().__init__(latent_dim=latent_dim, truncation=truncation, **kwargs)
        if n_dis < 1:
            raise ValueError(f"n_dis must be at least 1, got {n_dis}")
        self.generator = sngan_generator(image_size, latent_dim=latent_dim, ngf=ngf)
        self.discriminator = sngan_discriminator(image_size, ndf=ndf)
        self.n_dis = int(n_dis)
        self.d_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), beta_1=beta_1, beta_2=beta_2, name="d_adam")
        self.g_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), beta_1=beta_1, beta_2=beta_2, name="g_adam")

    def make_players(self):
        return [
            Player("generator", [self.generator], self.g_optimizer, self.generator_loss),
            Player("discriminator", [self.discriminator], self.d_optimizer, self.discriminator_loss,
                   steps=self.n_dis),
        ]

    def discriminator_loss(self, batch, context, training):
        monet = batch[0]
        n = ops.shape(monet)[0]
        fake = ops.stop_gradient(self.generator(self.latents(n), training=training))
        # one call on real + fake: one power iteration per update (no batch statistics in D)
        logits = self.discriminator(ops.concatenate([monet, ops.cast(fake, monet.dtype)], 0), training=training)
        loss = losses.discriminator_loss("hinge", logits[:n], logits[n:])
        return loss, {"d_loss": loss}

    def generator_loss(self, batch, context, training):
        fake = self.generator(self.latents(ops.shape(batch[0])[0]), training=training)
        loss = losses.generator_loss("hinge", self.discriminator(fake, training=training))
        return loss, {"g_loss": loss}
