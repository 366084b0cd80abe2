"""U-GAT-IT (Kim et al. 2020), full and light, on the shared adversarial base.

Two generators (photo -> Monet `g_monet`, Monet -> photo `g_photo`), each a ResNet encoder
with instance norm, class-activation-map (CAM) attention, an MLP giving AdaLIN's γ and β,
AdaLIN residual blocks and nearest-upsampling blocks with layer-instance norm (ILN).
Four discriminators with spectral norm: a global (7-layer) and a local (5-layer) one per
domain, each with its own CAM logit. Losses as in the authors' code: LSGAN on every
discriminator output and CAM logit (weight 1), cycle 10, identity 10, and the generators'
CAM classifiers by sigmoid cross-entropy, weight 1000 (source-domain images -> 1,
target-domain images -> 0). Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4; both rates
constant for the first half of the run, then linearly to 0 (the authors' `decay_flag`, on
by default: `decay_start` 0.5).

Differences from the authors' PyTorch code, on purpose:
- the players train discriminators first, then generators, as the authors' loop does;
- weight decay is PyTorch's Adam kind (an L2 term, 0.5·wd·Σw², added to each player's
  loss, so it passes through Adam's normalisation), not Keras' decoupled decay;
- one CAM weight is shared by the average- and max-pooled branches (the issue's spec and
  the authors' TensorFlow code); `cam_shared = false` gives each branch its own;
- AdaLIN's ρ starts at 1.0 (the paper; the PyTorch code uses 0.9); variances are the
  biased ones (PyTorch's code uses unbiased `torch.var`);
- spectral norm is Keras' `SpectralNormalization` (one power iteration per training call;
  the kernel variable is re-normalised in place, as tensorflow-addons did), and the CAM
  weight vector's spectral norm is its exact L2 norm.

Spectral norm and replicas: the power iteration depends on the kernel alone, never on the
batch, and the kernels are identical on every replica, so every replica computes the same
u and the same normalised kernel: replica count does not change the update (tested).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.layers import ReflectionPadding2D, check_upsample, instance_norm, upsample_conv, weight_init
from gan_tpu.models.base import Player, TranslationModel
from gan_tpu.models.registry import register
from gan_tpu.models.ugatit_layers import ILN, AdaLIN, CAMAttention


def _conv(filters, kernel, *, name, strides=1, use_bias=False):
    return layers.Conv2D(filters, kernel, strides=strides, padding="valid", use_bias=use_bias,
                         kernel_initializer=weight_init(), name=name)


def ugatit_generator(image_size: int, *, ngf: int = 64, n_blocks: int = 4, light: bool = False,
                     cam_shared: bool = True, upsample: str = "resize", name: str = "ugatit_g") -> keras.Model:
    """The U-GAT-IT generator: outputs [image in [-1, 1], CAM logits [B, 2]] (both float32).

    full: γ, β from an MLP over the flattened bottleneck features ((size/4)² · 4ngf inputs:
    268 M weights at 256 px, ngf 64); light: from an MLP over their global average.
    `upsample`: "resize" (the authors' nearest x2 + reflect-padded 3x3 conv), "antialias"
    (CUT's blur instead of nearest) or "transpose" (a 3x3 transposed conv).
    """
    check_upsample(upsample)
    if image_size % 4:
        raise ValueError(f"U-GAT-IT image size must be a multiple of 4, got {image_size}")
    width = ngf * 4
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = ReflectionPadding2D(3, name=f"{name}_stem_pad")(inputs)
    x = _conv(ngf, 7, name=f"{name}_stem_conv")(x)
    x = layers.ReLU(name=f"{name}_stem_act")(instance_norm(f"{name}_stem_norm", affine=False)(x))
    for i in range(2):
        x = ReflectionPadding2D(1, name=f"{name}_down{i}_pad")(x)
        x = _conv(ngf * 2 ** (i + 1), 3, strides=2, name=f"{name}_down{i}_conv")(x)
        x = layers.ReLU(name=f"{name}_down{i}_act")(instance_norm(f"{name}_down{i}_norm", affine=False)(x))
    for b in range(n_blocks):
        y = ReflectionPadding2D(1, name=f"{name}_enc{b}_pad1")(x)
        y = _conv(width, 3, name=f"{name}_enc{b}_conv1")(y)
        y = layers.ReLU(name=f"{name}_enc{b}_act")(instance_norm(f"{name}_enc{b}_norm1", affine=False)(y))
        y = ReflectionPadding2D(1, name=f"{name}_enc{b}_pad2")(y)
        y = instance_norm(f"{name}_enc{b}_norm2", affine=False)(_conv(width, 3, name=f"{name}_enc{b}_conv2")(y))
        x = layers.Add(name=f"{name}_enc{b}_add")([x, y])

    cam_logits, x = CAMAttention(shared=cam_shared, name=f"{name}_cam")(x)
    x = layers.Conv2D(width, 1, kernel_initializer=weight_init(), name=f"{name}_cam_conv")(x)
    x = layers.ReLU(name=f"{name}_cam_act")(x)

    h = layers.GlobalAveragePooling2D(name=f"{name}_mlp_gap")(x) if light else \
        layers.Flatten(name=f"{name}_mlp_flat")(x)
    for i in range(2):
        h = layers.Dense(width, use_bias=False, kernel_initializer=weight_init(), name=f"{name}_mlp{i}")(h)
        h = layers.ReLU(name=f"{name}_mlp{i}_act")(h)
    gamma = layers.Dense(width, use_bias=False, kernel_initializer=weight_init(), name=f"{name}_gamma")(h)
    beta = layers.Dense(width, use_bias=False, kernel_initializer=weight_init(), name=f"{name}_beta")(h)

    for b in range(n_blocks):
        y = ReflectionPadding2D(1, name=f"{name}_dec{b}_pad1")(x)
        y = _conv(width, 3, name=f"{name}_dec{b}_conv1")(y)
        y = AdaLIN(name=f"{name}_dec{b}_norm1")([y, gamma, beta])
        y = layers.ReLU(name=f"{name}_dec{b}_act")(y)
        y = ReflectionPadding2D(1, name=f"{name}_dec{b}_pad2")(y)
        y = _conv(width, 3, name=f"{name}_dec{b}_conv2")(y)
        y = AdaLIN(name=f"{name}_dec{b}_norm2")([y, gamma, beta])
        x = layers.Add(name=f"{name}_dec{b}_add")([x, y])
    for i in range(2):
        x = upsample_conv(x, width // 2 ** (i + 1), mode=upsample, name=f"{name}_up{i}", transpose_kernel=3,
                          reflect=True)
        x = layers.ReLU(name=f"{name}_up{i}_act")(ILN(name=f"{name}_up{i}_norm")(x))
    x = ReflectionPadding2D(3, name=f"{name}_out_pad")(x)
    x = _conv(3, 7, name=f"{name}_out_conv")(x)
    image = layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)
    cam_logits = layers.Activation("linear", dtype="float32", name=f"{name}_cam_logits")(cam_logits)
    return keras.Model(inputs, [image, cam_logits], name=name)


def min_discriminator_size(n_layers: int) -> int:
    """Smallest image size a U-GAT-IT discriminator of `n_layers` works at.

    n_layers − 2 stride-2 convs, then two 4x4 stride-1 convs after reflection padding of 1:
    the map must be at least 3 px before them.
    """
    return 3 * 2 ** (n_layers - 2)


def ugatit_discriminator(image_size: int, *, ndf: int = 64, n_layers: int = 7, cam_shared: bool = True,
                         name: str = "ugatit_d") -> keras.Model:
    """A U-GAT-IT discriminator (7 layers: global, 5: local): outputs [patch logits, CAM logits].

    Reflection pad + 4x4 convs with spectral norm and LeakyReLU 0.2, n_layers − 2 of them
    stride 2 (widths ndf·2^i), one stride 1; CAM attention (spectral-normed weight), 1x1
    conv, LeakyReLU; a spectral-normed 4x4 conv to one logit per patch.
    """
    if n_layers < 3:
        raise ValueError(f"a U-GAT-IT discriminator needs at least 3 layers, got {n_layers}")
    if image_size < min_discriminator_size(n_layers):
        raise ValueError(f"a {n_layers}-layer U-GAT-IT discriminator needs image_size >= "
                         f"{min_discriminator_size(n_layers)}, got {image_size}")

    def sn_conv(x, filters, strides, use_bias, tag):
        x = ReflectionPadding2D(1, name=f"{name}_{tag}_pad")(x)
        conv = layers.Conv2D(filters, 4, strides=strides, use_bias=use_bias,
                             kernel_initializer=weight_init(), name=f"{name}_{tag}_conv")
        return layers.SpectralNormalization(conv, name=f"{name}_{tag}_sn")(x)

    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(n_layers - 2):
        x = sn_conv(x, ndf * 2 ** i, 2, True, f"down{i}")
        x = layers.LeakyReLU(0.2, name=f"{name}_down{i}_act")(x)
    width = ndf * 2 ** (n_layers - 2)
    x = layers.LeakyReLU(0.2, name=f"{name}_flat_act")(sn_conv(x, width, 1, True, "flat"))
    cam_logits, x = CAMAttention(shared=cam_shared, spectral_norm=True, name=f"{name}_cam")(x)
    x = layers.Conv2D(width, 1, kernel_initializer=weight_init(), name=f"{name}_cam_conv")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_cam_act")(x)
    x = sn_conv(x, 1, 1, False, "logits")
    logits = layers.Activation("linear", dtype="float32", name=f"{name}_out")(x)
    cam_logits = layers.Activation("linear", dtype="float32", name=f"{name}_cam_logits")(cam_logits)
    return keras.Model(inputs, [logits, cam_logits], name=name)


UGATIT_DEFAULTS = dict(
    ngf=64,                  # generator base width (authors' --ch)
    ndf=64,                  # discriminator base width
    n_blocks=4,              # encoder and AdaLIN decoder residual blocks (authors' --n_res)
    global_layers=7,         # global discriminator (needs image_size >= 96)
    local_layers=5,          # local discriminator (needs image_size >= 24)
    cam_shared=True,         # one CAM weight for the GAP and GMP branches
    upsample="resize",       # generator up blocks: "resize" (authors'), "antialias" or "transpose"
    adv_weight=1.0,
    cycle_weight=10.0,
    identity_weight=10.0,
    cam_weight=1000.0,
    lr=1e-4,
    beta_1=0.5,
    beta_2=0.999,
    weight_decay=1e-4,       # L2, as PyTorch's Adam(weight_decay=...)
    decay_start=0.5,         # both rates fall linearly to 0 over the second half (authors' decay_flag)
)


@register("ugatit", **UGATIT_DEFAULTS)
class UGATIT(TranslationModel):
    """U-GAT-IT, full: γ/β MLP over the flattened bottleneck. Batches are (monet, photo) in [-1, 1]."""

    light = False
    loss_names = ("g_total", "g_adv", "cycle", "identity", "cam", "d_monet", "d_photo")

    def __init__(self, image_size: int, *, ngf, ndf, n_blocks, global_layers, local_layers, cam_shared,
                 upsample, adv_weight, cycle_weight, identity_weight, cam_weight, lr, beta_1, beta_2,
                 weight_decay, **kwargs):
        super().__init__(**kwargs)
        for key, n in (("global_layers", global_layers), ("local_layers", local_layers)):
            if image_size < min_discriminator_size(n):
                raise ValueError(f"model.{key}={n} needs image_size >= {min_discriminator_size(n)}, "
                                 f"got {image_size} (lower model.{key})")
        g = dict(ngf=ngf, n_blocks=n_blocks, light=self.light, cam_shared=cam_shared, upsample=upsample)
        self.g_monet = ugatit_generator(image_size, name="g_monet", **g)
        self.g_photo = ugatit_generator(image_size, name="g_photo", **g)
        self.d_monet_global = ugatit_discriminator(image_size, ndf=ndf, n_layers=global_layers,
                                                   cam_shared=cam_shared, name="d_monet_global")
        self.d_monet_local = ugatit_discriminator(image_size, ndf=ndf, n_layers=local_layers,
                                                  cam_shared=cam_shared, name="d_monet_local")
        self.d_photo_global = ugatit_discriminator(image_size, ndf=ndf, n_layers=global_layers,
                                                   cam_shared=cam_shared, name="d_photo_global")
        self.d_photo_local = ugatit_discriminator(image_size, ndf=ndf, n_layers=local_layers,
                                                  cam_shared=cam_shared, name="d_photo_local")
        # photo -> Monet image only (no CAM logits): what submissions and exports use
        self._translator = keras.Model(self.g_monet.inputs, self.g_monet.outputs[0], name="ugatit_translator")
        self.adv_weight = float(adv_weight)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.cam_weight = float(cam_weight)
        self.weight_decay = float(weight_decay)
        adam = dict(beta_1=beta_1, beta_2=beta_2)
        self.g_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), name="g_adam", **adam)
        self.d_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), name="d_adam", **adam)

    @property
    def translator(self):
        return self._translator

    @property
    def generators(self):
        return [self.g_monet, self.g_photo]

    @property
    def discriminators(self):
        return [self.d_monet_global, self.d_monet_local, self.d_photo_global, self.d_photo_local]

    def make_players(self):
        # The authors' order: discriminators first (on the generators' current fakes), then generators.
        return [
            Player("discriminator", self.discriminators, self.d_optimizer, self.discriminator_loss),
            Player("generator", self.generators, self.g_optimizer, self.generator_loss),
        ]

    def discriminator_loss(self, batch, context, training):
        monet, photo = batch
        fake_monet = ops.stop_gradient(self.g_monet(photo, training=training)[0])
        fake_photo = ops.stop_gradient(self.g_photo(monet, training=training)[0])

        def judge(discriminators, real, fake):
            total = 0.0
            for d in discriminators:
                real_logits, real_cam = d(real, training=training)
                fake_logits, fake_cam = d(fake, training=training)
                total += losses.least_squares(real_logits, 1.0) + losses.least_squares(fake_logits, 0.0) + \
                    losses.least_squares(real_cam, 1.0) + losses.least_squares(fake_cam, 0.0)
            return self.adv_weight * total

        d_monet = judge([self.d_monet_global, self.d_monet_local], monet, fake_monet)
        d_photo = judge([self.d_photo_global, self.d_photo_local], photo, fake_photo)
        total = d_monet + d_photo + losses.l2_decay(self.discriminators, self.weight_decay)
        return total, {"d_monet": d_monet, "d_photo": d_photo}

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        fake_monet, fake_monet_cam = self.g_monet(photo, training=training)
        fake_photo, fake_photo_cam = self.g_photo(monet, training=training)
        cycled_photo = self.g_photo(fake_monet, training=training)[0]
        cycled_monet = self.g_monet(fake_photo, training=training)[0]
        same_monet, same_monet_cam = self.g_monet(monet, training=training)
        same_photo, same_photo_cam = self.g_photo(photo, training=training)

        adv = 0.0
        for discriminators, fake in (((self.d_monet_global, self.d_monet_local), fake_monet),
                                     ((self.d_photo_global, self.d_photo_local), fake_photo)):
            for d in discriminators:
                # training=False: the generators' step leaves the discriminators' spectral-norm
                # state alone (their own step re-normalises them)
                logits, cam = d(fake, training=False)
                adv += losses.least_squares(logits, 1.0) + losses.least_squares(cam, 1.0)
        adv = self.adv_weight * adv
        cycle = self.cycle_weight * (losses.l1(photo, cycled_photo) + losses.l1(monet, cycled_monet))
        identity = self.identity_weight * (losses.l1(monet, same_monet) + losses.l1(photo, same_photo))
        # each generator's CAM classifier: its source domain -> 1, its target domain -> 0
        cam = self.cam_weight * (
            losses.bce_with_logits(fake_monet_cam, 1.0) + losses.bce_with_logits(same_monet_cam, 0.0)
            + losses.bce_with_logits(fake_photo_cam, 1.0) + losses.bce_with_logits(same_photo_cam, 0.0))
        total = adv + cycle + identity + cam + losses.l2_decay(self.generators, self.weight_decay)
        return total, {"g_total": total, "g_adv": adv, "cycle": cycle, "identity": identity, "cam": cam}


@register("ugatit_light", **UGATIT_DEFAULTS)
class UGATITLight(UGATIT):
    """U-GAT-IT light: γ/β MLP over the globally average-pooled bottleneck (fits far less memory)."""

    light = True
