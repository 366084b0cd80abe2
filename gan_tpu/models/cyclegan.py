"""CycleGAN (Zhu et al. 2017): two generators, two PatchGAN discriminators, cycle + identity.

One class, registered under several names with their own defaults (the useful option
combinations): `cyclegan` (the starter notebook's U-Net CycleGAN), `cyclegan_resnet` (the
seed report's ResNet-9 with skips and layer norm, Zhu et al.'s LSGAN, pool, decay),
`cyclegan_wgangp` (a WGAN-GP critic) and `sn_cyclegan` (spectrally normalized
discriminators). Every option of every variant is in `OPTIONS` below.
"""
from __future__ import annotations

import keras
from keras import ops

from gan_tpu import augment, losses, optimizers
from gan_tpu.image_pool import ImagePool
from gan_tpu.models.base import Player, TranslationModel
from gan_tpu.models.networks import GENERATORS, patch_discriminator
from gan_tpu.models.registry import register


OPTIONS = dict(
    generator="unet",        # "unet" (starter notebook) or "resnet" (Zhu et al.'s ResNet-9)
    ngf=64,                  # generator base width
    ndf=64,                  # discriminator base width
    n_blocks=9,              # residual blocks of the resnet generator
    skips=False,             # resnet: encoder-decoder skip connections
    disc_layers=3,           # 3 = the 70x70 PatchGAN
    norm="instance",         # generator norm: "instance", "layer", "batch" or "none"
    d_norm="instance",       # discriminator norm
    spectral_norm=False,     # spectral normalization on every discriminator conv
    dropout=0.5,             # U-Net up blocks 1-3
    upsample="transpose",    # generator up blocks: "transpose", "resize" (nearest + conv), "antialias" (CUT's)
    adversarial="bce",       # "bce", "lsgan", "hinge" or "wgan-gp"
    label_smoothing=0.0,     # one-sided: real label 1 - this (bce, lsgan)
    n_critic=1,              # discriminator updates per batch
    gp_weight=10.0,          # wgan-gp's lambda
    pool_size=0,             # past fakes shown to D (Zhu et al.: 50); 0: none
    diff_augment="",         # DiffAugment policy for D's inputs, e.g. "translation,cutout"
    cycle_weight=10.0,
    identity_weight=0.5,     # x cycle_weight
    optimizer="adam",        # "adam" or "adabelief"
    lr=2e-4,
    beta_1=0.5,
    beta_2=0.999,
    decay_start=1.0,         # fraction of training after which lr falls linearly to 0; 1: constant
    total_steps=0,           # steps of the whole run; 0: epochs x steps_per_epoch, set by training
)


def _variant(**changes):
    unknown = set(changes) - set(OPTIONS)
    assert not unknown, unknown
    return {**OPTIONS, **changes}


class RandomStreams(keras.Model):
    """Seed generators for DiffAugment and the gradient penalty's interpolation.

    A Model whose seed states are attributes, so that checkpoints (which hold the model's
    `networks`) carry them and a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, names, **kwargs):
        super().__init__(**kwargs)
        self.generators = {}
        for name in names:
            gen = keras.random.SeedGenerator(name=f"{name}_seed")
            self.generators[name] = gen
            setattr(self, f"{name}_state", gen.state)

    def __getitem__(self, name):
        return self.generators[name]


@register("cyclegan", **OPTIONS)
@register("cyclegan_resnet", **_variant(generator="resnet", skips=True, norm="layer", adversarial="lsgan",
                                        pool_size=50, decay_start=0.5))
@register("cyclegan_wgangp", **_variant(generator="resnet", d_norm="layer", adversarial="wgan-gp",
                                        n_critic=5, lr=1e-4, beta_1=0.0, beta_2=0.9, decay_start=0.5))
@register("sn_cyclegan", **_variant(generator="resnet", spectral_norm=True, adversarial="lsgan",
                                    pool_size=50, decay_start=0.5))
class CycleGAN(TranslationModel):
    """photo -> Monet (`g_monet`) and Monet -> photo (`g_photo`), judged by `d_monet`, `d_photo`.

    Data batches are `(monet, photo)` pairs of float images in [-1, 1] (unpaired).
    """

    loss_names = ("g_total", "g_adv", "cycle", "identity", "d_monet", "d_photo")

    def __init__(self, image_size: int, *, generator, ngf, ndf, n_blocks, skips, disc_layers, norm,
                 d_norm, spectral_norm, dropout, upsample, adversarial, label_smoothing, n_critic, gp_weight,
                 pool_size, diff_augment, cycle_weight, identity_weight, optimizer, lr, beta_1,
                 beta_2, **kwargs):
        super().__init__(**kwargs)
        if adversarial not in losses.ADVERSARIAL:
            raise ValueError(f"adversarial must be one of {losses.ADVERSARIAL}, got {adversarial!r}")
        if generator not in GENERATORS:
            raise ValueError(f"generator must be one of {tuple(GENERATORS)}, got {generator!r}")
        if optimizer not in optimizers.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {optimizers.OPTIMIZERS}, got {optimizer!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if label_smoothing and adversarial not in ("bce", "lsgan"):
            raise ValueError(f"label_smoothing applies to bce and lsgan, not {adversarial!r}")
        if n_critic < 1 or pool_size < 0:
            raise ValueError(f"n_critic must be >= 1 and pool_size >= 0, got {n_critic}, {pool_size}")
        if skips and generator != "resnet":
            raise ValueError("skips applies to the resnet generator (the U-Net has its own)")
        self.policy = augment.parse_policy(diff_augment)
        options = {"ngf": ngf, "norm": norm, "upsample": upsample}
        options.update({"dropout": dropout} if generator == "unet" else {"n_blocks": n_blocks, "skips": skips})
        make_g = GENERATORS[generator]
        self.g_monet = make_g(image_size, name="g_monet", **options)
        self.g_photo = make_g(image_size, name="g_photo", **options)
        d_options = dict(ndf=ndf, n_layers=disc_layers, norm=d_norm, spectral_norm=spectral_norm)
        self.d_monet = patch_discriminator(image_size, name="d_monet", **d_options)
        self.d_photo = patch_discriminator(image_size, name="d_photo", **d_options)
        self.adversarial = adversarial
        self.real_label = 1.0 - float(label_smoothing)
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        shape = (image_size, image_size, 3)
        self.pool_monet = ImagePool(pool_size, shape, name="pool_monet") if pool_size else None
        self.pool_photo = ImagePool(pool_size, shape, name="pool_photo") if pool_size else None
        self.random = RandomStreams(["augment", "penalty"], name="random")
        self.g_optimizer = optimizers.make(optimizer, self.lr_schedule(lr), beta_1=beta_1, beta_2=beta_2,
                                           name=f"g_{optimizer}")
        self.d_optimizer = optimizers.make(optimizer, self.lr_schedule(lr), beta_1=beta_1, beta_2=beta_2,
                                           name=f"d_{optimizer}")

    @property
    def seed_generators(self) -> dict:
        """DiffAugment's, the penalty's and the pools' random streams: the trainer gives
        each replica its own (else every replica would shift, cut and swap alike)."""
        gens = {f"random_{k}": g for k, g in self.random.generators.items()}
        for name in ("pool_monet", "pool_photo"):
            if getattr(self, name) is not None:
                gens[name] = getattr(self, name).seed_generator
        return gens

    @property
    def translator(self):
        return self.g_monet

    def make_players(self):
        return [
            Player("generator", [self.g_monet, self.g_photo], self.g_optimizer, self.generator_loss),
            Player("discriminator", [self.d_monet, self.d_photo], self.d_optimizer, self.discriminator_loss,
                   steps=self.n_critic),
        ]

    def _judge(self, d, images, training):
        """D's logits on images after DiffAugment (the same policy for real and fake)."""
        if self.policy:
            images = augment.diff_augment(images, self.policy, seed=self.random["augment"])
        return d(images, training=training)

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        fake_monet = self.g_monet(photo, training=training)
        fake_photo = self.g_photo(monet, training=training)
        cycled_photo = self.g_photo(fake_monet, training=training)
        cycled_monet = self.g_monet(fake_photo, training=training)
        adv = losses.generator_loss(self.adversarial, self._judge(self.d_monet, fake_monet, training)) + \
            losses.generator_loss(self.adversarial, self._judge(self.d_photo, fake_photo, training))
        cycle = self.cycle_weight * (losses.l1(monet, cycled_monet) + losses.l1(photo, cycled_photo))
        identity = 0.0
        if self.identity_weight:
            identity = self.cycle_weight * self.identity_weight * (
                losses.l1(monet, self.g_monet(monet, training=training))
                + losses.l1(photo, self.g_photo(photo, training=training))
            )
        # The pools are queried here, once per batch, not in D's loss (run n_critic times).
        fake_monet, fake_photo = ops.stop_gradient(fake_monet), ops.stop_gradient(fake_photo)
        context["fake_monet"] = self.pool_monet(fake_monet) if self.pool_monet is not None else fake_monet
        context["fake_photo"] = self.pool_photo(fake_photo) if self.pool_photo is not None else fake_photo
        total = adv + cycle + identity
        return total, {"g_total": total, "g_adv": adv, "cycle": cycle, "identity": identity}

    def _d_loss(self, d, real, fake, training):
        if self.policy:
            real = augment.diff_augment(real, self.policy, seed=self.random["augment"])
            fake = augment.diff_augment(fake, self.policy, seed=self.random["augment"])
        loss = losses.discriminator_loss(self.adversarial, d(real, training=training),
                                         d(fake, training=training), real_label=self.real_label)
        if self.adversarial == "wgan-gp":
            loss = loss + losses.gradient_penalty(lambda x: d(x, training=training), real, fake,
                                                  weight=self.gp_weight, seed=self.random["penalty"])
        return loss

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        d_monet = self._d_loss(self.d_monet, monet, context["fake_monet"], training)
        d_photo = self._d_loss(self.d_photo, photo, context["fake_photo"], training)
        return d_monet + d_photo, {"d_monet": d_monet, "d_photo": d_photo}
