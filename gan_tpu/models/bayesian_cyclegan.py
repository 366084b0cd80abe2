"""Bayesian CycleGAN (You et al. 2020, "via marginalizing latent sampling"), on the shared base.

Each generator takes its input image with a latent map concatenated as extra channels.
An encoder per domain gives μ and log σ² of a latent code (`latent_channels`, default 1)
from an image of the generator's *target* domain; z = μ + σ·ε is broadcast over the image
to a `latent_channels`-channel map. Per step:
- `mc_samples` (default 3) Monte Carlo draws of z per image, run as one batch of K·B;
- generator player (generators + encoders): LSGAN on the fakes; cycle L1 (weight 10,
  summed over the K samples as in the authors' code) where the reconstruction uses the
  source image's own latent; a γ-weighted (0.1) LSGAN term on the reconstructions; a
  Gaussian prior on the generators' weights, `prior_weight`·Σ mean(w²) (the authors'
  `get_prior`, divided by their batch size 1); the encoders' KL to N(0, I), weight 0.1;
- discriminator player: 0.5·(K·real + fake) + 0.5·γ·(K·real + reconstruction) (LSGAN,
  real term times K as in the authors' code) plus the same prior on their weights.

Differences from the authors' code: the latent for photo i comes from the Monet image at
the same batch position (the stream is shuffled and unpaired, so that is a random
painting), not from K extra images read from disk each step; the KL term averages every
encoding of the step (theirs takes the last one); one Adam for generators and encoders
(theirs: one each with the same settings, which Adam makes equivalent).

Submissions: the translator takes a photo batch only and uses z = 0, the prior's mean,
which the KL term pulls every encoding towards (the authors' test code samples z from a
random Monet image instead; zero makes generation deterministic).

Randomness: ε comes from a seed state that is a weight of the encoders (checkpointed, so a
resumed run draws what a straight run would). Replicas each carry the same seed state,
so under a multi-replica strategy each replica draws the same ε for its own images.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.layers import ReflectionPadding2D, check_upsample, instance_norm, upsample_conv, weight_init
from gan_tpu.models.base import Player, TranslationModel
from gan_tpu.models.networks import patch_discriminator
from gan_tpu.models.registry import register


@keras.saving.register_keras_serializable(package="gan_tpu")
class LatentSampler(keras.layers.Layer):
    """`z = LatentSampler(samples=K)([mu, log_var])`: K draws of μ + exp(½ log σ²)·ε, [K·B, L].

    Draw k of image b is row k·B + b. Not training (or `noise=False`): μ, tiled K times.
    The seed state is this layer's own (non-trainable) weight, so checkpoints and
    trainers carry it like any other variable.
    """

    def __init__(self, samples: int = 1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.samples = int(samples)
        self.seed = int(seed)
        self.noise = True

    def build(self, input_shape):
        self._generator = keras.random.SeedGenerator(self.seed)
        self.seed_state = self.add_weight(
            shape=(2,), dtype=self._generator.state.dtype, trainable=False, name="seed_state",
            initializer=lambda shape, dtype: ops.convert_to_tensor([self.seed, 0], dtype=dtype))
        self._generator.state = self.seed_state

    def call(self, inputs, training=False):
        mu, log_var = (ops.cast(t, "float32") for t in inputs)
        mu = ops.tile(mu, [self.samples, 1])
        if not training or not self.noise:
            return mu
        eps = keras.random.normal(ops.shape(mu), seed=self._generator)
        return mu + ops.exp(0.5 * ops.tile(log_var, [self.samples, 1])) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "samples": self.samples, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gan_tpu")
class ConstantChannels(keras.layers.Layer):
    """Append `channels` constant channels (value `value`) to an NHWC batch: the zero latent."""

    def __init__(self, channels: int = 1, value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.value = float(value)

    def call(self, x):
        shape = ops.shape(x)
        const = ops.full((shape[0], shape[1], shape[2], self.channels), self.value, dtype=x.dtype)
        return ops.concatenate([x, const], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] + self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "value": self.value}


def latent_map(z, size: int):
    """[N, L] codes -> [N, size, size, L] maps (the code broadcast over every pixel)."""
    return ops.broadcast_to(z[:, None, None, :], (ops.shape(z)[0], size, size, ops.shape(z)[-1]))


def latent_resnet_generator(image_size: int, *, latent_channels: int = 1, ngf: int = 64, n_blocks: int = 9,
                            upsample: str = "transpose", name: str = "bayes_g") -> keras.Model:
    """The authors' 'global' ResNet generator on [image (3) + latent (L)] channels -> image.

    c7s1-ngf, two stride-2 convs, n_blocks residual blocks, two up blocks (`upsample`:
    "transpose", the authors' 3x3 transposed convs, or "resize" / "antialias", see
    `gan_tpu.layers.upsample_conv`), c7s1-3, tanh; instance norm without affine parameters.
    Convs followed by instance norm have no bias (theirs do: the norm cancels a bias
    exactly, so it only ever gets rounding noise).
    """
    check_upsample(upsample)
    if image_size % 4:
        raise ValueError(f"Bayesian CycleGAN image size must be a multiple of 4, got {image_size}")
    inputs = keras.Input((image_size, image_size, 3 + latent_channels), name=f"{name}_in")

    def conv(x, filters, kernel, tag, strides=1, pad=0, use_bias=False):
        if pad:
            x = ReflectionPadding2D(pad, name=f"{name}_{tag}_pad")(x)
        return layers.Conv2D(filters, kernel, strides=strides, padding="valid" if pad else "same",
                             use_bias=use_bias, kernel_initializer=weight_init(), name=f"{name}_{tag}_conv")(x)

    def norm_relu(x, tag):
        return layers.ReLU(name=f"{name}_{tag}_act")(instance_norm(f"{name}_{tag}_norm", affine=False)(x))

    x = norm_relu(conv(inputs, ngf, 7, "stem", pad=3), "stem")
    x = norm_relu(conv(x, ngf * 2, 3, "down0", strides=2), "down0")
    x = norm_relu(conv(x, ngf * 4, 3, "down1", strides=2), "down1")
    for b in range(n_blocks):
        y = norm_relu(conv(x, ngf * 4, 3, f"block{b}a", pad=1), f"block{b}a")
        y = instance_norm(f"{name}_block{b}b_norm", affine=False)(conv(y, ngf * 4, 3, f"block{b}b", pad=1))
        x = layers.Add(name=f"{name}_block{b}_add")([x, y])
    for i, w in enumerate((ngf * 2, ngf)):
        x = upsample_conv(x, w, mode=upsample, name=f"{name}_up{i}", transpose_kernel=3)
        x = norm_relu(x, f"up{i}")
    x = conv(x, 3, 7, "out", pad=3, use_bias=True)
    outputs = layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


def latent_encoder(image_size: int, *, latent_channels: int = 1, nef: int = 64, samples: int = 3,
                   seed: int = 0, name: str = "bayes_e") -> keras.Model:
    """image -> [μ, log σ², z]: the authors' encoder (4x4 stride-2 convs nef, 2nef, 4nef with
    ReLU, instance norm after the first), global average pool, two dense heads; z holds
    `samples` draws per image ([samples·B, L], see LatentSampler)."""
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(3):
        x = layers.Conv2D(nef * 2 ** i, 4, strides=2, padding="same", use_bias=i == 0,
                          kernel_initializer=weight_init(), name=f"{name}_conv{i}")(x)
        if i:
            x = instance_norm(f"{name}_norm{i}", affine=False)(x)
        x = layers.ReLU(name=f"{name}_act{i}")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    mu = layers.Dense(latent_channels, kernel_initializer=weight_init(), dtype="float32", name=f"{name}_mu")(x)
    log_var = layers.Dense(latent_channels, kernel_initializer=weight_init(), dtype="float32",
                           name=f"{name}_log_var")(x)
    z = LatentSampler(samples=samples, seed=seed, dtype="float32", name=f"{name}_sampler")([mu, log_var])
    return keras.Model(inputs, [mu, log_var, z], name=name)


def gaussian_prior(networks, weight: float):
    """weight·Σ mean(w²) over the networks' trainable weights (the authors' `get_prior`)."""
    if not weight:
        return 0.0
    return weight * sum(ops.mean(ops.square(ops.cast(v, "float32")))
                        for net in networks for v in net.trainable_variables)


@register(
    "bayesian_cyclegan",
    ngf=64,                  # generator base width
    ndf=64,                  # discriminator base width
    nef=64,                  # encoder base width
    n_blocks=9,              # generator residual blocks
    disc_layers=3,           # PatchGAN depth (3: 70x70)
    latent_channels=1,       # latent map channels concatenated to the generator input
    upsample="transpose",    # generator up blocks: "transpose" (authors'), "resize" or "antialias"
    mc_samples=3,            # Monte Carlo draws of the latent per image per step
    cycle_weight=10.0,       # λcyc
    kl_weight=0.1,           # λkl
    gamma=0.1,               # weight of the GAN loss on reconstructions
    prior_weight=1.0,        # Gaussian prior on G and D weights (authors: 1 / batch size 1)
    lr=2e-4,
    beta_1=0.5,
)
class BayesianCycleGAN(TranslationModel):
    """photo -> Monet (`g_monet`) and back (`g_photo`), with latent encoders `e_monet`, `e_photo`.

    Batches are `(monet, photo)` in [-1, 1]. The translator is g_monet with a zero latent.
    """

    loss_names = ("g_total", "g_adv", "cycle", "rec_adv", "kl", "prior", "d_monet", "d_photo")

    def __init__(self, image_size: int, *, ngf, ndf, nef, n_blocks, disc_layers, latent_channels, upsample, mc_samples,
                 cycle_weight, kl_weight, gamma, prior_weight, lr, beta_1, **kwargs):
        super().__init__(**kwargs)
        if mc_samples < 1 or latent_channels < 1:
            raise ValueError(f"mc_samples and latent_channels must be at least 1, "
                             f"got {mc_samples} and {latent_channels}")
        self.image_size = image_size
        self.mc_samples = int(mc_samples)
        g = dict(latent_channels=latent_channels, ngf=ngf, n_blocks=n_blocks, upsample=upsample)
        self.g_monet = latent_resnet_generator(image_size, name="g_monet", **g)
        self.g_photo = latent_resnet_generator(image_size, name="g_photo", **g)
        # seeds from Python's RNG, which keras.utils.set_random_seed (runs.make_run) seeds
        import random

        e = dict(latent_channels=latent_channels, nef=nef, samples=mc_samples)
        self.e_monet = latent_encoder(image_size, name="e_monet", seed=random.randint(1, 2**30), **e)
        self.e_photo = latent_encoder(image_size, name="e_photo", seed=random.randint(1, 2**30), **e)
        self.d_monet = patch_discriminator(image_size, ndf=ndf, n_layers=disc_layers, norm="instance", name="d_monet")
        self.d_photo = patch_discriminator(image_size, ndf=ndf, n_layers=disc_layers, norm="instance", name="d_photo")
        photo = keras.Input((image_size, image_size, 3), name="photo")
        self._translator = keras.Model(
            photo, self.g_monet(ConstantChannels(latent_channels, 0.0, name="zero_latent")(photo)),
            name="bayesian_translator")
        self.cycle_weight = float(cycle_weight)
        self.kl_weight = float(kl_weight)
        self.gamma = float(gamma)
        self.prior_weight = float(prior_weight)
        self.g_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr), beta_1=beta_1, name="g_adam")
        self.d_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr), beta_1=beta_1, name="d_adam")

    @property
    def translator(self):
        return self._translator

    @property
    def samplers(self):
        return [self.e_monet.get_layer("e_monet_sampler"), self.e_photo.get_layer("e_photo_sampler")]

    def make_players(self):
        return [
            Player("generator", [self.g_monet, self.g_photo, self.e_monet, self.e_photo], self.g_optimizer,
                   self.generator_loss),
            Player("discriminator", [self.d_monet, self.d_photo], self.d_optimizer, self.discriminator_loss),
        ]

    def _tile(self, x):
        return ops.tile(x, [self.mc_samples, 1, 1, 1])

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        k, size = self.mc_samples, self.image_size
        mu_m, log_var_m, z_monet = self.e_monet(monet, training=training)  # Monet style codes
        mu_p, log_var_p, z_photo = self.e_photo(photo, training=training)  # photo codes
        monet_k, photo_k = self._tile(monet), self._tile(photo)
        map_monet, map_photo = latent_map(z_monet, size), latent_map(z_photo, size)
        fake_monet = self.g_monet(ops.concatenate([photo_k, map_monet], -1), training=training)
        fake_photo = self.g_photo(ops.concatenate([monet_k, map_photo], -1), training=training)
        # reconstructions use the source image's own code
        rec_photo = self.g_photo(ops.concatenate([fake_monet, map_photo], -1), training=training)
        rec_monet = self.g_monet(ops.concatenate([fake_photo, map_monet], -1), training=training)

        adv = losses.least_squares(self.d_monet(fake_monet, training=training), 1.0) + \
            losses.least_squares(self.d_photo(fake_photo, training=training), 1.0)
        cycle = self.cycle_weight * k * (losses.l1(photo_k, rec_photo) + losses.l1(monet_k, rec_monet))
        rec_adv = self.gamma * (losses.least_squares(self.d_photo(rec_photo, training=training), 1.0)
                                + losses.least_squares(self.d_monet(rec_monet, training=training), 1.0))
        kl = self.kl_weight * (losses.kl_standard_normal(mu_m, log_var_m) + losses.kl_standard_normal(mu_p, log_var_p))
        prior = gaussian_prior([self.g_monet, self.g_photo], self.prior_weight)
        context.update(fake_monet=ops.stop_gradient(fake_monet), fake_photo=ops.stop_gradient(fake_photo),
                       rec_monet=ops.stop_gradient(rec_monet), rec_photo=ops.stop_gradient(rec_photo))
        total = adv + cycle + rec_adv + kl + prior
        return total, {"g_total": total, "g_adv": adv, "cycle": cycle, "rec_adv": rec_adv, "kl": kl,
                       "prior": prior}

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        k = float(self.mc_samples)

        def judge(d, real, fake, rec):
            real_loss = losses.least_squares(d(real, training=training), 1.0) * k
            fake_loss = losses.least_squares(d(fake, training=training), 0.0)
            rec_loss = losses.least_squares(d(rec, training=training), 0.0)
            return 0.5 * (real_loss + fake_loss) + 0.5 * self.gamma * (real_loss + rec_loss)

        d_monet = judge(self.d_monet, monet, context["fake_monet"], context["rec_monet"])
        d_photo = judge(self.d_photo, photo, context["fake_photo"], context["rec_photo"])
        prior = gaussian_prior([self.d_monet, self.d_photo], self.prior_weight)
        return d_monet + d_photo + prior, {"d_monet": d_monet, "d_photo": d_photo}
