"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic with a gradient penalty."""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.base import Player
from gan_tpu.models.noise_base import NoiseGAN
from gan_tpu.models.noise_networks import dcgan_discriminator, dcgan_generator
from gan_tpu.models.registry import register


@register(
    "wgan_gp",
    latent_dim=128,
    ngf=64,
    ndf=64,
    critic_norm="layer",     # "layer" or "none": no batch norm in the critic (the penalty is per image)
    n_critic=5,              # critic updates per generator update
    gp_weight=10.0,          # λ
    lr=1e-4,
    beta_1=0.5,
    beta_2=0.9,
    truncation=0.0,          # generation only: redraw latents beyond ±t (0: off)
)
class WGANGP(NoiseGAN):
    """DCGAN-shaped generator (batch norm) and critic (layer norm or none, no sigmoid).

    Each batch: one generator update minimizing −E[D(G(z))], then `n_critic` critic updates
    on the Monet batch with fresh latents, each minimizing E[D(fake)] − E[D(real)] +
    λ·E[(‖∇D(x̂)‖ − 1)²] (the translation zoo's `losses.gradient_penalty`). Generator first,
    as in Gulrajani et al.'s code (and so the run's step counter is the generator's).
    Adam 1e-4, (β1, β2) = (0.5, 0.9).
    """

    loss_names = ("critic", "wasserstein", "gp", "g_loss")

    def __init__(self, image_size: int, *, latent_dim, ngf, ndf, critic_norm, n_critic, gp_weight,
                 lr, beta_1, beta_2, truncation=0.0, **kwargs):
        super().__init__(latent_dim=latent_dim, truncation=truncation, **kwargs)
        if critic_norm not in ("layer", "none"):
            raise ValueError(f"critic_norm must be 'layer' or 'none' (batch norm breaks the "
                             f"per-image gradient penalty), got {critic_norm!r}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        self.generator = dcgan_generator(image_size, latent_dim=latent_dim, ngf=ngf, norm="batch")
        self.critic = dcgan_discriminator(image_size, ndf=ndf, norm=critic_norm, name="critic")
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.gp_seed = keras.random.SeedGenerator(name="gp_seed")
        self.c_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), beta_1=beta_1, beta_2=beta_2, name="c_adam")
        self.g_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), beta_1=beta_1, beta_2=beta_2, name="g_adam")

    def make_players(self):
        return [
            Player("generator", [self.generator], self.g_optimizer, self.generator_loss),
            Player("critic", [self.critic], self.c_optimizer, self.critic_loss, steps=self.n_critic),
        ]

    def critic_loss(self, batch, context, training):
        monet = batch[0]
        n = ops.shape(monet)[0]
        fake = ops.stop_gradient(self.generator(self.latents(n), training=training))
        scores = self.critic(ops.concatenate([monet, ops.cast(fake, monet.dtype)], 0), training=training)
        w = losses.discriminator_loss("wgan-gp", scores[:n], scores[n:])  # per-image critic: one call
        gp = losses.gradient_penalty(lambda x: self.critic(x, training=training), monet, fake,
                                     weight=self.gp_weight, seed=self.gp_seed)
        return w + gp, {"critic": w + gp, "wasserstein": -w, "gp": gp}

    def generator_loss(self, batch, context, training):
        fake = self.generator(self.latents(ops.shape(batch[0])[0]), training=training)
        loss = losses.generator_loss("wgan-gp", self.critic(fake, training=training))
        return loss, {"g_loss": loss}
