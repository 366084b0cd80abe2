"""DRIT++ (Lee et al. 2018/2020): disentangled content and attribute, cross-cycle translation.

Per domain a content encoder (c7s1-64 LeakyReLU, two 3x3 stride-2 convs with instance
norm, residual blocks; the last block shared by both domains, with N(0, 1) noise on its
output while training) and an attribute encoder (a 4x4 stride-2 conv, three residual
BasicBlocks with average pooling, LeakyReLU 0.2, global pooling, linear μ and log σ² of
an 8-d attribute code); a generator per domain whose first residual block is shared and
which concatenates the attribute code to its input at every stage (the authors' default
`concat` generator: 3 residual blocks, two 3x3 stride-2 transposed convs with layer norm,
a 1x1 transposed conv, tanh). Discriminators: a content discriminator on the content codes
(its own Adam at lr / 2.5, gradient norm clipped to 5, `d_iter` = 3 updates per generator
update) and two 3-scale discriminators per domain, one for translations with encoded
attributes, one for translations with random attributes (N(0, I)). All GAN terms are
sigmoid cross-entropy (the authors' BCE), the generators pushing the content
discriminator to 0.5 on both domains.

Generator losses, the authors' weights: GAN 1 (encoded and random attributes), content
GAN 1, cross-cycle reconstruction |x − G(E^c(G(...)), E^a(G(...)))| 10, self-reconstruction
10, latent regression |E^a(G(c, z)) − z| 10 (μ), KL of the attribute code 0.01 and an L2
pull on the content code 0.01, and DRIT++'s mode-seeking term 1 / (mean|G(c, z1) − G(c, z2)|
/ mean|z1 − z2| + 1e-5). Adam 1e-4, betas (0.5, 0.999), PyTorch's L2 weight decay 1e-4.
Initial weights N(0, 0.02).

Differences from the authors' code, on purpose:
- their two generator updates per iteration (encoders + generators on the main losses,
  then content encoders + generators on the random-attribute GAN, latent regression and
  mode seeking) are one Adam step on the sum; the latent regression still moves only what
  their second update steps (its gradient passes through the attribute encoders to the
  translations, never into the attribute encoders' weights);
- their content-discriminator-only iterations each read a new batch; here the content
  discriminator takes its `d_iter` updates on the step's batch;
- their batch is split in halves (one encoded, one for random attributes); here both use
  the whole batch; the attribute KL and the mode-seeking ratio are per image, averaged
  over the batch (theirs: summed / over their batch of 1), so replica counts agree;
- their content discriminator's instance norm is switched off by a bug (`'norm' ==
  'Instance'`), so it has none here either; the LR stays constant by default (theirs decays
  linearly from half-way, `n_ep_decay`: `decay_start = 0.5` does the same).
Known limit: the content discriminator's gradient clipping is Keras' `global_clipnorm`; under
several TensorFlow replicas Keras clips each replica's share before the all-reduce, so the
threshold then acts on 1/N of the gradient (JAX's DataParallel clips the global one). The
replica test compares them unclipped.
Submissions: the content of the photo, without noise, painted with one fixed attribute code
per run (`style_seed`, `gan-tpu generate --style-seed N`), as MUNIT.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.layers import ReflectionPadding2D, weight_init
from gan_tpu.models.base import Player
from gan_tpu.models.registry import register
from gan_tpu.models.translation_layers import (FixedStyle, StyleCode, TwoDomainGAN, check_sizes, conv_block,
                                               multiscale_discriminator, norm, res_block)

SLOPE = 0.01  # PyTorch's default LeakyReLU slope, which the authors' LeakyReLUConv2d uses


@keras.saving.register_keras_serializable(package="gan_tpu")
class ConcatCode(layers.Layer):
    """`ConcatCode()([x, z])`: z [B, L] broadcast over x's pixels and appended as channels."""

    def call(self, inputs):
        x, z = inputs
        shape = ops.shape(x)
        z = ops.cast(z, x.dtype)[:, None, None, :]
        return ops.concatenate([x, ops.broadcast_to(z, (shape[0], shape[1], shape[2], ops.shape(z)[-1]))], axis=-1)

    def compute_output_shape(self, shapes):
        return (*shapes[0][:-1], shapes[0][-1] + shapes[1][-1])


def content_encoder(image_size, *, dim, n_res, name):
    """c7s1-dim LeakyReLU, two 3x3 stride-2 convs (instance norm, ReLU), n_res − 1 residual blocks."""
    init = weight_init()
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = conv_block(inputs, dim, 7, pad=3, activation="lrelu", slope=SLOPE, init=init, name=f"{name}_stem")
    for i in range(2):
        x = conv_block(x, dim * 2 ** (i + 1), 3, strides=2, pad=1, norm_kind="in", init=init, name=f"{name}_down{i}")
    for b in range(n_res - 1):
        x = res_block(x, init=init, name=f"{name}_res{b}")
    return keras.Model(inputs, x, name=name)


def shared_block(size, width, *, name):
    inputs = keras.Input((size, size, width), name=f"{name}_in")
    return keras.Model(inputs, res_block(inputs, init=weight_init(), name=f"{name}_res"), name=name)


def attribute_encoder(image_size, *, dim, attr_dim, name):
    """[μ, log σ²] of the attribute code: 4x4 stride-2 conv, 3 BasicBlocks, LeakyReLU 0.2, GAP, linear."""
    if image_size % 16:
        raise ValueError(f"DRIT++'s attribute encoder needs an image size divisible by 16, got {image_size}")
    init = weight_init()
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = ReflectionPadding2D(1, name=f"{name}_stem_pad")(inputs)
    x = layers.Conv2D(dim, 4, strides=2, kernel_initializer=init, name=f"{name}_stem_conv")(x)
    for n in range(1, 4):
        width_in, width_out = dim * min(4, n), dim * min(4, n + 1)
        y = layers.LeakyReLU(0.2, name=f"{name}_block{n}_act1")(x)
        y = conv_block(y, width_in, 3, pad=1, activation="lrelu", init=init, name=f"{name}_block{n}a")
        y = conv_block(y, width_out, 3, pad=1, activation="none", init=init, name=f"{name}_block{n}b")
        y = layers.AveragePooling2D(2, name=f"{name}_block{n}_pool")(y)
        shortcut = layers.AveragePooling2D(2, name=f"{name}_block{n}_short_pool")(x)
        shortcut = layers.Conv2D(width_out, 1, kernel_initializer=init, name=f"{name}_block{n}_short_conv")(shortcut)
        x = layers.Add(name=f"{name}_block{n}_add")([y, shortcut])
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(layers.LeakyReLU(0.2, name=f"{name}_act")(x))
    mu = layers.Dense(attr_dim, kernel_initializer=init, name=f"{name}_mu")(x)
    log_var = layers.Dense(attr_dim, kernel_initializer=init, name=f"{name}_log_var")(x)
    out = [layers.Activation("linear", dtype="float32", name=f"{name}_{k}_out")(t)
           for k, t in (("mu", mu), ("log_var", log_var))]
    return keras.Model(inputs, out, name=name)


def concat_generator(size, width, *, attr_dim, n_res, name):
    """[shared-block features, attribute code] -> image; the code joins every stage."""
    init = weight_init()
    features = keras.Input((size, size, width), name=f"{name}_content")
    code = keras.Input((attr_dim,), name=f"{name}_attr")
    x = ConcatCode(name=f"{name}_code0")([features, code])
    for b in range(n_res - 1):
        x = res_block(x, init=init, name=f"{name}_res{b}")
    for i in range(2):
        x = ConcatCode(name=f"{name}_code{i + 1}")([x, code])
        x = layers.Conv2DTranspose(x.shape[-1] // 2, 3, strides=2, padding="same", kernel_initializer=init,
                                   name=f"{name}_up{i}_conv")(x)
        x = layers.ReLU(name=f"{name}_up{i}_act")(norm("ln", f"{name}_up{i}_norm")(x))
    x = ConcatCode(name=f"{name}_code3")([x, code])
    x = layers.Conv2DTranspose(3, 1, kernel_initializer=init, name=f"{name}_out_conv")(x)
    return keras.Model([features, code], layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x), name=name)


def content_discriminator_size(size: int, n_layers: int) -> int:
    """The content discriminator's logit map size on [size, size] codes (< 1: too small)."""
    for _ in range(n_layers):
        size = (size + 2 - 7) // 2 + 1
    return size - 3


def content_discriminator(size, width, *, n_layers, name="content_d"):
    """n_layers 7x7 stride-2 convs (reflection pad 1), a 4x4 conv, LeakyReLU 0.01; 1x1 conv to logits."""
    if content_discriminator_size(size, n_layers) < 1:
        raise ValueError(f"model.content_d_layers={n_layers} leaves no logits on {size} px content codes "
                         f"(lower model.content_d_layers or raise data.image_size)")
    init = weight_init()
    inputs = keras.Input((size, size, width), name=f"{name}_in")
    x = inputs
    for i in range(n_layers):
        x = conv_block(x, width, 7, strides=2, pad=1, activation="lrelu", slope=SLOPE, init=init, name=f"{name}_down{i}")
    x = conv_block(x, width, 4, activation="lrelu", slope=SLOPE, init=init, name=f"{name}_flat")
    x = layers.Conv2D(1, 1, kernel_initializer=init, name=f"{name}_logits")(x)
    return keras.Model(inputs, layers.Activation("linear", dtype="float32", name=f"{name}_out")(x), name=name)


def bce(logits, target: float):
    """Σ over a discriminator's scales of mean sigmoid cross-entropy against `target`."""
    logits = logits if isinstance(logits, (list, tuple)) else [logits]
    return sum(losses.bce_with_logits(t, target) for t in logits)


def mode_seeking(fake_1, fake_2, z_1, z_2):
    """DRIT++'s mode-seeking loss per image, averaged: 1 / (mean|ΔG| / mean|Δz| + 1e-5)."""
    images = ops.mean(ops.abs(ops.cast(fake_1, "float32") - ops.cast(fake_2, "float32")), axis=(1, 2, 3))
    codes = ops.mean(ops.abs(z_1 - z_2), axis=-1)
    return ops.mean(1.0 / (images / codes + 1e-5))


@register("drit", dim=64, attr_dim=8, n_res=4, ndf=64, d_layers=4, d_scales=3, content_d_layers=3, d_iter=3,
          gan_weight=1.0, content_gan_weight=1.0, cross_cycle_weight=10.0, self_recon_weight=10.0,
          latent_weight=10.0, kl_weight=0.01, content_l2_weight=0.01, mode_seeking_weight=1.0,
          lr=1e-4, content_lr_ratio=0.4, content_clipnorm=5.0, beta_1=0.5, beta_2=0.999, weight_decay=1e-4,
          style_seed=0)
class DRIT(FixedStyle, TwoDomainGAN):
    """photo -> Monet with a chosen attribute code. Batches are (monet, photo) in [-1, 1]."""

    loss_names = ("g_total", "g_adv", "content_adv", "cross_cycle", "self_recon", "latent", "kl", "mode_seeking",
                  "d_monet", "d_photo", "d_content")

    def __init__(self, image_size: int, *, dim, attr_dim, n_res, ndf, d_layers, d_scales, content_d_layers, d_iter,
                 gan_weight, content_gan_weight, cross_cycle_weight, self_recon_weight, latent_weight, kl_weight,
                 content_l2_weight, mode_seeking_weight, lr, content_lr_ratio, content_clipnorm, beta_1, beta_2,
                 weight_decay, style_seed, **kwargs):
        if n_res < 1 or d_iter < 1:
            raise ValueError(f"model.n_res and model.d_iter must be >= 1, got {n_res}, {d_iter}")
        check_sizes("DRIT++", image_size, d_layers=d_layers, d_scales=d_scales, n_downsample=2)
        super().__init__(image_size, ndf=ndf, d_layers=d_layers, d_scales=d_scales, gan_weight=gan_weight, lr=lr,
                         beta_1=beta_1, beta_2=beta_2, weight_decay=weight_decay, d_slope=SLOPE, **kwargs)
        size, width = image_size // 4, dim * 4
        self.style_dim = int(attr_dim)
        for domain in ("monet", "photo"):
            setattr(self, f"content_{domain}", content_encoder(image_size, dim=dim, n_res=n_res, name=f"content_{domain}"))
            setattr(self, f"attr_{domain}", attribute_encoder(image_size, dim=dim, attr_dim=attr_dim,
                                                              name=f"attr_{domain}"))
            setattr(self, f"gen_{domain}", concat_generator(size, width, attr_dim=attr_dim, n_res=n_res,
                                                            name=f"gen_{domain}"))
        self.content_shared = shared_block(size, width, name="content_shared")
        self.gen_shared = shared_block(size, width, name="gen_shared")
        d = dict(ndf=ndf, n_layers=d_layers, scales=d_scales, slope=SLOPE)
        self.d2_monet = multiscale_discriminator(image_size, name="d2_monet", **d)
        self.d2_photo = multiscale_discriminator(image_size, name="d2_photo", **d)
        self.content_d = content_discriminator(size, width, n_layers=content_d_layers)
        self.d_iter = int(d_iter)
        self.c_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr * content_lr_ratio), beta_1=beta_1, beta_2=beta_2,
                                                 global_clipnorm=content_clipnorm, name="content_d_adam")
        photo = keras.Input((image_size, image_size, 3), name="drit_photo")
        self._style = StyleCode(attr_dim, name="drit_style")
        features = self.gen_shared(self.content_shared(self.content_photo(photo)))
        self._translator = keras.Model(photo, self.gen_monet([features, self._style(photo)]), name="drit_translator")
        self.set_style(style_seed)
        self.content_gan_weight, self.cross_cycle_weight = float(content_gan_weight), float(cross_cycle_weight)
        self.self_recon_weight, self.latent_weight = float(self_recon_weight), float(latent_weight)
        self.kl_weight, self.content_l2_weight = float(kl_weight), float(content_l2_weight)
        self.mode_seeking_weight = float(mode_seeking_weight)

    @property
    def translator(self):
        return self._translator

    @property
    def generators(self):
        return [getattr(self, f"{part}_{domain}") for domain in ("monet", "photo")
                for part in ("content", "attr", "gen")] + [self.content_shared, self.gen_shared]

    @property
    def discriminators(self):
        return [self.d_monet, self.d_photo, self.d2_monet, self.d2_photo]

    def make_players(self):
        return [
            Player("discriminator", self.discriminators, self.d_optimizer, self.discriminator_loss),
            Player("content_discriminator", [self.content_d], self.c_optimizer, self.content_discriminator_loss,
                   steps=self.d_iter),
            Player("generator", self.generators, self.g_optimizer, self.generator_loss),
        ]

    def paint(self, photos, styles):
        return self.generate(self.gen_monet, self.content(self.content_photo, photos, False), styles, False)

    # ---------------------------------------------------------------- the networks, composed

    def content(self, encoder, x, training):
        """The content code; N(0, 1) noise on it while training (the authors' GaussianNoiseLayer)."""
        c = self.content_shared(encoder(x, training=training), training=training)
        return c + self.normal(ops.shape(c), c.dtype) if training else c

    def attribute(self, encoder, x, training):
        """(μ, log σ², a sampled attribute code)."""
        mu, log_var = encoder(x, training=training)
        return mu, log_var, mu + ops.exp(0.5 * log_var) * self.normal(ops.shape(mu))

    def regressed(self, encoder, x, training):
        """μ of the attribute `encoder` on x for the latent regression: its gradient reaches x
        (the content encoders and generators) but not the encoder's weights, which the authors'
        second generator update (backward_G_alone) does not step. The two calls see the same
        weights and input, so their weight gradients cancel exactly."""
        mu = encoder(x, training=training)[0]
        frozen = encoder(ops.stop_gradient(x), training=training)[0]
        return mu - frozen + ops.stop_gradient(frozen)

    def generate(self, generator, content, code, training):
        return generator([self.gen_shared(content, training=training), code], training=training)

    def random_codes(self, images):
        return self.normal((ops.shape(images)[0], self.style_dim))

    # ---------------------------------------------------------------- losses

    def translations(self, monet, photo, training):
        """Encoded and random-attribute translations into each domain (one generator call each)."""
        c_m, c_p = self.content(self.content_monet, monet, training), self.content(self.content_photo, photo, training)
        mu_m, log_var_m, a_m = self.attribute(self.attr_monet, monet, training)
        mu_p, log_var_p, a_p = self.attribute(self.attr_photo, photo, training)
        z_1, z_2 = self.random_codes(monet), self.random_codes(monet)
        n = ops.shape(monet)[0]

        def four(generator, other, own, code):  # [translation, self-reconstruction, random z1, random z2]
            out = self.generate(generator, ops.concatenate([other, own, other, other]),
                                ops.concatenate([code, code, z_1, z_2]), training)
            return [out[i * n:(i + 1) * n] for i in range(4)]

        return dict(c_m=c_m, c_p=c_p, mu_m=mu_m, log_var_m=log_var_m, mu_p=mu_p, log_var_p=log_var_p, z_1=z_1, z_2=z_2,
                    monet=four(self.gen_monet, c_p, c_m, a_m), photo=four(self.gen_photo, c_m, c_p, a_p))

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        t = self.translations(monet, photo, training)
        parts = {}
        for domain, real, d, d2 in (("monet", monet, self.d_monet, self.d2_monet),
                                    ("photo", photo, self.d_photo, self.d2_photo)):
            encoded, _, random_1, random_2 = (ops.stop_gradient(x) for x in t[domain])
            loss = bce(d(real, training=training), 1.0) + bce(d(encoded, training=training), 0.0)
            for fake in (random_1, random_2):
                loss += bce(d2(real, training=training), 1.0) + bce(d2(fake, training=training), 0.0)
            parts[f"d_{domain}"] = self.gan_weight * loss
        return parts["d_monet"] + parts["d_photo"] + self.decay(self.discriminators), parts

    def content_discriminator_loss(self, batch, context, training):
        monet, photo = batch
        c_m = ops.stop_gradient(self.content(self.content_monet, monet, training))
        c_p = ops.stop_gradient(self.content(self.content_photo, photo, training))
        loss = self.content_gan_weight * (bce(self.content_d(c_p, training=training), 1.0)
                                          + bce(self.content_d(c_m, training=training), 0.0))
        return loss + self.decay([self.content_d]), {"d_content": loss}

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        t = self.translations(monet, photo, training)
        fake_m, same_m, random_m, random_m2 = t["monet"]
        fake_p, same_p, random_p, random_p2 = t["photo"]
        # cross-cycle: each translation's content goes back with its own attribute re-encoded
        c_p_again = self.content(self.content_monet, fake_m, training)
        c_m_again = self.content(self.content_photo, fake_p, training)
        a_m_again = self.attribute(self.attr_monet, fake_m, training)[2]
        a_p_again = self.attribute(self.attr_photo, fake_p, training)[2]
        cross_cycle = self.cross_cycle_weight * (
            losses.l1(monet, self.generate(self.gen_monet, c_m_again, a_m_again, training))
            + losses.l1(photo, self.generate(self.gen_photo, c_p_again, a_p_again, training)))
        self_recon = self.self_recon_weight * (losses.l1(monet, same_m) + losses.l1(photo, same_p))
        latent = self.latent_weight * (losses.l1(t["z_1"], self.regressed(self.attr_monet, random_m, training))
                                       + losses.l1(t["z_1"], self.regressed(self.attr_photo, random_p, training)))
        kl = self.kl_weight * (losses.kl_standard_normal(t["mu_m"], t["log_var_m"])
                               + losses.kl_standard_normal(t["mu_p"], t["log_var_p"])) \
            + self.content_l2_weight * (ops.mean(ops.square(ops.cast(t["c_m"], "float32")))
                                        + ops.mean(ops.square(ops.cast(t["c_p"], "float32"))))
        content_adv = self.content_gan_weight * (bce(self.content_d(t["c_m"], training=False), 0.5)
                                                 + bce(self.content_d(t["c_p"], training=False), 0.5))
        adv = 0.0
        for d, d2, fakes in ((self.d_monet, self.d2_monet, (fake_m, random_m, random_m2)),
                             (self.d_photo, self.d2_photo, (fake_p, random_p, random_p2))):
            adv += bce(d(fakes[0], training=False), 1.0) + bce(d2(fakes[1], training=False), 1.0) \
                + bce(d2(fakes[2], training=False), 1.0)
        adv = self.gan_weight * adv
        seeking = 0.0
        if self.noise and self.mode_seeking_weight:  # without noise there are no two codes to tell apart
            seeking = self.mode_seeking_weight * (mode_seeking(random_m, random_m2, t["z_1"], t["z_2"])
                                                  + mode_seeking(random_p, random_p2, t["z_1"], t["z_2"]))
        total = adv + content_adv + cross_cycle + self_recon + latent + kl + seeking + self.decay(self.generators)
        return total, {"g_total": total, "g_adv": adv, "content_adv": content_adv, "cross_cycle": cross_cycle,
                       "self_recon": self_recon, "latent": latent, "kl": kl, "mode_seeking": seeking}
