"""Blocks of the NVIDIA translation family (UNIT, MUNIT) and DRIT++, and their shared base.

Conv blocks pad by reflection (the authors' `Conv2dBlock`); residual blocks
are two 3x3 conv blocks; the multi-scale discriminator is the authors' `MsImageDis`: one
PatchGAN per scale, the image average-pooled (3x3, stride 2, padding not counted) between
scales; AdaIN takes its per-sample scale and offset from an MLP (MUNIT).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.layers import ReflectionPadding2D, instance_norm, kaiming, norm_layer, weight_init
from gan_tpu.models.base import Player, TranslationModel


def norm(kind: str, name: str):
    """"in": instance norm without affine (PyTorch's InstanceNorm2d default); "ln": layer
    norm over H, W, C with a per-channel scale and offset (MUNIT's LayerNorm); "none"."""
    if kind == "in":
        return instance_norm(name, affine=False)
    if kind == "ln":
        return norm_layer("layer", name)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}")


def conv_block(x, filters, kernel, *, name, strides=1, pad=0, norm_kind="none", activation="relu",
               use_bias=None, init=None, slope=0.2):
    """Reflection pad, conv, optional norm, optional activation.

    The conv has a bias unless instance norm follows (`use_bias=None`), or `use_bias=False`
    (AdaIN follows): that norm cancels a bias exactly, so it would only get rounding noise,
    which Adam's first step magnifies to ±lr (and replica counts would then disagree).
    """
    if pad:
        x = ReflectionPadding2D(pad, name=f"{name}_pad")(x)
    use_bias = norm_kind != "in" if use_bias is None else use_bias
    x = layers.Conv2D(filters, kernel, strides=strides, use_bias=use_bias, kernel_initializer=init or kaiming(),
                      name=f"{name}_conv")(x)
    n = norm(norm_kind, f"{name}_norm")
    if n is not None:
        x = n(x)
    if activation == "relu":
        x = layers.ReLU(name=f"{name}_act")(x)
    elif activation == "lrelu":
        x = layers.LeakyReLU(slope, name=f"{name}_act")(x)
    elif activation == "tanh":
        x = layers.Activation("tanh", dtype="float32", name=f"{name}_act")(x)
    elif activation != "none":
        raise ValueError(f"unknown activation {activation!r}")
    return x


def res_block(x, *, name, norm_kind="in", init=None):
    """x + [conv3 norm relu, conv3 norm](x), reflection padded (the authors' ResBlock)."""
    width = x.shape[-1]
    y = conv_block(x, width, 3, pad=1, norm_kind=norm_kind, name=f"{name}a", init=init)
    y = conv_block(y, width, 3, pad=1, norm_kind=norm_kind, activation="none", name=f"{name}b", init=init)
    return layers.Add(name=f"{name}_add")([x, y])


def content_encoder_head(x, *, dim, n_downsample, name, norm_kind="in"):
    """c7s1-dim, then n_downsample 4x4 stride-2 convs doubling the width (instance norm, ReLU)."""
    x = conv_block(x, dim, 7, pad=3, norm_kind=norm_kind, name=f"{name}_stem")
    for i in range(n_downsample):
        dim *= 2
        x = conv_block(x, dim, 4, strides=2, pad=1, norm_kind=norm_kind, name=f"{name}_down{i}")
    return x


def upsampling_tail(x, *, n_upsample, name):
    """n_upsample x [nearest 2x, c5 layer norm ReLU] halving the width, then c7s1-3 tanh."""
    dim = x.shape[-1]
    for i in range(n_upsample):
        dim //= 2
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up{i}_resize")(x)
        x = conv_block(x, dim, 5, pad=2, norm_kind="ln", name=f"{name}_up{i}")
    return conv_block(x, 3, 7, pad=3, activation="tanh", name=f"{name}_out")


@keras.saving.register_keras_serializable(package="gan_tpu")
class AvgPoolNoPad(layers.Layer):
    """3x3 average pooling, stride 2, padding 1 not counted (PyTorch's
    `AvgPool2d(3, 2, padding=1, count_include_pad=False)`): sum of the valid pixels over
    their count, computed as two pools so it is the same on every backend."""

    def call(self, x):
        padded = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        ones = ops.pad(ops.ones_like(x[..., :1]), [[0, 0], [1, 1], [1, 1], [0, 0]])
        total = ops.average_pool(padded, 3, 2, padding="valid")
        count = ops.average_pool(ones, 3, 2, padding="valid")
        return total / count

    def compute_output_shape(self, shape):
        half = lambda d: None if d is None else (d - 1) // 2 + 1  # noqa: E731
        return (shape[0], half(shape[1]), half(shape[2]), shape[3])


def min_multiscale_size(n_layers: int, scales: int) -> int:
    """Smallest image size whose coarsest scale still gives a 1x1 patch map."""
    return 2 ** (n_layers + scales - 1)


def check_sizes(model: str, image_size: int, *, d_layers: int, d_scales: int, n_downsample: int = 0) -> None:
    """Refuse, naming the option, an image size the encoders (`n_downsample` halvings) or the
    multi-scale discriminator (a 1x1 patch map at its coarsest scale) cannot take."""
    if n_downsample and image_size % 2 ** n_downsample:
        raise ValueError(f"{model} image size must be a multiple of {2 ** n_downsample}, got {image_size}")
    if image_size < min_multiscale_size(d_layers, d_scales):
        raise ValueError(f"model.d_layers={d_layers} with d_scales={d_scales} needs image_size >= "
                         f"{min_multiscale_size(d_layers, d_scales)}, got {image_size}")


def multiscale_discriminator(image_size: int, *, ndf: int = 64, n_layers: int = 4, scales: int = 3,
                             spectral_norm: bool = False, slope: float = 0.2, name: str = "ms_d") -> keras.Model:
    """The authors' MsImageDis: per scale, n_layers 4x4 stride-2 convs (ndf·2^i, LeakyReLU
    `slope`, no norm, reflection pad 1) and a 1x1 conv to one logit per patch. Outputs one
    float32 logit map per scale, finest first. Weights N(0, 0.02) (their `gaussian` init).
    DRIT++'s MultiScaleDis is the same network with PyTorch's default slope, 0.01."""
    if image_size < min_multiscale_size(n_layers, scales):
        raise ValueError(f"a {scales}-scale, {n_layers}-layer discriminator needs image_size >= "
                         f"{min_multiscale_size(n_layers, scales)}, got {image_size}")

    def conv(x, filters, kernel, strides, tag):
        if kernel > 1:
            x = ReflectionPadding2D(1, name=f"{name}_{tag}_pad")(x)
        c = layers.Conv2D(filters, kernel, strides=strides, kernel_initializer=weight_init(), name=f"{name}_{tag}_conv")
        return layers.SpectralNormalization(c, name=f"{name}_{tag}_sn")(x) if spectral_norm else c(x)

    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x, outputs = inputs, []
    for s in range(scales):
        h = x
        for i in range(n_layers):
            h = layers.LeakyReLU(slope, name=f"{name}_s{s}_down{i}_act")(conv(h, ndf * 2 ** i, 4, 2, f"s{s}_down{i}"))
        h = conv(h, 1, 1, 1, f"s{s}_logits")
        outputs.append(layers.Activation("linear", dtype="float32", name=f"{name}_s{s}_out")(h))
        if s + 1 < scales:
            x = AvgPoolNoPad(name=f"{name}_pool{s}")(x)
    return keras.Model(inputs, outputs, name=name)


def lsgan_d(real_logits, fake_logits):
    """Σ over a multi-scale discriminator's outputs of D's LSGAN loss (the authors', not halved)."""
    return sum(losses.least_squares(r, 1.0) + losses.least_squares(f, 0.0) for r, f in zip(real_logits, fake_logits))


def lsgan_g(fake_logits):
    """Σ over a multi-scale discriminator's outputs of G's LSGAN loss."""
    return sum(losses.least_squares(f, 1.0) for f in fake_logits)


@keras.saving.register_keras_serializable(package="gan_tpu")
class AdaIN(layers.Layer):
    """`AdaIN(index=k)([x, params])`: instance-normalize x [B, H, W, C], then shift and scale
    it per sample by the k-th pair of C-blocks of params [B, ...]: offset
    params[:, 2kC : 2kC + C], scale the next C (MUNIT's order: mean, then std)."""

    def __init__(self, index: int = 0, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x, params = inputs
        c = x.shape[-1]
        start = 2 * c * self.index
        x32 = ops.cast(x, "float32")
        mean = ops.mean(x32, axis=(1, 2), keepdims=True)
        var = ops.var(x32, axis=(1, 2), keepdims=True)
        params = ops.cast(params, "float32")
        beta, gamma = params[:, None, None, start:start + c], params[:, None, None, start + c:start + 2 * c]
        out = (x32 - mean) * ops.rsqrt(var + self.epsilon) * gamma + beta
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "index": self.index, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gan_tpu")
class StyleCode(layers.Layer):
    """A fixed style code [style_dim], held as a non-trainable weight, broadcast to every
    image of the batch: `StyleCode(8)(images) -> [B, 8]` (a translator with one style)."""

    def __init__(self, style_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.style_dim = int(style_dim)

    def build(self, input_shape):
        self.code = self.add_weight(shape=(self.style_dim,), initializer="zeros", trainable=False,
                                    dtype="float32", name="code")

    def call(self, images):
        batch = ops.shape(images)[0]
        return ops.broadcast_to(ops.cast(self.code, self.compute_dtype)[None], (batch, self.style_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.style_dim)

    def get_config(self):
        return {**super().get_config(), "style_dim": self.style_dim}



GRID_STYLES = 3  # styles per photo in the sample grid (seeds 0, 1, 2)


def style_code(seed: int, style_dim: int) -> np.ndarray:
    """The fixed style of seed `seed`: N(0, I) from NumPy, identical on every backend."""
    return np.random.default_rng(int(seed)).standard_normal(style_dim).astype(np.float32)


class FixedStyle:
    """Mixin of multimodal models (MUNIT, DRIT++): the translator paints in one style code
    held by the `StyleCode` layer `self._style`, drawn from a seed (`set_style`); the sample
    grid shows GRID_STYLES styles per photo. The model defines `paint(photos, styles)`."""

    has_fixed_style = True

    @property
    def fixed_variables(self) -> list:
        return [self._style.code]

    def set_style(self, seed: int) -> None:
        """Translate every photo in the style drawn from `seed` (see `style_code`)."""
        self._style.code.assign(style_code(seed, self.style_dim))

    def sample_columns(self, photos):
        """The sample grid's translations: one column per style of seeds 0 .. GRID_STYLES − 1."""
        batch = ops.shape(photos)[0]
        return [self.paint(photos, ops.broadcast_to(ops.convert_to_tensor(style_code(k, self.style_dim)),
                                                    (batch, self.style_dim)))
                for k in range(GRID_STYLES)]


class TwoDomainGAN(TranslationModel):
    """Shared base of UNIT, MUNIT and DRIT++: a multi-scale LSGAN discriminator per domain,
    discriminators trained first on the generators' current fakes (the authors' loop),
    Adam with PyTorch's L2 weight decay, and one seeded noise stream (`noise_seed`, model
    state: checkpointed and spread per replica). Subclasses define `generators` (the
    networks of the generator player), `fakes(monet, photo, training)` -> (fake Monet,
    fake photo) for the discriminators, and `generator_loss`.

    `noise = False` turns every random draw into zeros (used to compare replica counts:
    each replica draws its own noise for its share of the batch, one replica draws it for
    the whole batch, so with noise they differ by construction)."""

    def __init__(self, image_size, *, ndf, d_layers, d_scales, gan_weight, lr, beta_1, beta_2,
                 weight_decay, d_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        d = dict(ndf=ndf, n_layers=d_layers, scales=d_scales, slope=d_slope)
        self.d_monet = multiscale_discriminator(image_size, name="d_monet", **d)
        self.d_photo = multiscale_discriminator(image_size, name="d_photo", **d)
        self.gan_weight = float(gan_weight)
        self.weight_decay = float(weight_decay)
        self.noise = True
        self.noise_seed = keras.random.SeedGenerator(name="noise_seed")
        adam = dict(beta_1=beta_1, beta_2=beta_2)
        self.g_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), name="g_adam", **adam)
        self.d_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), name="d_adam", **adam)

    @property
    def generators(self) -> list:
        raise NotImplementedError

    @property
    def discriminators(self) -> list:
        return [self.d_monet, self.d_photo]

    def make_players(self):
        return [
            Player("discriminator", self.discriminators, self.d_optimizer, self.discriminator_loss),
            Player("generator", self.generators, self.g_optimizer, self.generator_loss),
        ]

    def normal(self, shape, dtype="float32"):
        """N(0, I) draws from the model's seeded stream (zeros when `noise` is off)."""
        if not self.noise:
            return ops.zeros(shape, dtype)
        return ops.cast(keras.random.normal(shape, seed=self.noise_seed), dtype)

    def adversarial(self, fake_monet, fake_photo):
        """The generators' LSGAN loss on both domains' fakes, weighted."""
        return self.gan_weight * (lsgan_g(self.d_monet(fake_monet, training=False))
                                  + lsgan_g(self.d_photo(fake_photo, training=False)))

    def decay(self, networks):
        return losses.l2_decay(networks, self.weight_decay)

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        fake_monet, fake_photo = (ops.stop_gradient(f) for f in self.fakes(monet, photo, training))
        d_monet = self.gan_weight * lsgan_d(self.d_monet(monet, training=training),
                                            self.d_monet(fake_monet, training=training))
        d_photo = self.gan_weight * lsgan_d(self.d_photo(photo, training=training),
                                            self.d_photo(fake_photo, training=training))
        return d_monet + d_photo + self.decay(self.discriminators), {"d_monet": d_monet, "d_photo": d_photo}
