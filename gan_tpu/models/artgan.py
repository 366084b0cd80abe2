"""ArtGAN (Tan et al. 2017): a categorical GAN whose discriminator names the class of a
real image or calls it fake, with an L2 reconstruction through D's encoder and G's decoder.

Categories come from the data pipeline's pairs: class 0 is Monet, class 1 is photo (K = 2),
so the photos teach the discriminator what a painting is not. Submissions sample class 0.
"""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.base import Player
from gan_tpu.models.noise_base import NoiseGAN
from gan_tpu.models.noise_networks import (
    artgan_classifier, artgan_decoder, artgan_encoder, artgan_znet,
)
from gan_tpu.models.registry import register

CLASSES = ("monet", "photo")  # the class index of each domain of a (monet, photo) batch
MONET = 0


@register(
    "artgan",
    latent_dim=100,
    ngf=64,
    ndf=64,
    recon_weight=1.0,        # weight of the L2 reconstruction Dec(Enc(x)) ≈ x
    lr=1e-3,                 # RMSprop
    lr_decay=0.9,            # multiply the learning rate by this ...
    lr_decay_steps=1000,     # ... every this many steps (about an epoch in Tan et al.)
    rho=0.9,
    truncation=0.0,          # generation only: redraw latents beyond ±t (0: off)
)
class ArtGAN(NoiseGAN):
    """Generator = zNet([z, one-hot k]) -> 8x8 latent map -> decoder; discriminator =
    encoder (image -> 8x8 latent map) -> classifier (K + 1 sigmoid outputs: K classes + fake).

    D: BCE of real images against their one-hot class and of fakes against the one-hot
    "fake" output. G: BCE of D(G(z, k)) against one-hot k, plus `recon_weight` · the mean
    squared error of decoder(encoder(x)) against real x. RMSprop with exponential decay.
    """

    loss_names = ("d_loss", "g_loss", "g_adv", "recon")
    classes = len(CLASSES)

    def __init__(self, image_size: int, *, latent_dim, ngf, ndf, recon_weight, lr, lr_decay,
                 lr_decay_steps, rho, truncation=0.0, **kwargs):
        super().__init__(latent_dim=latent_dim, truncation=truncation, **kwargs)
        if lr_decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be at least 1, got {lr_decay_steps}")
        channels = 8 * ndf
        k = self.classes
        self.znet = artgan_znet(latent_dim=latent_dim, classes=k, ngf=ngf, channels=channels)
        self.decoder = artgan_decoder(image_size, ngf=ngf, channels=channels)
        self.encoder = artgan_encoder(image_size, ndf=ndf, channels=channels)
        self.classifier = artgan_classifier(classes=k, channels=channels)
        z = keras.Input((latent_dim,), name="z")
        y = keras.Input((k,), name="class")
        self.generator = keras.Model([z, y], self.decoder(self.znet([z, y])), name="generator")
        self.recon_weight = float(recon_weight)
        self.class_seed = keras.random.SeedGenerator(name="class_seed")

        def rmsprop(name):
            schedule = keras.optimizers.schedules.ExponentialDecay(lr, lr_decay_steps, lr_decay)
            return keras.optimizers.RMSprop(self.lr_schedule(schedule), rho=rho, name=name)

        self.d_optimizer = rmsprop("d_rmsprop")
        self.g_optimizer = rmsprop("g_rmsprop")

    def make_players(self):
        return [
            Player("discriminator", [self.encoder, self.classifier], self.d_optimizer, self.discriminator_loss),
            Player("generator", [self.znet, self.decoder], self.g_optimizer, self.generator_loss),
        ]

    def discriminate(self, images, training):
        return self.classifier(self.encoder(images, training=training), training=training)

    def _fakes(self, n, training):
        labels = keras.random.randint((n,), 0, self.classes, seed=self.class_seed)
        onehot = ops.one_hot(labels, self.classes)
        return self.generator([self.latents(n), onehot], training=training), labels

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        n = ops.shape(monet)[0]
        real = ops.concatenate([monet, ops.cast(photo, monet.dtype)], axis=0)
        real_labels = ops.concatenate([ops.zeros((n,), "int32"), ops.ones((n,), "int32")])
        fake, _ = self._fakes(n, training)
        fake = ops.stop_gradient(fake)
        fake_targets = ops.one_hot(ops.full((n,), self.classes), self.classes + 1)
        loss = (losses.bce_with_logits(self.discriminate(real, training), ops.one_hot(real_labels, self.classes + 1))
                + losses.bce_with_logits(self.discriminate(fake, training), fake_targets))
        return loss, {"d_loss": loss}

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        n = ops.shape(monet)[0]
        fake, labels = self._fakes(n, training)
        adv = losses.bce_with_logits(self.discriminate(fake, training), ops.one_hot(labels, self.classes + 1))
        real = ops.concatenate([monet, ops.cast(photo, monet.dtype)], axis=0)
        recon_images = self.decoder(self.encoder(real, training=training), training=training)
        recon = self.recon_weight * ops.mean(ops.square(ops.cast(recon_images, "float32") - ops.cast(real, "float32")))
        return adv + recon, {"g_loss": adv + recon, "g_adv": adv, "recon": recon}

    def sample(self, batch_index, batch_size: int, category: int = MONET):
        onehot = ops.one_hot(ops.full((batch_size,), category), self.classes)
        return self.generator([self.sample_latents(batch_index, batch_size), onehot], training=False)
