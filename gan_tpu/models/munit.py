"""MUNIT (Huang, Liu, Belongie and Kautz 2018): multimodal translation by content and style.

Per domain: a content encoder E^c (c7s1-64, two 4x4 stride-2 convs, 4 residual blocks,
instance norm), a style encoder E^s (c7s1-64, four 4x4 stride-2 convs, no norm, global
average pooling, a linear map to an 8-d style code) and a decoder whose residual blocks
are AdaIN-normalized, with AdaIN's per-sample scales and offsets made from the style code
by an MLP (8 -> 256 -> 256 -> 2 · 2C per block, ReLU); then nearest upsampling + 5x5 convs
with layer norm and c7s1-3 tanh. A 3-scale LSGAN discriminator per domain (4 layers).

Translation photo -> Monet: G_monet(E^c_photo(photo), s) with a style s ~ N(0, I). Losses as
the authors' code and paper: GAN (1) on translations with random styles, image
reconstruction |G_i(E^c_i(x), E^s_i(x)) − x| (10), latent reconstruction of the content
(1) and of the random style (1) from the translation, optional style-augmented cycle
|G_i(E^c_j(x^{i→j}), E^s_i(x)) − x| (0, the authors' default). Adam 1e-4, betas (0.5,
0.999), PyTorch's L2 weight decay 1e-4; discriminators first, as their loop.

Random styles come from the model's seeded `noise_seed` stream (checkpointed, one per
replica). Submissions use one fixed style per run: the code drawn from NumPy's
`default_rng(style_seed)` (`model.style_seed`, or `gan-tpu generate --style-seed N`), the
same on every backend; the sample grid shows `GRID_STYLES` styles per photo (seeds 0, 1, 2).
Differences from the authors' code: the LR stays constant (theirs halves every 100k); convs
followed by instance norm or AdaIN have no bias (the norm cancels it exactly).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.layers import kaiming
from gan_tpu.models.registry import register
from gan_tpu.models.translation_layers import (GRID_STYLES, AdaIN, FixedStyle, StyleCode, TwoDomainGAN,  # noqa: F401
                                               check_sizes, conv_block, content_encoder_head, res_block,
                                               style_code, upsampling_tail)

STYLE_DOWNSAMPLE = 4  # the authors' StyleEncoder(4, ...)


def content_encoder(image_size, *, dim, n_downsample, n_res, name):
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = content_encoder_head(inputs, dim=dim, n_downsample=n_downsample, name=name)
    for b in range(n_res):
        x = res_block(x, name=f"{name}_res{b}")
    return keras.Model(inputs, x, name=name)


def style_encoder(image_size, *, dim, style_dim, name):
    """c7s1-dim, two stride-2 convs doubling the width, two more at that width, GAP, linear."""
    if image_size % 2 ** STYLE_DOWNSAMPLE:
        raise ValueError(f"MUNIT's style encoder needs an image size divisible by {2 ** STYLE_DOWNSAMPLE}, "
                         f"got {image_size}")
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = conv_block(inputs, dim, 7, pad=3, name=f"{name}_stem")
    for i in range(STYLE_DOWNSAMPLE):
        dim = dim * 2 if i < 2 else dim
        x = conv_block(x, dim, 4, strides=2, pad=1, name=f"{name}_down{i}")
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    code = layers.Dense(style_dim, kernel_initializer=kaiming(), name=f"{name}_code")(x)
    return keras.Model(inputs, layers.Activation("linear", dtype="float32", name=f"{name}_out")(code), name=name)


def adain_decoder(size, width, *, style_dim, mlp_dim, n_upsample, n_res, name):
    """[content [B, size, size, width], style [B, style_dim]] -> image."""
    content = keras.Input((size, size, width), name=f"{name}_content")
    style = keras.Input((style_dim,), name=f"{name}_style")
    h = style
    for i in range(2):
        h = layers.Dense(mlp_dim, activation="relu", kernel_initializer=kaiming(), name=f"{name}_mlp{i}")(h)
    params = layers.Dense(n_res * 2 * 2 * width, kernel_initializer=kaiming(), name=f"{name}_adain_params")(h)
    x = content
    for b in range(n_res):
        y = x
        for j, act in enumerate(("relu", "none")):
            y = conv_block(y, width, 3, pad=1, activation="none", use_bias=False, name=f"{name}_res{b}{'ab'[j]}")
            y = AdaIN(index=2 * b + j, name=f"{name}_res{b}{'ab'[j]}_adain")([y, params])
            if act == "relu":
                y = layers.ReLU(name=f"{name}_res{b}a_act")(y)
        x = layers.Add(name=f"{name}_res{b}_add")([x, y])
    return keras.Model([content, style], upsampling_tail(x, n_upsample=n_upsample, name=name), name=name)


@register("munit", dim=64, style_dim=8, mlp_dim=256, n_downsample=2, n_res=4, ndf=64, d_layers=4, d_scales=3,
          gan_weight=1.0, recon_weight=10.0, style_weight=1.0, content_weight=1.0, cycle_weight=0.0,
          lr=1e-4, beta_1=0.5, beta_2=0.999, weight_decay=1e-4, style_seed=0)
class MUNIT(FixedStyle, TwoDomainGAN):
    """photo -> Monet with a chosen style. Batches are (monet, photo) in [-1, 1]."""

    loss_names = ("g_total", "g_adv", "recon", "style", "content", "cycle", "d_monet", "d_photo")

    def __init__(self, image_size: int, *, dim, style_dim, mlp_dim, n_downsample, n_res, ndf, d_layers, d_scales,
                 gan_weight, recon_weight, style_weight, content_weight, cycle_weight, lr, beta_1, beta_2,
                 weight_decay, style_seed, **kwargs):
        check_sizes("MUNIT", image_size, d_layers=d_layers, d_scales=d_scales, n_downsample=n_downsample)
        super().__init__(image_size, ndf=ndf, d_layers=d_layers, d_scales=d_scales, gan_weight=gan_weight,
                         lr=lr, beta_1=beta_1, beta_2=beta_2, weight_decay=weight_decay, **kwargs)
        size, width = image_size // 2 ** n_downsample, dim * 2 ** n_downsample
        self.style_dim = int(style_dim)
        for domain in ("monet", "photo"):
            setattr(self, f"content_{domain}", content_encoder(image_size, dim=dim, n_downsample=n_downsample,
                                                               n_res=n_res, name=f"content_{domain}"))
            setattr(self, f"style_{domain}", style_encoder(image_size, dim=dim, style_dim=style_dim,
                                                           name=f"style_{domain}"))
            setattr(self, f"decoder_{domain}", adain_decoder(size, width, style_dim=style_dim, mlp_dim=mlp_dim,
                                                             n_upsample=n_downsample, n_res=n_res,
                                                             name=f"decoder_{domain}"))
        photo = keras.Input((image_size, image_size, 3), name="munit_photo")
        self._style = StyleCode(style_dim, name="munit_style")
        self._translator = keras.Model(
            photo, self.decoder_monet([self.content_photo(photo), self._style(photo)]), name="munit_translator")
        self.set_style(style_seed)
        self.recon_weight, self.style_weight = float(recon_weight), float(style_weight)
        self.content_weight, self.cycle_weight = float(content_weight), float(cycle_weight)

    @property
    def translator(self):
        """photo -> Monet in the fixed style of `set_style` (for submissions and exports)."""
        return self._translator

    def paint(self, photos, styles):
        """photos -> Monet in the given styles [B, style_dim] (the sample grid's columns)."""
        return self.decoder_monet([self.content_photo(photos, training=False), styles], training=False)

    @property
    def generators(self):
        return [getattr(self, f"{part}_{domain}") for domain in ("monet", "photo")
                for part in ("content", "style", "decoder")]

    def random_styles(self, images):
        return self.normal((ops.shape(images)[0], self.style_dim))

    def fakes(self, monet, photo, training):
        fake_monet = self.decoder_monet([self.content_photo(photo, training=training), self.random_styles(photo)],
                                        training=training)
        fake_photo = self.decoder_photo([self.content_monet(monet, training=training), self.random_styles(monet)],
                                        training=training)
        return fake_monet, fake_photo

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        t = dict(training=training)
        content_m, style_m = self.content_monet(monet, **t), self.style_monet(monet, **t)
        content_p, style_p = self.content_photo(photo, **t), self.style_photo(photo, **t)
        recon = self.recon_weight * (losses.l1(monet, self.decoder_monet([content_m, style_m], **t))
                                     + losses.l1(photo, self.decoder_photo([content_p, style_p], **t)))
        random_m, random_p = self.random_styles(photo), self.random_styles(monet)
        fake_monet = self.decoder_monet([content_p, random_m], **t)
        fake_photo = self.decoder_photo([content_m, random_p], **t)
        content_p_again, random_m_again = self.content_monet(fake_monet, **t), self.style_monet(fake_monet, **t)
        content_m_again, random_p_again = self.content_photo(fake_photo, **t), self.style_photo(fake_photo, **t)
        style = self.style_weight * (losses.l1(random_m, random_m_again) + losses.l1(random_p, random_p_again))
        content = self.content_weight * (losses.l1(content_p, content_p_again) + losses.l1(content_m, content_m_again))
        cycle = 0.0
        if self.cycle_weight:
            cycle = self.cycle_weight * (losses.l1(monet, self.decoder_monet([content_m_again, style_m], **t))
                                         + losses.l1(photo, self.decoder_photo([content_p_again, style_p], **t)))
        adv = self.adversarial(fake_monet, fake_photo)
        total = adv + recon + style + content + cycle + self.decay(self.generators)
        return total, {"g_total": total, "g_adv": adv, "recon": recon, "style": style, "content": content,
                       "cycle": cycle}
