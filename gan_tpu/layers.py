"""Backend-free building blocks shared by the models (Keras 3 layers and keras.ops only)."""
from __future__ import annotations

import contextlib

import keras
from keras import ops

from gan_tpu import resize_dots
from gan_tpu.blur import BlurUpsample2D


def weight_init(stddev: float = 0.02) -> keras.initializers.Initializer:
    """N(0, 0.02), the DCGAN/CycleGAN convention."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev)


def torch_init() -> keras.initializers.Initializer:
    """PyTorch's default conv initialisation: U(±1/sqrt(fan_in)) (StarGAN's authors keep it)."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def xavier(gain: float = 0.02) -> keras.initializers.Initializer:
    """PyTorch's xavier_normal_(gain): std = gain·sqrt(2 / (fan_in + fan_out)) (CUT's init)."""
    return keras.initializers.VarianceScaling(scale=gain ** 2, mode="fan_avg", distribution="untruncated_normal")


def kaiming() -> keras.initializers.Initializer:
    """He normal, fan in: the `init: kaiming` of MUNIT's, UNIT's and DRIT++'s generators."""
    return keras.initializers.HeNormal()


def instance_norm(name: str | None = None, *, affine: bool = True,
                  gamma_stddev: float | None = 0.02) -> keras.layers.Layer:
    """Instance normalization (ε 1e-5): one group per channel (tensorflow-addons is retired).

    `affine=False`: no scale or offset, PyTorch's InstanceNorm2d default (CUT, U-GAT-IT,
    Bayesian CycleGAN). Affine, γ starts at N(1, `gamma_stddev`) (CycleGAN's authors' init),
    or at exactly 1 with `gamma_stddev=None` (InstanceNorm2d(affine=True): StarGAN).
    """
    if not affine:
        return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False, name=name)
    gamma = "ones" if gamma_stddev is None else keras.initializers.RandomNormal(1.0, gamma_stddev)
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, gamma_initializer=gamma, name=name)


def norm_layer(kind: str, name: str | None = None) -> keras.layers.Layer:
    """"instance", "layer", "batch" (synchronized across replicas) or "none".

    "layer" normalizes over H, W and C per image with a per-channel scale and offset (one
    group), as layer norm in convolutional GANs does: Keras' LayerNormalization over
    H, W, C would learn a per-pixel affine, tying the network to its training size.
    """
    if kind == "instance":
        return instance_norm(name)
    if kind == "layer":
        return keras.layers.GroupNormalization(groups=1, epsilon=1e-5, name=name)
    if kind == "batch":  # JAX (DataParallel/GSPMD) computes batch statistics over the global batch anyway
        return keras.layers.BatchNormalization(synchronized=keras.backend.backend() == "tensorflow", name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise ValueError(f"unknown norm {kind!r}")


@keras.saving.register_keras_serializable(package="gan_tpu")
class ReflectionPadding2D(keras.layers.Layer):
    """Reflect-pad height and width by `padding` pixels (NHWC)."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        p = 2 * self.padding
        grow = lambda d: None if d is None else d + p  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="gan_tpu.biggan")  # the name saved BigGANs carry
class ClassOneHot(keras.layers.Layer):
    """The one-hot class of every image of a batch, [B, classes]: `class_id` for all (an
    unconditional model is one class; StarGAN's translator, the Monet domain). A linear
    layer on it is a class embedding; a labelled variant feeds its own one-hot labels
    where this layer's output goes."""

    def __init__(self, classes: int = 1, class_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= class_id < classes:
            raise ValueError(f"class_id must be in [0, {classes}), got {class_id}")
        self.classes, self.class_id = int(classes), int(class_id)

    def call(self, x):
        labels = ops.full((ops.shape(x)[0],), self.class_id, dtype="int32")
        return ops.one_hot(labels, self.classes, dtype=self.compute_dtype)

    def compute_output_shape(self, shape):
        return (shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "class_id": self.class_id}


# --------------------------------------------------------------------------- upsampling
UPSAMPLE_MODES = ("transpose", "resize", "antialias")


def check_upsample(mode: str) -> str:
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")
    return mode


def upsample_conv(x, filters: int, *, mode: str, name: str, transpose_kernel: int = 4,
                  use_bias: bool = False, reflect: bool = False):
    """x2 upsampling to `filters` channels, one of `UPSAMPLE_MODES`.

    "transpose": a `transpose_kernel` stride-2 transposed conv (the starter notebook's; its
    uneven kernel overlap leaves a checkerboard, Odena et al. 2016); "resize": nearest x2,
    then a 3x3 conv (one `PhaseResizeConv2D`); "antialias": `BlurUpsample2D`, then a 3x3
    conv (CUT's default). `reflect` pads the 3x3 conv by reflection instead of zeros. Layers
    are named `{name}_conv` (and `{name}_blur`, `{name}_pad`). Generators saved before
    `PhaseResizeConv2D` hold `{name}_resize` (UpSampling2D), `{name}_pad` and a Conv2D
    `{name}_conv` with the same kernel: they load as they were and paint the same images.
    """
    init = weight_init()
    if check_upsample(mode) == "transpose":
        return PhaseConv2DTranspose(filters, transpose_kernel, strides=2, padding="same",
                                    use_bias=use_bias, kernel_initializer=init, name=f"{name}_conv")(x)
    if mode == "resize":  # its 3x3 kernel, computed at the low resolution (same outputs)
        return PhaseResizeConv2D(filters, reflect=reflect, use_bias=use_bias, kernel_initializer=init,
                                 name=f"{name}_conv")(x)
    x = BlurUpsample2D(name=f"{name}_blur")(x)
    if reflect:
        x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, 3, padding="valid" if reflect else "same", use_bias=use_bias,
                               kernel_initializer=init, name=f"{name}_conv")(x)


def _phase_taps(kernel: int, stride: int, pad: int) -> list[tuple[int, int, int, int]]:
    """Per output phase a (output index s*m + a): (offset, residue, zeros, taps), for
    y[s*m + a] = sum_{t < taps} x[m + offset + t] * K'[t + zeros, residue], where K' is the
    kernel zero-padded to T*s taps (T = ceil(kernel / s)), flipped, and split as [T, s]; the
    phase's `zeros` (0 or 1) leading taps fall on that zero padding and are dropped."""
    taps_per_phase = -(-kernel // stride)
    padded = taps_per_phase * stride
    phases = []
    for a in range(stride):
        last = max(k for k in range(padded) if (a + pad - k) % stride == 0)  # its first tap in input order
        zeros = int(last >= kernel)
        phases.append(((a + pad - last) // stride + zeros, padded - 1 - last, zeros, taps_per_phase - zeros))
    return phases


def _window(x, offsets, taps):
    """The input rows/columns m + offset .. m + offset + taps - 1 for every m, as a slice of `x`
    then zero padding, so XLA folds the padding into the convolution that follows (its FLOPs
    then skip taps on the zeros, as a transposed convolution's own lowering does)."""
    slices, pads = [slice(None)], [[0, 0]]
    for axis, (off, n) in enumerate(zip(offsets, taps), start=1):
        size = x.shape[axis]
        start = min(max(0, off), size)
        stop = min(max(start, size + off + n - 1), size)
        slices.append(slice(start, stop))
        pads.append([start - off, size + off + n - 1 - stop])
    x = x[tuple(slices) + (slice(None),)]
    return ops.pad(x, pads + [[0, 0]]) if any(p != [0, 0] for p in pads) else x


_SHARED_PHASE_KERNELS: list[dict] = []


@contextlib.contextmanager
def shared_phase_kernels():
    """Within: a phase layer (`PhaseConv2DTranspose`, `PhaseResizeConv2D`) called again on
    the same kernel value reuses its phase kernels, so in one traced loss (CycleGAN's
    translate, cycle and identity passes) the uses' kernel gradients are summed in the phase layout and mapped back to the
    kernel's layout once, not per use (per use, XLA fused those transposes into Adam's
    update: 29 % of the JAX CycleGAN step, issue 18). Only for immutable values (a traced
    JAX loss): a variable assigned in place inside would keep stale phase kernels."""
    _SHARED_PHASE_KERNELS.append({})
    try:
        yield
    finally:
        _SHARED_PHASE_KERNELS.pop()


def _shared_phase_kernels(layer, split) -> list:
    """`split(layer.kernel.value)`, inside `shared_phase_kernels` once per kernel value."""
    value = layer.kernel.value
    cache = _SHARED_PHASE_KERNELS[-1] if _SHARED_PHASE_KERNELS else None
    key = (id(layer), id(value), split.__name__)
    if cache is not None and key in cache and cache[key][0] is value:
        return cache[key][1]
    kernels = split(value)
    if cache is not None:
        cache[key] = (value, kernels)
    return kernels


@keras.saving.register_keras_serializable(package="gan_tpu")
class PhaseConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` (same weights, options and outputs) computed as one
    stride-1 convolution per output phase, the phases interleaved (sub-pixel convolution).

    Why: Keras lowers a transposed convolution on JAX to `lax.conv_transpose`, whose kernel
    gradient XLA emits as a convolution in a transposed, reversed layout; on XLA:CPU that
    gradient runs 30-40x slower than this form's whole backward pass (issue 18). The
    phase form has only ordinary convolutions forward and backward; each phase's zero padding
    is folded into its convolution, so XLA counts the forward FLOPs as for Keras' lowering
    (no taps on the border's zeros; the gradients still compute some). Used for
    padding "same" without output_padding or dilation, channels_last, kernel >= stride and
    a static input size; anything else runs Keras' own lowering. `phases=None` (default):
    only on JAX, since TensorFlow's own lowering has no such gradient (its Conv2DBackpropFilter).
    """

    def __init__(self, *args, phases: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.phases = phases

    def get_config(self):
        return {**super().get_config(), "phases": self.phases}

    def _phases_apply(self, shape) -> bool:
        wanted = keras.backend.backend() == "jax" if self.phases is None else self.phases
        return (wanted and self.padding == "same" and self.output_padding is None and self.data_format == "channels_last"
                and tuple(self.dilation_rate) == (1, 1) and all(k >= s for k, s in zip(self.kernel_size, self.strides))
                and shape[1] is not None and shape[2] is not None)

    def _phase_kernels(self) -> list:
        """The kernel as s_h*s_w stride-1 kernels (taps_h, taps_w, in, out), taps in input
        order, indexed by residue (row residue * s_w + column residue; see `_phase_taps`).

        One pad, flip, reshape and transpose, then a split; inside `shared_phase_kernels`,
        once per kernel value. (As strided slices per phase, their gradient was 40 % of the
        JAX CycleGAN step on XLA:CPU, issue 18.)"""
        return _shared_phase_kernels(self, self._split_kernel)

    def _split_kernel(self, value) -> list:
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        th, tw = -(-kh // sh), -(-kw // sw)
        k = value
        if th * sh > kh or tw * sw > kw:
            k = ops.pad(k, [[0, th * sh - kh], [0, tw * sw - kw], [0, 0], [0, 0]])
        k = ops.reshape(ops.flip(ops.flip(k, 0), 1), (th, sh, tw, sw, self.filters, -1))
        k = ops.reshape(ops.transpose(k, (1, 3, 0, 2, 5, 4)), (sh * sw, th, tw, -1, self.filters))
        return [ops.squeeze(part, 0) for part in ops.split(k, sh * sw, axis=0)]

    def call(self, inputs):
        if not self._phases_apply(inputs.shape):
            return super().call(inputs)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        # Keras' "same" transposed conv: output s*H, kernel tap k of input i lands on s*i + k - pad
        pads = [k - 1 - min((s + k - 2) // 2 + (s + k - 2) % 2, k - 1) for k, s in ((kh, sh), (kw, sw))]
        rows, cols = _phase_taps(kh, sh, pads[0]), _phase_taps(kw, sw, pads[1])
        kernels = self._phase_kernels()
        h, w = inputs.shape[1], inputs.shape[2]
        out_rows = []
        for r_off, r_res, r_zeros, r_taps in rows:
            out_cols = []
            for c_off, c_res, c_zeros, c_taps in cols:
                k = kernels[r_res * sw + c_res]
                if r_zeros or c_zeros:
                    k = k[r_zeros:, c_zeros:]
                window = _window(inputs, (r_off, c_off), (r_taps, c_taps))
                out_cols.append(ops.conv(window, k, strides=1, padding="valid"))
            out_rows.append(ops.stack(out_cols, axis=3))  # (B, H, W, sw, C)
        outputs = ops.reshape(ops.stack(out_rows, axis=2), (-1, h * sh, w * sw, self.filters))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs


# Nearest x2 then a 3x3 tap row d in {-1, 0, +1}: output row 2m + a reads source row
# m + floor((a + d) / 2), so phase a's 2 taps (source rows m - 1 + a, m + a) sum these 3x3 rows.
_RESIZE_TAP_SUMS = ((((0,), (1, 2)), ((0, 1), (2,))))


@keras.saving.register_keras_serializable(package="gan_tpu")
class PhaseResizeConv2D(keras.layers.Conv2D):
    """Nearest x2 upsampling then a 3x3 stride-1 conv ("same": zero padding of the upsampled
    image; `reflect`: its reflection padding), computed at the input's resolution.

    Output pixel (2m + a, 2n + b) reads 2x2 input pixels with taps that are sums of the 3x3
    kernel's (`_RESIZE_TAP_SUMS`): 4 taps per output pixel instead of 9, the cost of a 4x4
    stride-2 transposed conv, with resize-conv's outputs. The weights are a
    `keras.layers.Conv2D(filters, 3)`'s (kernel (3, 3, in, out), bias), so checkpoints of the
    UpSampling2D + Conv2D form load unchanged. `lowering` (a class attribute, not saved):

    - "dots" (default; zero padding): `resize_dots`, one matmul per input offset over only
      the input pixels that exist there, so forward and both gradients do exactly the
      transposed conv's multiply-adds; the CycleGAN step at 1.03-1.04x the "transpose"
      step's FLOPs and 0.83-0.98x its time on TF-XLA, 0.97-1.00x and 0.75-0.97x on JAX, at
      64 and 128 px (BENCHMARKS.md). Inference on TensorFlow (`training=False`) runs the
      phase convs instead: outside XLA, TensorFlow's CPU kernels ran the 256 px generator's
      forward in 0.88x the matmuls' time (on JAX the matmuls took 0.80x the phases').
    - "phases": four 2x2 phase convs, their zero padding folded in, interleaved; the
      gradients run over the padded windows (TF-XLA step 1.12x). Reflection padding (the
      input's edge repeated) always runs this way: there the windows hold real values.
    - "transposed" (zero padding): one 4x4 stride-2 transposed conv (output 2m + t - 1 reads
      input m with tap t, the sum of the 3x3's rows (2,), (1, 2), (0, 1), (0,)): the
      transposed conv's FLOPs but 2.4-3.3x its step time on XLA:CPU.
    """

    lowering: str = "dots"  # or "phases", "transposed" (zero padding; not saved)

    def __init__(self, filters, kernel_size=3, *, reflect: bool = False, **kwargs):
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        if self.kernel_size != (3, 3) or self.strides != (1, 1) or self.dilation_rate != (1, 1) \
                or self.groups != 1 or self.data_format != "channels_last":
            raise ValueError("PhaseResizeConv2D is a 3x3 stride-1 channels_last conv")
        self.reflect = bool(reflect)

    def get_config(self):
        return {**super().get_config(), "reflect": self.reflect}

    def _phase_kernels(self):
        """The four 2x2 phase kernels (a * 2 + b); inside `shared_phase_kernels`, once per
        kernel value."""
        return _shared_phase_kernels(self, self._split_kernel)

    def _split_kernel(self, value) -> list:
        """Sums of whole 3x3 rows, then of columns: 10 additions of (in, out) slices, where a
        (16 x 9) 0/1 matmul costs 288 multiply-adds per (in, out) pair, repeated per use on
        TensorFlow (it made the TF-XLA CycleGAN step 1.22x the transposed conv's FLOPs)."""
        def phases(k, axis):  # [phase 0's 2 taps, phase 1's], summed per _RESIZE_TAP_SUMS
            tap = [k[(slice(None),) * axis + (i,)] for i in range(3)]
            return [ops.stack([sum(tap[i] for i in taps) for taps in phase], axis=axis)
                    for phase in _RESIZE_TAP_SUMS]

        return [kernel for rows in phases(value, 0) for kernel in phases(rows, 1)]

    def _transposed_kernel(self):
        """The equal 4x4 stride-2 transposed conv's kernel, (4, 4, out, in): per axis taps
        (k2, k1 + k2, k0 + k1, k0), the flipped 3x3 padded before plus padded after.
        Transposed and flipped while 3x3, then padded and added: XLA counts 49 FLOPs per
        (in, out) pair for it and its gradient (77 as sums of slices), and at batch 1 the
        passes over these kernels, larger than the deep blocks' activations, are step time."""
        k = ops.flip(ops.flip(ops.transpose(self.kernel, (0, 1, 3, 2)), 0), 1)
        for axis in (0, 1):
            pad = lambda lo, hi: [[lo, hi] if a == axis else [0, 0] for a in range(4)]  # noqa: E731
            k = ops.pad(k, pad(1, 0)) + ops.pad(k, pad(0, 1))
        return k

    def call(self, inputs, training=None):
        h, w = inputs.shape[1], inputs.shape[2]
        if h is None or w is None:  # a dynamic size: upsample, then the 3x3 conv itself
            x = ops.repeat(ops.repeat(inputs, 2, axis=1), 2, axis=2)
            if self.reflect:
                x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
            outputs = ops.conv(x, self.kernel, strides=1, padding="valid" if self.reflect else "same")
            return self._finish(outputs)
        if self.lowering == "transposed" and not self.reflect:
            return self._finish(ops.conv_transpose(inputs, self._transposed_kernel(), strides=2, padding="same"))
        if self.lowering == "dots" and not self.reflect \
                and not (training is False and keras.backend.backend() == "tensorflow"):
            parts = _shared_phase_kernels(self, resize_dots.offset_kernels)
            return self._finish(resize_dots.resize_conv(inputs, parts, self.filters))
        kernels = self._phase_kernels()
        if self.reflect:  # the upsampled image's reflection by 1 = the input's edge repeated
            padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
        out_rows = []
        for a in (0, 1):
            out_cols = []
            for b in (0, 1):
                if self.reflect:
                    window = padded[:, a:a + h + 1, b:b + w + 1, :]
                else:  # rows m - 1 + a, m + a with zeros beyond the border
                    window = _window(inputs, (a - 1, b - 1), (2, 2))
                out_cols.append(ops.conv(window, kernels[2 * a + b], strides=1, padding="valid"))
            out_rows.append(ops.stack(out_cols, axis=3))  # (B, H, W, 2, C)
        return self._finish(ops.reshape(ops.stack(out_rows, axis=2), (-1, 2 * h, 2 * w, self.filters)))

    def _finish(self, outputs):
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, shape):
        double = lambda d: None if d is None else 2 * d  # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), self.filters)
