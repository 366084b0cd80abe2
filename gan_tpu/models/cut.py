"""CUT and FastCUT (Park et al. 2020, contrastive unpaired translation), on the shared base.

One generator (photo -> Monet), one PatchGAN discriminator, no inverse network. Instead of
a cycle, PatchNCE: features of several encoder layers of the generator, at the same
randomly chosen positions of a photo and of its translation, go through a small MLP head
per layer (Linear-ReLU-Linear to 256-d, L2-normalized); each translated patch must pick
its own photo patch out of the other positions of the same image (InfoNCE, temperature
0.07, 256 positions per layer). As in the authors' code (taesungp/contrastive-unpaired-
translation, its defaults):

- ResNet-9 generator with anti-aliased down- and upsampling (`gan_tpu/blur.py`), instance
  norm without affine parameters, convs with biases; the 70x70 PatchGAN with the same
  anti-aliased downsampling; xavier-normal weights with gain 0.02;
- NCE layers "0,4,8,12,16" index the authors' `nn.Sequential` of the generator: the
  reflection-padded input, the two downsampling convs (before their norm), the first and
  the fifth residual block (`layer_sequence` below gives every index's layer);
- the keys (photo features after the head) carry no gradient; positions are drawn per layer
  and per NCE pair (photo/translation; painting/identity), the same for every image of the
  batch, and the translation is read at the photo's positions; negatives come from the
  same image only;
- LSGAN (λ_GAN 1); D's loss halved; Adam 2e-4, (0.5, 0.999); LR constant, then linearly to 0
  (CUT: 200 + 200 epochs, decay_start 0.5; FastCUT: 150 + 50, 0.75);
- CUT: λ_NCE 1 and identity NCE on Monet paintings through the generator (the mean of the
  two NCE losses); FastCUT: λ_NCE 10, no identity NCE, flip equivariance (with probability
  ½ per batch the generator's input is flipped left-right and the translation's features
  flipped back before the NCE).

Differences on purpose: the players train the generator (with the heads) first, then D on
that step's translations (the authors: D first, then G against the updated D), which saves
one generator pass per step; one Adam for the generator and the heads (theirs: one each
with the same settings, which Adam makes equivalent).

Randomness (positions, flips) comes from `keras.random.SeedGenerator` attributes: in the
checkpoint (a resumed run draws what a straight run would) and one stream per replica
(`runs.spread_seeds`), as DiffAugment's. Positions are a top-k of uniform scores over the
H·W positions: distinct, static-shaped, compiled by XLA.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import losses
from gan_tpu.blur import BlurDownsample2D, BlurUpsample2D
from gan_tpu.layers import ReflectionPadding2D, instance_norm, xavier
from gan_tpu.models.base import Player, TranslationModel
from gan_tpu.models.registry import register


def _conv(filters, kernel, name, padding="same", use_bias=True):
    return layers.Conv2D(filters, kernel, padding=padding, use_bias=use_bias, kernel_initializer=xavier(),
                         name=name)


def layer_sequence(name: str, n_blocks: int) -> list[str]:
    """Layer names of the generator in the order of the authors' `nn.Sequential`, so that
    `nce_layers` index the same layers as their `--nce_layers` (a residual block is one)."""
    seq = [f"{name}_stem_pad", f"{name}_stem_conv", f"{name}_stem_norm", f"{name}_stem_act"]
    for i in range(2):
        seq += [f"{name}_down{i}_{part}" for part in ("conv", "norm", "act", "blur")]
    seq += [f"{name}_block{b}" for b in range(n_blocks)]
    for i in range(2):
        seq += [f"{name}_up{i}_{part}" for part in ("blur", "conv", "norm", "act")]
    return seq + [f"{name}_out_pad", f"{name}_out_conv", f"{name}_out"]


def cut_generator(image_size: int, *, ngf: int = 64, n_blocks: int = 9, name: str = "cut_g") -> keras.Model:
    """CUT's ResNet generator: c7s1-ngf, two stride-1 convs each followed by blur-downsampling
    (2ngf, 4ngf), n_blocks residual blocks, two blur-upsamplings each followed by a conv
    (2ngf, ngf), c7s1-3 + tanh (float32)."""
    if image_size % 4:
        raise ValueError(f"CUT generator image size must be a multiple of 4, got {image_size}")
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = ReflectionPadding2D(3, name=f"{name}_stem_pad")(inputs)
    x = _conv(ngf, 7, f"{name}_stem_conv", padding="valid")(x)
    x = layers.ReLU(name=f"{name}_stem_act")(instance_norm(f"{name}_stem_norm", affine=False)(x))
    for i in range(2):
        x = _conv(ngf * 2 ** (i + 1), 3, f"{name}_down{i}_conv")(x)
        x = layers.ReLU(name=f"{name}_down{i}_act")(instance_norm(f"{name}_down{i}_norm", affine=False)(x))
        x = BlurDownsample2D(name=f"{name}_down{i}_blur")(x)
    width = ngf * 4
    for b in range(n_blocks):
        y = ReflectionPadding2D(1, name=f"{name}_block{b}_pad1")(x)
        y = _conv(width, 3, f"{name}_block{b}_conv1", padding="valid")(y)
        y = layers.ReLU(name=f"{name}_block{b}_act")(instance_norm(f"{name}_block{b}_norm1", affine=False)(y))
        y = ReflectionPadding2D(1, name=f"{name}_block{b}_pad2")(y)
        norm2 = instance_norm(f"{name}_block{b}_norm2", affine=False)
        y = norm2(_conv(width, 3, f"{name}_block{b}_conv2", padding="valid")(y))
        x = layers.Add(name=f"{name}_block{b}")([x, y])
    for i in range(2):
        x = BlurUpsample2D(name=f"{name}_up{i}_blur")(x)
        x = _conv(width // 2 ** (i + 1), 3, f"{name}_up{i}_conv")(x)
        x = layers.ReLU(name=f"{name}_up{i}_act")(instance_norm(f"{name}_up{i}_norm", affine=False)(x))
    x = ReflectionPadding2D(3, name=f"{name}_out_pad")(x)
    x = _conv(3, 7, f"{name}_out_conv", padding="valid")(x)
    outputs = layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


def cut_discriminator(image_size: int, *, ndf: int = 64, n_layers: int = 3, name: str = "cut_d") -> keras.Model:
    """CUT's PatchGAN: 4x4 stride-1 convs (padding 1) each followed by blur-downsampling
    (ndf, 2ndf, 4ndf; instance norm from the second), a 4x4 conv to 8ndf, a 4x4 conv to one
    logit per patch (30x30 at 256 px with 3 layers), LeakyReLU 0.2."""
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(n_layers):
        x = layers.ZeroPadding2D(1, name=f"{name}_down{i}_pad")(x)
        x = _conv(ndf * min(2 ** i, 8), 4, f"{name}_down{i}_conv", padding="valid")(x)
        if i > 0:
            x = instance_norm(f"{name}_down{i}_norm", affine=False)(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_down{i}_act")(x)
        x = BlurDownsample2D(name=f"{name}_down{i}_blur")(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad0")(x)
    x = _conv(ndf * min(2 ** n_layers, 8), 4, f"{name}_conv", padding="valid")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_act")(instance_norm(f"{name}_norm", affine=False)(x))
    x = layers.ZeroPadding2D(1, name=f"{name}_pad1")(x)
    x = _conv(1, 4, f"{name}_logits", padding="valid")(x)
    outputs = layers.Activation("linear", dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


def patch_heads(channels: list[int], *, dim: int = 256, name: str = "patch_heads") -> keras.Model:
    """CUT's `PatchSampleF` MLPs: per NCE layer, Linear(C, dim)-ReLU-Linear(dim, dim), on rows
    of sampled patch features [N, C] (outputs float32; L2-normalized by the loss)."""
    inputs = [keras.Input((c,), name=f"{name}_in{i}") for i, c in enumerate(channels)]
    outputs = []
    for i, x in enumerate(inputs):
        x = layers.Dense(dim, kernel_initializer=xavier(), name=f"{name}{i}_dense0")(x)
        x = layers.ReLU(name=f"{name}{i}_act")(x)
        x = layers.Dense(dim, kernel_initializer=xavier(), name=f"{name}{i}_dense1")(x)
        outputs.append(layers.Activation("linear", dtype="float32", name=f"{name}{i}_out")(x))
    return keras.Model(inputs, outputs, name=name)


def patch_nce(query, key, temperature: float = 0.07):
    """PatchNCE per patch, [B, N] from [B, N, D] L2-normalized queries and keys: cross-entropy
    of query i picking key i among the N keys of its image (the authors' diagonal, the
    query's own key among the negatives, is set to −10 before the temperature, as theirs)."""
    query, key = ops.cast(query, "float32"), ops.cast(key, "float32")
    positive = ops.sum(query * key, axis=-1, keepdims=True)                # [B, N, 1]
    negative = ops.einsum("bid,bjd->bij", query, key)                      # [B, N, N]
    n = int(query.shape[1])
    negative = ops.where((ops.eye(n) > 0.5)[None], -10.0, negative)
    logits = ops.concatenate([positive, negative], axis=-1) / temperature
    return ops.logsumexp(logits, axis=-1) - logits[..., 0]


def l2_normalize(x):
    """x / (‖x‖₂ + 1e-7) over the last axis (the authors' `Normalize`), float32. The norm's
    square gets 1e-12 so that an all-zero row (every ReLU of a narrow head off) has a
    finite gradient instead of NaN."""
    x = ops.cast(x, "float32")
    return x / (ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + 1e-12) + 1e-7)


OPTIONS = dict(
    ngf=64,                      # generator base width
    ndf=64,                      # discriminator base width
    n_blocks=9,                  # residual blocks (ResNet-9)
    disc_layers=3,               # 3 = the 70x70 PatchGAN
    nce_layers="0,4,8,12,16",    # indices into the authors' generator sequence (see layer_sequence)
    num_patches=256,             # positions per layer and image (all of them where a map has fewer)
    patch_dim=256,               # MLP head width (the authors' netF_nc)
    temperature=0.07,            # τ of PatchNCE
    nce_weight=1.0,              # λ_NCE
    gan_weight=1.0,              # λ_GAN
    nce_identity=True,           # PatchNCE of Monet paintings with their own translation
    flip_equivariance=False,     # FastCUT: flip the input left-right with probability 1/2
    lr=2e-4,
    beta_1=0.5,
    beta_2=0.999,
    decay_start=0.5,             # fraction of training after which lr falls linearly to 0
    total_steps=0,               # steps of the whole run; 0: epochs x steps_per_epoch, set by training
)


@register("cut", **OPTIONS)
@register("fastcut", **{**OPTIONS, "nce_weight": 10.0, "nce_identity": False, "flip_equivariance": True,
                        "decay_start": 0.75})
class CUT(TranslationModel):
    """photo -> Monet (`generator`) judged by `discriminator`, with PatchNCE through `patch_heads`.

    Data batches are `(monet, photo)` pairs of float images in [-1, 1] (unpaired). Logged:
    `nce` (photo vs translation) and `nce_identity` (painting vs its own translation; 0
    when off), each times λ_NCE.
    """

    loss_names = ("g_total", "g_adv", "nce", "nce_identity", "d_loss")

    def __init__(self, image_size: int, *, ngf, ndf, n_blocks, disc_layers, nce_layers, num_patches,
                 patch_dim, temperature, nce_weight, gan_weight, nce_identity, flip_equivariance, lr,
                 beta_1, beta_2, **kwargs):
        super().__init__(**kwargs)
        if num_patches < 1 or temperature <= 0:
            raise ValueError(f"num_patches must be >= 1 and temperature > 0, got {num_patches}, {temperature}")
        self.generator = cut_generator(image_size, ngf=ngf, n_blocks=n_blocks, name="generator")
        sequence = layer_sequence("generator", n_blocks)
        try:
            indices = [int(i) for i in str(nce_layers).split(",") if i.strip()]
        except ValueError:
            raise ValueError(f"nce_layers must be comma-separated layer indices, got {nce_layers!r}") from None
        if not indices or any(not 0 <= i < len(sequence) for i in indices):
            raise ValueError(f"nce_layers must be indices in 0..{len(sequence) - 1} (the generator's layers "
                             f"with n_blocks={n_blocks}), got {nce_layers!r}")
        taps = [self.generator.get_layer(sequence[i]).output for i in indices]
        # the generator's own layers up to the last tap: shares its weights (private, so
        # checkpoints and exports do not hold them twice)
        self._encoder = keras.Model(self.generator.inputs, taps, name="encoder")
        self.patch_heads = patch_heads([int(t.shape[-1]) for t in taps], dim=patch_dim)
        self.discriminator = cut_discriminator(image_size, ndf=ndf, n_layers=disc_layers, name="discriminator")
        self.num_patches = int(num_patches)
        self.temperature = float(temperature)
        self.nce_weight = float(nce_weight)
        self.gan_weight = float(gan_weight)
        self.nce_identity = bool(nce_identity)
        self.flip_equivariance = bool(flip_equivariance)
        self.patch_seed = keras.random.SeedGenerator(name="patch_seed")
        if self.flip_equivariance:
            self.flip_seed = keras.random.SeedGenerator(name="flip_seed")
        adam = dict(beta_1=beta_1, beta_2=beta_2)
        self.g_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr), name="g_adam", **adam)
        self.d_optimizer = keras.optimizers.Adam(learning_rate=self.lr_schedule(lr), name="d_adam", **adam)

    @property
    def translator(self):
        return self.generator

    def make_players(self):
        return [
            Player("generator", [self.generator, self.patch_heads], self.g_optimizer, self.generator_loss),
            Player("discriminator", [self.discriminator], self.d_optimizer, self.discriminator_loss),
        ]

    def _positions(self, size: int):
        """`min(num_patches, size)` distinct positions in [0, size), drawn from the patch stream."""
        scores = keras.random.uniform((size,), seed=self.patch_seed)
        return ops.top_k(scores, min(self.num_patches, size), sorted=False)[1]

    def nce_losses(self, real, fake, groups: int, flipped, training):
        """λ_NCE · PatchNCE averaged over the NCE layers, one value per group of images.

        `real` and `fake` are `groups` equal batches stacked (CUT: photos then paintings, and
        their translations); each group draws its own positions per layer, as the authors'
        separate NCE calls. `flipped`: a scalar bool (the input was flipped) or None.
        """
        feats = self._encoder(ops.concatenate([fake, ops.cast(real, fake.dtype)], axis=0), training=training)
        feats = feats if isinstance(feats, (list, tuple)) else [feats]
        queries, keys = [], []
        for f in feats:
            query, key = ops.split(f, 2, axis=0)
            if flipped is not None:  # the translation's features back in the photo's orientation
                query = ops.where(flipped, ops.flip(query, axis=2), query)
            h, w, c = (int(d) for d in f.shape[1:])
            rows = []
            for q_group, k_group in zip(ops.split(query, groups, axis=0), ops.split(key, groups, axis=0)):
                ids = self._positions(h * w)
                for x in (q_group, k_group):
                    rows.append(ops.take(ops.reshape(x, (-1, h * w, c)), ids, axis=1))  # [B, N, C]
            queries.append(ops.concatenate(rows, axis=0))  # q0, k0, q1, k1, ... as [rows·B, N, C]
        per_group = [0.0] * groups
        projected = self.patch_heads([ops.reshape(q, (-1, int(q.shape[-1]))) for q in queries], training=training)
        projected = projected if isinstance(projected, (list, tuple)) else [projected]
        for rows, p in zip(queries, projected):
            p = ops.reshape(l2_normalize(p), (2 * groups, -1, int(rows.shape[1]), int(p.shape[-1])))
            for g in range(groups):
                loss = patch_nce(p[2 * g], ops.stop_gradient(p[2 * g + 1]), self.temperature)
                per_group[g] = per_group[g] + ops.mean(loss)
        return [self.nce_weight * v / len(feats) for v in per_group]

    def generator_loss(self, batch, context, training):
        monet, photo = batch
        real = ops.concatenate([photo, monet], axis=0) if self.nce_identity else photo
        flipped = None
        if self.flip_equivariance:
            flipped = keras.random.uniform((), seed=self.flip_seed) < 0.5
            fake = self.generator(ops.where(flipped, ops.flip(real, axis=2), real), training=training)
        else:
            fake = self.generator(real, training=training)
        groups = 2 if self.nce_identity else 1
        fake_monet = ops.split(fake, groups, axis=0)[0]
        adv = self.gan_weight * losses.generator_loss("lsgan", self.discriminator(fake_monet, training=training))
        nce = self.nce_losses(real, fake, groups, flipped, training)
        total = adv + sum(nce) / groups
        context["fake_monet"] = ops.stop_gradient(fake_monet)
        return total, {"g_total": total, "g_adv": adv, "nce": nce[0],
                       "nce_identity": nce[1] if self.nce_identity else ops.zeros((), "float32")}

    def discriminator_loss(self, batch, context, training):
        monet = batch[0]
        fake = ops.cast(context["fake_monet"], monet.dtype)
        logits = self.discriminator(ops.concatenate([monet, fake], axis=0), training=training)
        real_logits, fake_logits = ops.split(logits, 2, axis=0)
        loss = losses.discriminator_loss("lsgan", real_logits, fake_logits)
        return loss, {"d_loss": loss}
