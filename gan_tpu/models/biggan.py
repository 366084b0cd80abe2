"""BigGAN (Brock et al. 2019) for a few hundred paintings: with DiffAugment (Zhao et al. 2020)
on everything D sees and an EMA generator.

G: z split into one chunk per residual up-block plus one for the 4x4 projection
(hierarchical latents); each block's conditional batch norm takes its gains and biases
from [its chunk, the shared class embedding] (one class: the embedding is still learned,
so a labelled variant only has to feed labels). D: residual down-blocks, global sum
pooling, a linear logit plus the projection of the class embedding. Both: spectral norm
on every conv, linear and embedding of D (G's shared embedding excepted, as in the
authors' code), one SAGAN self-attention block at 64x64 (or the nearest resolution the
network has), orthogonal initialisation. Hinge loss, G's orthogonal regularization,
Adam (β1, β2) = (0, 0.999) with D's learning rate 4x G's, `n_critic` D steps per G step,
each on its own real images: a train step reads `n_critic` x B images (the per-replica
batch must divide by `n_critic`) and D step i takes the i-th B of them, as the authors'
train_fns splits its batch_size x num_D_steps loader batch; G draws B latents (their
G_batch_size defaults to batch_size).

Differences from the authors' code, on purpose: G steps before D in each train step (so the
run's step counter, the first player's, counts batches); DiffAugment on everything D sees.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from gan_tpu import augment, losses
from gan_tpu.layers import ClassOneHot
from gan_tpu.models.base import Player
from gan_tpu.models.biggan_layers import Attend, GatedResidual, LatentChunk, Modulate
from gan_tpu.models.noise_base import NoiseGAN
from gan_tpu.models.noise_networks import _levels
from gan_tpu.models.registry import register

# Width multipliers of G's up-blocks' outputs, 4x4 first, from the authors' code (ch x these);
# D's down-blocks are these reversed, then one more at 16 (its block without pooling).
PAPER_WIDTHS = {128: (16, 8, 4, 2, 1), 256: (16, 8, 8, 4, 2, 1), 512: (16, 8, 8, 4, 2, 1, 1)}


def block_widths(image_size: int) -> tuple[int, ...]:
    """G's up-block output multipliers; sizes the paper has no table for halve from 16."""
    n = _levels(image_size)
    return PAPER_WIDTHS.get(image_size, tuple(min(2 ** k, 16) for k in reversed(range(n))))


def chunk_sizes(latent_dim: int, chunks: int) -> list[int]:
    """An even split of z over the chunks (the first ones one larger when it does not divide)."""
    if latent_dim < chunks:
        raise ValueError(f"latent_dim must be at least {chunks} (one entry per block and the "
                         f"projection), got {latent_dim}")
    base, extra = divmod(latent_dim, chunks)
    return [base + (i < extra) for i in range(chunks)]


def nearest(resolutions, wanted: int) -> int | None:
    """The resolution closest to `wanted` (the larger on a tie); None when `wanted` is 0."""
    return min(resolutions, key=lambda r: (abs(r - wanted), -r)) if wanted else None


def _init():
    return keras.initializers.Orthogonal()


def _sn(layer):
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn")


def _conv(filters, kernel, name, use_bias=True):
    return _sn(layers.Conv2D(filters, kernel, padding="same", use_bias=use_bias, kernel_initializer=_init(),
                             name=name))


def _dense(units, name, use_bias=True):
    return _sn(layers.Dense(units, use_bias=use_bias, kernel_initializer=_init(), name=name))


def _batch_norm(name, affine=True):
    # synchronized: statistics of the global batch on TensorFlow; JAX's GSPMD step sees it whole
    return layers.BatchNormalization(center=affine, scale=affine, momentum=0.9, epsilon=1e-4,
                                     synchronized=keras.backend.backend() == "tensorflow", name=name)


def _conditional_bn(x, cond, name):
    """Batch norm without its own affine, then gains and biases linear in `cond` (BigGAN's CBN)."""
    channels = x.shape[-1]
    h = _batch_norm(f"{name}_bn", affine=False)(x)
    gain = _dense(channels, f"{name}_gain", use_bias=False)(cond)
    bias = _dense(channels, f"{name}_bias", use_bias=False)(cond)
    return Modulate(name=f"{name}_mod")([h, gain, bias])


def self_attention(x, name):
    """SAGAN's non-local block: θ, φ (C/8) and g (C/2) 1x1 convs, φ and g max-pooled 2x,
    softmax(θφᵀ)g, a 1x1 conv back to C, added to x through a gate γ that starts at 0."""
    c = x.shape[-1]
    theta = _conv(max(c // 8, 1), 1, f"{name}_theta", use_bias=False)(x)
    phi = layers.MaxPooling2D(2, name=f"{name}_phi_pool")(_conv(max(c // 8, 1), 1, f"{name}_phi", use_bias=False)(x))
    g = layers.MaxPooling2D(2, name=f"{name}_g_pool")(_conv(max(c // 2, 1), 1, f"{name}_g", use_bias=False)(x))
    o = _conv(c, 1, f"{name}_out", use_bias=False)(Attend(name=f"{name}_attend")([theta, phi, g]))
    return GatedResidual(name=f"{name}_gate")([x, o])


def biggan_generator(image_size: int, *, latent_dim: int = 140, ngf: int = 96, shared_dim: int = 128,
                     classes: int = 1, attention: int = 64, name: str = "generator") -> keras.Model:
    """z -> image: z's first chunk -> SN linear -> 4x4; residual up-blocks (CBN, ReLU, nearest
    2x, conv3x3, CBN, ReLU, conv3x3; shortcut 2x + conv1x1), each conditioned on
    [its z chunk, the shared embedding]; attention after the block at `attention` px;
    BN, ReLU, conv3x3, tanh."""
    widths = [ngf * m for m in block_widths(image_size)]
    n = len(widths)
    sizes = chunk_sizes(latent_dim, n + 1)
    bounds = [sum(sizes[:i]) for i in range(n + 2)]
    z = keras.Input((latent_dim,), name=f"{name}_z")
    chunks = [LatentChunk(bounds[i], bounds[i + 1], name=f"{name}_z{i}")(z) for i in range(n + 1)]
    labels = ClassOneHot(classes, name=f"{name}_labels")(z)
    shared = layers.Dense(shared_dim, use_bias=False, kernel_initializer=keras.initializers.RandomNormal(0.0, 1.0),
                          name=f"{name}_shared")(labels)  # the shared class embedding
    x = _dense(16 * ngf * 16, f"{name}_project")(chunks[0])
    x = layers.Reshape((4, 4, 16 * ngf), name=f"{name}_reshape")(x)
    attend_at = nearest([4 * 2 ** (i + 1) for i in range(n)], attention)
    for i, w in enumerate(widths):
        b = f"{name}_block{i}"
        cond = layers.Concatenate(name=f"{b}_cond")([chunks[i + 1], shared])
        h = layers.ReLU(name=f"{b}_act1")(_conditional_bn(x, cond, f"{b}_cbn1"))
        h = _conv(w, 3, f"{b}_conv1")(layers.UpSampling2D(2, name=f"{b}_up")(h))
        h = layers.ReLU(name=f"{b}_act2")(_conditional_bn(h, cond, f"{b}_cbn2"))
        h = _conv(w, 3, f"{b}_conv2")(h)
        s = _conv(w, 1, f"{b}_skip_conv")(layers.UpSampling2D(2, name=f"{b}_skip_up")(x))
        x = layers.Add(name=f"{b}_add")([h, s])
        if x.shape[1] == attend_at:
            x = self_attention(x, f"{name}_attention")
    x = layers.ReLU(name=f"{name}_out_act")(_batch_norm(f"{name}_out_bn")(x))
    x = _conv(3, 3, f"{name}_out_conv")(x)
    return keras.Model(z, layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x), name=name)


def biggan_discriminator(image_size: int, *, ndf: int = 96, classes: int = 1, attention: int = 64,
                         name: str = "discriminator") -> keras.Model:
    """image -> logit: residual down-blocks (ReLU, conv3x3, ReLU, conv3x3, avg-pool 2x;
    shortcut conv1x1 + pool; the first block without its leading ReLU, pooling before its
    shortcut conv) to 4x4 and one block more without pooling, attention after the block at
    `attention` px, ReLU, global sum, SN linear + <SN embedding(class), features>."""
    widths = [ndf * m for m in reversed(block_widths(image_size))] + [ndf * 16]
    n = len(widths) - 1
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    attend_at = nearest([image_size // 2 ** (i + 1) for i in range(n)], attention)
    x = inputs
    for i, w in enumerate(widths):
        b, down, first = f"{name}_block{i}", i < n, i == 0
        h = x if first else layers.ReLU(name=f"{b}_act1")(x)
        h = layers.ReLU(name=f"{b}_act2")(_conv(w, 3, f"{b}_conv1")(h))
        h = _conv(w, 3, f"{b}_conv2")(h)
        if down:
            h = layers.AveragePooling2D(2, name=f"{b}_pool")(h)
        s = x
        if first:
            s = _conv(w, 1, f"{b}_skip_conv")(layers.AveragePooling2D(2, name=f"{b}_skip_pool")(s))
        elif down or x.shape[-1] != w:
            s = _conv(w, 1, f"{b}_skip_conv")(s)
            s = layers.AveragePooling2D(2, name=f"{b}_skip_pool")(s) if down else s
        x = layers.Add(name=f"{b}_add")([h, s])
        if down and x.shape[1] == attend_at:
            x = self_attention(x, f"{name}_attention")
    x = layers.ReLU(name=f"{name}_out_act")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    features = layers.Rescaling(16.0, name=f"{name}_sum")(x)  # global sum pooling over the 4x4 map
    logit = _dense(1, f"{name}_logit")(features)
    labels = ClassOneHot(classes, name=f"{name}_labels")(inputs)
    embedded = _dense(widths[-1], f"{name}_embed", use_bias=False)(labels)  # D's class embedding
    projection = layers.Dot(axes=1, name=f"{name}_projection")([embedded, features])
    x = layers.Add(name=f"{name}_logit_add")([logit, projection])
    return keras.Model(inputs, layers.Activation("linear", dtype="float32", name=f"{name}_out")(x), name=name)


def orthogonal_regularization(kernels, beta: float):
    """BigGAN's orthogonal regularization, (β/2) Σ_W ‖WᵀW ⊙ (1 − I)‖²_F over G's kernels, each
    as a (fan-in, filters) matrix: only the filters' mutual products are penalised, not their
    norms. The authors' code (utils.ortho) adds 2β·(WWᵀ ⊙ (1 − I))W to each gradient, the
    gradient of this: half the paper's β‖·‖²_F, whose gradient is 4β(...). Computed as
    ‖Gram‖²_F − Σ ‖filter‖⁴ with the smaller of the two Gram matrices (the same Frobenius
    norm), so G's 4x4 projection (20 x 24,576) costs a 20 x 20 product, not 24,576²."""
    total = 0.0
    for kernel in kernels:
        w = ops.cast(ops.reshape(kernel, (-1, kernel.shape[-1])), "float32")
        gram = ops.matmul(ops.transpose(w), w) if w.shape[1] <= w.shape[0] else ops.matmul(w, ops.transpose(w))
        total = total + ops.sum(ops.square(gram)) - ops.sum(ops.square(ops.sum(ops.square(w), axis=0)))
    return 0.5 * beta * total


@register(
    "biggan",
    latent_dim=140,          # 20 per chunk: 7 chunks at 256 px (the 4x4 projection + 6 up-blocks)
    ngf=96,                  # ch: widths are ch x (16, 8, 8, 4, 2, 1) at 256 px
    ndf=96,
    shared_dim=128,          # the shared class embedding
    attention=64,            # self-attention at this resolution (the nearest one a network has; 0: none)
    n_critic=2,              # D steps per G step
    lr=5e-5,                 # G's; D's is d_lr_ratio x this
    d_lr_ratio=4.0,
    beta_1=0.0,
    beta_2=0.999,
    ortho=1e-4,              # β of the orthogonal regularization of G (0: off)
    diff_augment="translation,cutout,color",  # DiffAugment policy for everything D sees ("": off)
    ema=0.999,               # EMA of G's weights (the paper: 0.9999 over ImageNet-long runs)
    ema_start=1000,          # ... from this step on (the paper: 20,000)
    truncation=0.0,          # generation only: redraw latents beyond ±t (0: off)
)
class BigGAN(NoiseGAN):
    """Brock et al.'s BigGAN, unconditional (one class), with DiffAugment.

    Each batch: one G update (hinge −E[D(aug(G(z)))] + orthogonal regularization), then
    `n_critic` D updates on aug(Monet) and aug(G(z)) with fresh latents. G first, so the
    run's step counter (the first player's) counts batches. Batch norm (G only) is
    synchronized across replicas; D has none, so it sees real and fake in one call.
    """

    loss_names = ("d_loss", "g_loss", "ortho", "d_real", "d_fake")

    def __init__(self, image_size: int, *, latent_dim, ngf, ndf, shared_dim, attention, n_critic, lr,
                 d_lr_ratio, beta_1, beta_2, ortho, diff_augment, truncation=0.0, **kwargs):
        super().__init__(latent_dim=latent_dim, truncation=truncation, **kwargs)
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        if attention < 0:
            raise ValueError(f"attention must be a resolution in pixels or 0 (none), got {attention}")
        self.generator = biggan_generator(image_size, latent_dim=latent_dim, ngf=ngf, shared_dim=shared_dim,
                                          attention=attention)
        self.discriminator = biggan_discriminator(image_size, ndf=ndf, attention=attention)
        self.n_critic = int(n_critic)
        self.ortho = float(ortho)
        self.policy = augment.parse_policy(diff_augment)
        self.augment_seed = keras.random.SeedGenerator(name="augment_seed")
        adam = dict(beta_1=beta_1, beta_2=beta_2, epsilon=1e-6)  # the authors' ε
        self.g_optimizer = keras.optimizers.Adam(self.lr_schedule(lr), name="g_adam", **adam)
        self.d_optimizer = keras.optimizers.Adam(self.lr_schedule(lr * d_lr_ratio), name="d_adam", **adam)

    def make_players(self):
        # one player per D step, all on D's optimizer, each with its own slice of the batch
        return [Player("generator", [self.generator], self.g_optimizer, self.generator_loss)] + [
            Player("discriminator", [self.discriminator], self.d_optimizer,
                   lambda batch, context, training, i=i: self.discriminator_loss(batch, context, training, i))
            for i in range(self.n_critic)]

    def d_batch(self, images):
        """B, the images one D step reads: the per-replica batch over `n_critic`."""
        n = images.shape[0] if images.shape[0] is not None else ops.shape(images)[0]
        if isinstance(n, int) and n % self.n_critic:
            raise ValueError(f"BigGAN: the per-replica batch ({n}) must divide by n_critic ({self.n_critic}): "
                             f"each D step reads its own images")
        return n // self.n_critic

    @property
    def ortho_kernels(self) -> list:
        """G's matrices the orthogonal regularization covers: every kernel but the embedding."""
        shared = {id(v) for v in self.generator.get_layer("generator_shared").weights}
        return [v for v in self.generator.trainable_variables if len(v.shape) >= 2 and id(v) not in shared]

    def _judge(self, images, training):
        images = augment.diff_augment(images, self.policy, seed=self.augment_seed) if self.policy else images
        return self.discriminator(images, training=training)

    def discriminator_loss(self, batch, context, training, step: int = 0):
        """D step `step` (of `n_critic`), on the step-th slice of the batch's paintings."""
        n = self.d_batch(batch[0])
        monet = batch[0][step * n:(step + 1) * n]
        fake = ops.stop_gradient(self.generator(self.latents(n), training=training))
        logits = self._judge(ops.concatenate([monet, ops.cast(fake, monet.dtype)], 0), training)
        loss = losses.hinge_discriminator(logits[:n], logits[n:])  # the paper's, not halved
        return loss, {"d_loss": loss, "d_real": ops.mean(logits[:n]), "d_fake": ops.mean(logits[n:])}

    def generator_loss(self, batch, context, training):
        fake = self.generator(self.latents(self.d_batch(batch[0])), training=training)
        adversarial = losses.generator_loss("hinge", self._judge(fake, training))
        ortho = orthogonal_regularization(self.ortho_kernels, self.ortho) if self.ortho else ops.zeros(())
        return adversarial + ortho, {"g_loss": adversarial, "ortho": ortho}
