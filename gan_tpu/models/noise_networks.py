"""Networks of the noise-to-image models (DCGAN, WGAN-GP, SN-GAN, ArtGAN), backend-free.

Every generator starts from a 4x4 map (ArtGAN's decoder from 8x8) and doubles it until it
reaches the pipeline's image size, so one definition serves 32 px tests and 256 px runs;
every discriminator halves the image down to 4x4. Widths follow DCGAN: `nf * 2^k`, capped
at 8·nf, widest at the smallest resolution.
"""
from __future__ import annotations

import math

import keras
from keras import layers

from gan_tpu.layers import norm_layer, upsample_conv, weight_init  # "layer": per-channel affine, as in Gulrajani et al.


def _levels(image_size: int, smallest: int = 4) -> int:
    """How many times `smallest` doubles to `image_size` (a power of two, at least 2·smallest)."""
    n = int(round(math.log2(max(image_size, 1) / smallest)))
    if n < 1 or smallest * 2 ** n != image_size:
        raise ValueError(f"image size must be a power of two of at least {2 * smallest}, got {image_size}")
    return n


def _width(nf: int, k: int) -> int:
    return nf * min(2 ** k, 8)


def _out(x, name):
    return layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)


# --------------------------------------------------------------------------- DCGAN


def dcgan_generator(image_size: int, *, latent_dim: int = 100, ngf: int = 64, norm: str = "batch",
                    name: str = "generator") -> keras.Model:
    """Radford et al.: project z to 4x4, then 4x4 stride-2 transposed convs with norm + ReLU
    up to the image size; tanh out, no norm on the output layer."""
    n = _levels(image_size)
    z = keras.Input((latent_dim,), name=f"{name}_z")
    x = layers.Dense(16 * _width(ngf, n - 1), use_bias=False, kernel_initializer=weight_init(),
                     name=f"{name}_project")(z)
    x = layers.Reshape((4, 4, _width(ngf, n - 1)), name=f"{name}_reshape")(x)
    x = norm_layer(norm, name=f"{name}_project_norm")(x)
    x = layers.ReLU(name=f"{name}_project_act")(x)
    for i in range(1, n):
        x = upsample_conv(x, _width(ngf, n - 1 - i), mode="transpose", name=f"{name}_up{i}")
        x = norm_layer(norm, name=f"{name}_up{i}_norm")(x)
        x = layers.ReLU(name=f"{name}_up{i}_act")(x)
    x = upsample_conv(x, 3, mode="transpose", name=f"{name}_out", use_bias=True)
    return keras.Model(z, _out(x, name), name=name)


def dcgan_discriminator(image_size: int, *, ndf: int = 64, norm: str = "batch",
                        name: str = "discriminator") -> keras.Model:
    """Radford et al.: 4x4 stride-2 convs with LeakyReLU 0.2 down to 4x4 (no norm on the
    input layer), then a 4x4 valid conv to one logit per image. WGAN-GP's critic is the
    same with layer norm (or none) in place of batch norm."""
    n = _levels(image_size)
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(n):
        x = layers.Conv2D(_width(ndf, i), 4, strides=2, padding="same", use_bias=i == 0,
                          kernel_initializer=weight_init(), name=f"{name}_down{i}_conv")(x)
        if i:
            x = norm_layer(norm, name=f"{name}_down{i}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_down{i}_act")(x)
    x = layers.Conv2D(1, 4, padding="valid", kernel_initializer=weight_init(), name=f"{name}_logit")(x)
    x = layers.Flatten(name=f"{name}_flat")(x)
    return keras.Model(inputs, layers.Activation("linear", dtype="float32", name=f"{name}_out")(x), name=name)


# --------------------------------------------------------------------------- SN-GAN


def _sn(layer, enabled=True):
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if enabled else layer


def _conv(filters, kernel, name, sn=False, init=None):
    conv = layers.Conv2D(filters, kernel, padding="same",
                         kernel_initializer=init or keras.initializers.GlorotUniform(), name=name)
    return _sn(conv, sn)


def sngan_generator(image_size: int, *, latent_dim: int = 128, ngf: int = 64, name: str = "generator") -> keras.Model:
    """Miyato et al.'s ResNet generator: z -> 4x4, residual up-blocks (BN, ReLU, nearest 2x,
    conv3x3, BN, ReLU, conv3x3; shortcut: 2x, conv1x1) to the image size, BN, ReLU, conv3x3, tanh."""
    n = _levels(image_size)
    z = keras.Input((latent_dim,), name=f"{name}_z")
    x = layers.Dense(16 * _width(ngf, n - 1), name=f"{name}_project")(z)
    x = layers.Reshape((4, 4, _width(ngf, n - 1)), name=f"{name}_reshape")(x)
    for i in range(n):
        w, b = _width(ngf, max(n - 2 - i, 0)), f"{name}_block{i}"
        h = norm_layer("batch", name=f"{b}_norm1")(x)
        h = layers.ReLU(name=f"{b}_act1")(h)
        h = layers.UpSampling2D(2, name=f"{b}_up")(h)
        h = _conv(w, 3, f"{b}_conv1")(h)
        h = norm_layer("batch", name=f"{b}_norm2")(h)
        h = layers.ReLU(name=f"{b}_act2")(h)
        h = _conv(w, 3, f"{b}_conv2")(h)
        s = layers.UpSampling2D(2, name=f"{b}_skip_up")(x)
        s = _conv(w, 1, f"{b}_skip_conv")(s)
        x = layers.Add(name=f"{b}_add")([h, s])
    x = norm_layer("batch", name=f"{name}_out_norm")(x)
    x = layers.ReLU(name=f"{name}_out_act")(x)
    x = _conv(3, 3, f"{name}_out_conv")(x)
    return keras.Model(z, _out(x, name), name=name)


def sngan_discriminator(image_size: int, *, ndf: int = 64, name: str = "discriminator") -> keras.Model:
    """Miyato et al.'s ResNet discriminator, spectral norm on every conv and the linear layer:
    an optimized first block, residual down-blocks (ReLU, conv3x3, ReLU, conv3x3, avg-pool;
    shortcut conv1x1, avg-pool) to 4x4, one block without pooling, ReLU, global sum, linear."""
    n = _levels(image_size)
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    w = _width(ndf, 0)
    h = _conv(w, 3, f"{name}_block0_conv1", sn=True)(inputs)
    h = layers.ReLU(name=f"{name}_block0_act")(h)
    h = _conv(w, 3, f"{name}_block0_conv2", sn=True)(h)
    h = layers.AveragePooling2D(2, name=f"{name}_block0_pool")(h)
    s = layers.AveragePooling2D(2, name=f"{name}_block0_skip_pool")(inputs)
    s = _conv(w, 1, f"{name}_block0_skip_conv", sn=True)(s)
    x = layers.Add(name=f"{name}_block0_add")([h, s])
    for i in range(1, n + 1):
        down, b = i < n, f"{name}_block{i}"
        w = _width(ndf, min(i, n - 1))
        h = layers.ReLU(name=f"{b}_act1")(x)
        h = _conv(w, 3, f"{b}_conv1", sn=True)(h)
        h = layers.ReLU(name=f"{b}_act2")(h)
        h = _conv(w, 3, f"{b}_conv2", sn=True)(h)
        s = x
        if down:
            h = layers.AveragePooling2D(2, name=f"{b}_pool")(h)
        if down or x.shape[-1] != w:
            s = _conv(w, 1, f"{b}_skip_conv", sn=True)(s)
            s = layers.AveragePooling2D(2, name=f"{b}_skip_pool")(s) if down else s
        x = layers.Add(name=f"{b}_add")([h, s])
    x = layers.ReLU(name=f"{name}_out_act")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    x = layers.Rescaling(16.0, name=f"{name}_sum")(x)  # global sum pooling over the 4x4 map
    x = _sn(layers.Dense(1, name=f"{name}_logit"))(x)
    return keras.Model(inputs, layers.Activation("linear", dtype="float32", name=f"{name}_out")(x), name=name)


# --------------------------------------------------------------------------- ArtGAN

ARTGAN_LATENT_SIZE = 8  # the encoder's / zNet's latent map is 8x8 (512@8x8 at 64 px in Tan et al.)


def artgan_znet(*, latent_dim: int, classes: int, ngf: int, channels: int, name: str = "znet") -> keras.Model:
    """[z, one-hot class] -> the 8x8 latent map the decoder paints from (Dense to 4x4, a
    transposed conv to 8x8; BN + ReLU)."""
    z = keras.Input((latent_dim,), name=f"{name}_z")
    y = keras.Input((classes,), name=f"{name}_class")
    x = layers.Concatenate(name=f"{name}_concat")([z, y])
    x = layers.Dense(16 * _width(ngf, 3), use_bias=False, kernel_initializer=weight_init(), name=f"{name}_project")(x)
    x = layers.Reshape((4, 4, _width(ngf, 3)), name=f"{name}_reshape")(x)
    x = norm_layer("batch", name=f"{name}_project_norm")(x)
    x = layers.ReLU(name=f"{name}_project_act")(x)
    x = upsample_conv(x, channels, mode="transpose", name=f"{name}_up")
    x = norm_layer("batch", name=f"{name}_up_norm")(x)
    x = layers.ReLU(name=f"{name}_up_act")(x)
    return keras.Model([z, y], x, name=name)


def artgan_decoder(image_size: int, *, ngf: int, channels: int, name: str = "decoder") -> keras.Model:
    """The 8x8 latent map -> an image: stride-2 transposed convs with BN + ReLU, tanh out."""
    n = _levels(image_size, ARTGAN_LATENT_SIZE)
    inputs = keras.Input((ARTGAN_LATENT_SIZE, ARTGAN_LATENT_SIZE, channels), name=f"{name}_in")
    x = inputs
    for i in range(1, n):
        x = upsample_conv(x, _width(ngf, n - 1 - i), mode="transpose", name=f"{name}_up{i}")
        x = norm_layer("batch", name=f"{name}_up{i}_norm")(x)
        x = layers.ReLU(name=f"{name}_up{i}_act")(x)
    x = upsample_conv(x, 3, mode="transpose", name=f"{name}_out", use_bias=True)
    return keras.Model(inputs, _out(x, name), name=name)


def artgan_encoder(image_size: int, *, ndf: int, channels: int, name: str = "encoder") -> keras.Model:
    """An image -> the 8x8 latent map: stride-2 convs, LeakyReLU 0.2, BN after the first."""
    n = _levels(image_size, ARTGAN_LATENT_SIZE)
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(n):
        x = layers.Conv2D(channels if i == n - 1 else _width(ndf, i), 4, strides=2, padding="same",
                          use_bias=i == 0, kernel_initializer=weight_init(), name=f"{name}_down{i}_conv")(x)
        if i:
            x = norm_layer("batch", name=f"{name}_down{i}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_down{i}_act")(x)
    return keras.Model(inputs, x, name=name)


def artgan_classifier(*, classes: int, channels: int, name: str = "classifier") -> keras.Model:
    """The 8x8 latent map -> K + 1 logits (a stride-2 conv, BN, LeakyReLU, linear)."""
    inputs = keras.Input((ARTGAN_LATENT_SIZE, ARTGAN_LATENT_SIZE, channels), name=f"{name}_in")
    x = layers.Conv2D(channels, 4, strides=2, padding="same", use_bias=False,
                      kernel_initializer=weight_init(), name=f"{name}_conv")(inputs)
    x = norm_layer("batch", name=f"{name}_norm")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    x = layers.Flatten(name=f"{name}_flat")(x)
    x = layers.Dense(classes + 1, kernel_initializer=weight_init(), name=f"{name}_logits")(x)
    return keras.Model(inputs, layers.Activation("linear", dtype="float32", name=f"{name}_out")(x), name=name)
