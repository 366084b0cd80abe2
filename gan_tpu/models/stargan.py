"""StarGAN (Choi et al. 2018) on the shared base: one generator for both directions.

The generator takes an image and a target-domain label (one-hot, photo = 0, Monet = 1,
tiled over the image as extra input channels); the discriminator has two heads, a patch
map of realness scores (WGAN-GP critic) and domain logits (the auxiliary classifier). As
in the paper and the authors' code (yunjey/stargan):

- G: c7s1-64, two 4x4 stride-2 convs (128, 256), 6 residual blocks, two 4x4 stride-2
  transposed convs (128, 64), c7s1-3 + tanh; instance norm with affine parameters, no
  biases. D: 4x4 stride-2 convs with biases (64 · 2^i, `disc_layers` = 6 of them) and
  LeakyReLU 0.01, no norm; a 3x3 conv to the patch scores; a (size / 2^6)-wide conv to the
  domain logits. PyTorch's default weight initialisation (uniform, ±1/sqrt(fan_in)).
- D: −E[D_src(x)] + E[D_src(G(x, c'))] + λ_cls · CE(D_cls(x), c) + λ_gp · GP;
  G: −E[D_src(G(x, c'))] + λ_cls · CE(D_cls(G(x, c')), c') + λ_rec · |x − G(G(x, c'), c)|₁;
  λ_cls 1, λ_rec 10, λ_gp 10; n_critic 5; Adam 1e-4, (0.5, 0.999); LR constant for the first
  half, then linearly to 0 (the paper's schedule).
- The penalty differentiates the *sum* of the patch map per image (the authors'
  grad_outputs of ones), through the shared `losses.gradient_penalty`.

Choices for two domains: every image is translated to the other domain (the authors draw
a random target label, which with two domains would leave half the batch untranslated);
the classification loss is softmax cross-entropy (the authors' RaFD loss: the domains are
exclusive). Each batch of (Monet, photo) is one batch of 2B images with their labels.
Players: G first, then D `n_critic` times on that step's translations, as this project's
WGAN-GP models (the authors: one D update per batch, G every fifth batch). Instance norm
always uses the image's own statistics (the authors' `track_running_stats=True` switches
to running averages in eval mode).

Randomness: the penalty's interpolation only, a seed generator the checkpoint holds and
each replica draws from with its own stream.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.layers import ClassOneHot, instance_norm, torch_init
from gan_tpu.models.base import Player, TranslationModel
from gan_tpu.models.registry import register

DOMAINS = ("photo", "monet")
PHOTO, MONET = 0, 1


@keras.saving.register_keras_serializable(package="gan_tpu")
class TiledLabel(keras.layers.Layer):
    """`TiledLabel()([image, label])`: the [B, C] label repeated over the image's H x W, [B, H, W, C]."""

    def call(self, inputs):
        image, label = inputs
        label = ops.cast(label, image.dtype)[:, None, None, :]
        return ops.broadcast_to(label, (ops.shape(image)[0],) + tuple(image.shape[1:3]) + (label.shape[-1],))

    def compute_output_shape(self, input_shape):
        image, label = input_shape
        return tuple(image[:3]) + (label[-1],)


@keras.saving.register_keras_serializable(package="gan_tpu")
class DomainLabel(ClassOneHot):
    """`DomainLabel(domain, domains)(images)`: the one-hot label of `domain` for every image,
    [B, domains]: `ClassOneHot` under the name and config keys saved translators carry."""

    def __init__(self, domain: int = MONET, domains: int = len(DOMAINS), **kwargs):
        super().__init__(classes=domains, class_id=domain, **kwargs)

    def get_config(self):
        config = super().get_config()
        domain, domains = config.pop("class_id"), config.pop("classes")
        return {**config, "domain": domain, "domains": domains}


def stargan_generator(image_size: int, *, ngf: int = 64, n_blocks: int = 6, domains: int = len(DOMAINS),
                      name: str = "stargan_g") -> keras.Model:
    """[image, one-hot target label] -> image in [-1, 1] (float32)."""
    if image_size % 4:
        raise ValueError(f"StarGAN generator image size must be a multiple of 4, got {image_size}")
    image = keras.Input((image_size, image_size, 3), name=f"{name}_image")
    label = keras.Input((domains,), name=f"{name}_label")
    x = layers.Concatenate(name=f"{name}_concat")([image, TiledLabel(name=f"{name}_tile")([image, label])])

    def conv(x, filters, kernel, tag, strides=1, transpose=False):
        kind = layers.Conv2DTranspose if transpose else layers.Conv2D
        x = kind(filters, kernel, strides=strides, padding="same", use_bias=False, kernel_initializer=torch_init(),
                 name=f"{name}_{tag}_conv")(x)
        return instance_norm(f"{name}_{tag}_norm", gamma_stddev=None)(x)

    x = layers.ReLU(name=f"{name}_stem_act")(conv(x, ngf, 7, "stem"))
    for i in range(2):
        x = layers.ReLU(name=f"{name}_down{i}_act")(conv(x, ngf * 2 ** (i + 1), 4, f"down{i}", strides=2))
    width = ngf * 4
    for b in range(n_blocks):
        y = layers.ReLU(name=f"{name}_block{b}_act")(conv(x, width, 3, f"block{b}a"))
        x = layers.Add(name=f"{name}_block{b}")([x, conv(y, width, 3, f"block{b}b")])
    for i in range(2):
        x = conv(x, width // 2 ** (i + 1), 4, f"up{i}", strides=2, transpose=True)
        x = layers.ReLU(name=f"{name}_up{i}_act")(x)
    x = layers.Conv2D(3, 7, padding="same", use_bias=False, kernel_initializer=torch_init(), name=f"{name}_out_conv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)
    return keras.Model([image, label], outputs, name=name)


def stargan_discriminator(image_size: int, *, ndf: int = 64, n_layers: int = 6, domains: int = len(DOMAINS),
                          name: str = "stargan_d") -> keras.Model:
    """image -> [patch scores [B, s, s, 1], domain logits [B, domains]] (both float32), s = size / 2^n_layers."""
    side = image_size // 2 ** n_layers
    if n_layers < 1 or side < 1 or side * 2 ** n_layers != image_size:
        raise ValueError(f"a {n_layers}-layer StarGAN discriminator needs an image size that is a multiple "
                         f"of {2 ** n_layers}, got {image_size} (lower model.disc_layers)")
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(n_layers):
        x = layers.Conv2D(ndf * 2 ** i, 4, strides=2, padding="same", kernel_initializer=torch_init(),
                          name=f"{name}_down{i}_conv")(x)
        x = layers.LeakyReLU(0.01, name=f"{name}_down{i}_act")(x)
    src = layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer=torch_init(), name=f"{name}_src")(x)
    cls = layers.Conv2D(domains, side, use_bias=False, kernel_initializer=torch_init(), name=f"{name}_cls")(x)
    cls = layers.Reshape((domains,), name=f"{name}_cls_flat")(cls)
    return keras.Model(inputs, [layers.Activation("linear", dtype="float32", name=f"{name}_src_out")(src),
                                layers.Activation("linear", dtype="float32", name=f"{name}_cls_out")(cls)],
                       name=name)


def domain_cross_entropy(logits, labels):
    """Mean softmax cross-entropy of domain logits against one-hot labels, float32."""
    logits = ops.cast(logits, "float32")
    return ops.mean(ops.logsumexp(logits, axis=-1) - ops.sum(ops.cast(labels, "float32") * logits, axis=-1))


@register("stargan", ngf=64, ndf=64, n_blocks=6, disc_layers=6, cls_weight=1.0, rec_weight=10.0, gp_weight=10.0,
          n_critic=5, lr=1e-4, beta_1=0.5, beta_2=0.999, decay_start=0.5, total_steps=0)
class StarGAN(TranslationModel):
    """`generator([image, target label])`, `discriminator(image) -> [scores, domain logits]`.

    Data batches are `(monet, photo)` pairs in [-1, 1]; the translator is the generator
    with the Monet label.
    """

    loss_names = ("g_total", "g_adv", "g_cls", "rec", "d_total", "d_adv", "d_cls", "gp")

    def __init__(self, image_size: int, *, ngf, ndf, n_blocks, disc_layers, cls_weight, rec_weight, gp_weight,
                 n_critic, lr, beta_1, beta_2, **kwargs):
        super().__init__(**kwargs)
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        self.generator = stargan_generator(image_size, ngf=ngf, n_blocks=n_blocks, name="generator")
        self.discriminator = stargan_discriminator(image_size, ndf=ndf, n_layers=disc_layers, name="discriminator")
        photos = keras.Input((image_size, image_size, 3), name="photo")
        self._translator = keras.Model(photos, self.generator([photos, DomainLabel(MONET, name="monet_label")(photos)]),
                                       name="stargan_translator")
        self.cls_weight, self.rec_weight, self.gp_weight = float(cls_weight), float(rec_weight), float(gp_weight)
        self.n_critic = int(n_critic)
        self.gp_seed = keras.random.SeedGenerator(name="gp_seed")
        adam = dict(beta_1=beta_1, beta_2=beta_2)
        self.g_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr), name="g_adam", **adam)
        self.d_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr), name="d_adam", **adam)

    @property
    def translator(self):
        return self._translator

    def make_players(self):
        return [
            Player("generator", [self.generator], self.g_optimizer, self.generator_loss),
            Player("discriminator", [self.discriminator], self.d_optimizer, self.discriminator_loss,
                   steps=self.n_critic),
        ]

    @staticmethod
    def labelled(batch):
        """(photos then paintings as one batch, their one-hot domains, the other domain's)."""
        monet, photo = batch
        images = ops.concatenate([photo, monet], axis=0)
        domain = ops.concatenate([ops.zeros_like(photo[:, 0, 0, 0]), ops.ones_like(monet[:, 0, 0, 0])], axis=0)
        domain = ops.cast(domain, "int32")
        return images, ops.one_hot(domain, len(DOMAINS)), ops.one_hot(1 - domain, len(DOMAINS))

    def generator_loss(self, batch, context, training):
        images, own, other = self.labelled(batch)
        fake = self.generator([images, other], training=training)
        scores, logits = self.discriminator(fake, training=training)
        adv = losses.generator_loss("wgan-gp", scores)
        cls = self.cls_weight * domain_cross_entropy(logits, other)
        rec = self.rec_weight * losses.l1(images, self.generator([fake, own], training=training))
        context["fake"] = ops.stop_gradient(fake)
        total = adv + cls + rec
        return total, {"g_total": total, "g_adv": adv, "g_cls": cls, "rec": rec}

    def discriminator_loss(self, batch, context, training):
        images, own, _ = self.labelled(batch)
        fake = ops.cast(context["fake"], images.dtype)
        scores, logits = self.discriminator(ops.concatenate([images, fake], axis=0), training=training)
        real_scores, fake_scores = ops.split(scores, 2, axis=0)
        adv = losses.discriminator_loss("wgan-gp", real_scores, fake_scores)
        cls = self.cls_weight * domain_cross_entropy(ops.split(logits, 2, axis=0)[0], own)
        gp = 0.0
        if self.gp_weight:
            def patch_sum(x):  # the authors' penalty: gradient of the summed patch map
                return ops.sum(self.discriminator(x, training=training)[0], axis=(1, 2, 3))

            gp = losses.gradient_penalty(patch_sum, images, fake, weight=self.gp_weight, seed=self.gp_seed)
        total = adv + cls + gp
        return total, {"d_total": total, "d_adv": adv, "d_cls": cls, "gp": gp}
