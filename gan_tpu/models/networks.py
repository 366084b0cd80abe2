"""Generator and discriminator networks as functional Keras models (backend-free)."""
from __future__ import annotations

import math

import keras
from keras import layers

from gan_tpu.layers import PhaseConv2DTranspose, ReflectionPadding2D, norm_layer, weight_init


def _down(x, filters, *, norm, name, use_norm=True):
    x = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False,
                      kernel_initializer=weight_init(), name=f"{name}_conv")(x)
    if use_norm:
        x = norm_layer(norm, name=f"{name}_norm")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def _up(x, filters, *, norm, name, dropout=0.0):
    x = PhaseConv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                             kernel_initializer=weight_init(), name=f"{name}_conv")(x)
    x = norm_layer(norm, name=f"{name}_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def unet_generator(image_size: int, *, ngf: int = 64, norm: str = "instance",
                   dropout: float = 0.5, name: str = "unet") -> keras.Model:
    """The competition starter notebook's U-Net, as deep as the image size allows.

    4x4 stride-2 convs (ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...) down to 1x1, instance norm except
    on the first block, LeakyReLU 0.2; transposed convs back up with dropout on the first
    three up blocks and concatenated skips; tanh out. At the 1x1 bottleneck instance norm
    would zero every channel, so that block has none.
    """
    depth = int(math.log2(image_size))
    if 2 ** depth != image_size or depth < 2:
        raise ValueError(f"U-Net image size must be a power of two >= 4, got {image_size}")
    widths = [ngf * min(2 ** i, 8) for i in range(depth)]
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x, skips = inputs, []
    for i, w in enumerate(widths):
        last = i == depth - 1
        x = _down(x, w, norm=norm, name=f"{name}_down{i}", use_norm=0 < i and not last)
        skips.append(x)
    for i, (w, skip) in enumerate(zip(reversed(widths[:-1]), reversed(skips[:-1]))):
        x = _up(x, w, norm=norm, name=f"{name}_up{i}", dropout=dropout if i < 3 else 0.0)
        x = layers.Concatenate(name=f"{name}_skip{i}")([x, skip])
    x = PhaseConv2DTranspose(3, 4, strides=2, padding="same", kernel_initializer=weight_init(),
                             name=f"{name}_out_conv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_norm_relu(x, filters, kernel, *, norm, name, strides=1, reflect=0):
    if reflect:
        x = ReflectionPadding2D(reflect, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, kernel, strides=strides, padding="valid" if reflect else "same",
                      use_bias=False, kernel_initializer=weight_init(), name=f"{name}_conv")(x)
    x = norm_layer(norm, name=f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def resnet_generator(image_size: int, *, ngf: int = 64, n_blocks: int = 9,
                     norm: str = "instance", skips: bool = False, name: str = "resnet") -> keras.Model:
    """Zhu et al.'s ResNet generator: c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-3.

    `skips` adds encoder-decoder skip connections, as in a U-Net: each upsampling stage is
    concatenated with the encoder features of the same resolution (d2ngf after u2ngf, the
    c7s1-ngf stem after ungf), which the seed report found helps spatial reconstruction.
    `norm="layer"` is the layer-norm option (over H, W, C per image).
    """
    if image_size % 4:
        raise ValueError(f"ResNet generator image size must be a multiple of 4, got {image_size}")
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = _conv_norm_relu(inputs, ngf, 7, norm=norm, name=f"{name}_stem", reflect=3)
    encoder = [x]
    x = _conv_norm_relu(x, ngf * 2, 3, norm=norm, name=f"{name}_down0", strides=2)
    encoder.append(x)
    x = _conv_norm_relu(x, ngf * 4, 3, norm=norm, name=f"{name}_down1", strides=2)
    for b in range(n_blocks):
        y = _conv_norm_relu(x, ngf * 4, 3, norm=norm, name=f"{name}_block{b}a", reflect=1)
        y = ReflectionPadding2D(1, name=f"{name}_block{b}b_pad")(y)
        y = layers.Conv2D(ngf * 4, 3, use_bias=False, kernel_initializer=weight_init(),
                          name=f"{name}_block{b}b_conv")(y)
        y = norm_layer(norm, name=f"{name}_block{b}b_norm")(y)
        x = layers.Add(name=f"{name}_block{b}_add")([x, y])
    for i, w in enumerate((ngf * 2, ngf)):
        x = PhaseConv2DTranspose(w, 3, strides=2, padding="same", use_bias=False,
                                 kernel_initializer=weight_init(), name=f"{name}_up{i}_conv")(x)
        x = norm_layer(norm, name=f"{name}_up{i}_norm")(x)
        x = layers.ReLU(name=f"{name}_up{i}_act")(x)
        if skips:
            x = layers.Concatenate(name=f"{name}_skip{i}")([x, encoder[-1 - i]])
    x = ReflectionPadding2D(3, name=f"{name}_out_pad")(x)
    x = layers.Conv2D(3, 7, kernel_initializer=weight_init(), name=f"{name}_out_conv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


def _sn(layer, spectral_norm: bool):
    """`layer` wrapped in spectral normalization (Miyato et al. 2018) when asked."""
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral_norm else layer


def patch_discriminator(image_size: int, *, ndf: int = 64, n_layers: int = 3,
                        norm: str = "instance", spectral_norm: bool = False,
                        name: str = "patchgan") -> keras.Model:
    """The 70x70 PatchGAN (n_layers=3): C64-C128-C256 stride 2, C512 stride 1, 1-channel logits.

    `spectral_norm` wraps every convolution in `keras.layers.SpectralNormalization` (one
    power iteration per training call; SN-CycleGAN uses it with `norm="none"` or instance).
    """
    inputs = keras.Input((image_size, image_size, 3), name=f"{name}_in")
    x = inputs
    for i in range(n_layers):
        conv = layers.Conv2D(ndf * min(2 ** i, 8), 4, strides=2, padding="same", use_bias=False,
                             kernel_initializer=weight_init(), name=f"{name}_down{i}_conv")
        x = _sn(conv, spectral_norm)(x)
        if i > 0:
            x = norm_layer(norm, name=f"{name}_down{i}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_down{i}_act")(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad0")(x)
    conv = layers.Conv2D(ndf * min(2 ** n_layers, 8), 4, use_bias=False, kernel_initializer=weight_init(),
                         name=f"{name}_conv")
    x = _sn(conv, spectral_norm)(x)
    x = norm_layer(norm, name=f"{name}_norm")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad1")(x)
    x = _sn(layers.Conv2D(1, 4, kernel_initializer=weight_init(), name=f"{name}_logits"), spectral_norm)(x)
    outputs = layers.Activation("linear", dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inputs, outputs, name=name)


GENERATORS = {"unet": unet_generator, "resnet": resnet_generator}
