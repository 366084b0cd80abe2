"""CycleGAN (Zhu et al. 2017): two generators, two PatchGAN discriminators, cycle + identity."""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import losses
from gan_tpu.models.base import AdversarialModel, Player
from gan_tpu.models.networks import GENERATORS, patch_discriminator
from gan_tpu.models.registry import register


def adam(lr: float, beta_1: float, name: str) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, name=name)


@register(
    "cyclegan",
    generator="unet",        # "unet" (starter notebook) or "resnet" (Zhu et al.'s ResNet-9)
    ngf=64,                  # generator base width
    ndf=64,                  # discriminator base width
    n_blocks=9,              # residual blocks of the resnet generator
    disc_layers=3,           # 3 = the 70x70 PatchGAN
    norm="instance",
    dropout=0.5,             # U-Net up blocks 1-3
    adversarial="bce",       # "bce" or "lsgan"
    cycle_weight=10.0,
    identity_weight=0.5,     # x cycle_weight
    lr=2e-4,
    beta_1=0.5,
)
class CycleGAN(AdversarialModel):
    """photo -> Monet (`g_monet`) and Monet -> photo (`g_photo`), judged by `d_monet`, `d_photo`.

    Data batches are `(monet, photo)` pairs of float images in [-1, 1] (unpaired).
    """

    loss_names = ("g_total", "g_adv", "cycle", "identity", "d_monet", "d_photo")

    def __init__(self, image_size: int, *, generator, ngf, ndf, n_blocks, disc_layers, norm,
                 dropout, adversarial, cycle_weight, identity_weight, lr, beta_1, **kwargs):
        super().__init__(**kwargs)
        if adversarial not in losses.ADVERSARIAL:
            raise ValueError(f"adversarial must be one of {losses.ADVERSARIAL}, got {adversarial!r}")
        if generator not in GENERATORS:
            raise ValueError(f"generator must be one of {tuple(GENERATORS)}, got {generator!r}")
        options = {"ngf": ngf, "norm": norm}
        options.update({"dropout": dropout} if generator == "unet" else {"n_blocks": n_blocks})
        make_g = GENERATORS[generator]
        self.g_monet = make_g(image_size, name="g_monet", **options)
        self.g_photo = make_g(image_size, name="g_photo", **options)
        self.d_monet = patch_discriminator(image_size, ndf=ndf, n_layers=disc_layers, norm=norm, name="d_monet")
        self.d_photo = patch_discriminator(image_size, ndf=ndf, n_layers=disc_layers, norm=norm, name="d_photo")
        self.adversarial = adversarial
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.g_optimizer = adam(lr, beta_1, "g_adam")
        self.d_optimizer = adam(lr, beta_1, "d_adam")

    @property
    def translator(self):
        return self.g_monet

    def make_players(self):
        return [
            Player("generator", [self.g_monet, self.g_photo], self.g_optimizer, self.generator_loss),
            Player("discriminator", [self.d_monet, self.d_photo], self.d_optimizer, self.discriminator_loss),
        ]

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        fake_monet = self.g_monet(photo, training=training)
        fake_photo = self.g_photo(monet, training=training)
        cycled_photo = self.g_photo(fake_monet, training=training)
        cycled_monet = self.g_monet(fake_photo, training=training)
        adv = losses.generator_loss(self.adversarial, self.d_monet(fake_monet, training=training)) + \
            losses.generator_loss(self.adversarial, self.d_photo(fake_photo, training=training))
        cycle = self.cycle_weight * (losses.l1(monet, cycled_monet) + losses.l1(photo, cycled_photo))
        identity = 0.0
        if self.identity_weight:
            identity = self.cycle_weight * self.identity_weight * (
                losses.l1(monet, self.g_monet(monet, training=training))
                + losses.l1(photo, self.g_photo(photo, training=training))
            )
        context["fake_monet"] = ops.stop_gradient(fake_monet)
        context["fake_photo"] = ops.stop_gradient(fake_photo)
        total = adv + cycle + identity
        return total, {"g_total": total, "g_adv": adv, "cycle": cycle, "identity": identity}

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        d_monet = losses.discriminator_loss(
            self.adversarial, self.d_monet(monet, training=training),
            self.d_monet(context["fake_monet"], training=training))
        d_photo = losses.discriminator_loss(
            self.adversarial, self.d_photo(photo, training=training),
            self.d_photo(context["fake_photo"], training=training))
        return d_monet + d_photo, {"d_monet": d_monet, "d_photo": d_photo}
