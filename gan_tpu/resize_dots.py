"""Nearest x2 + 3x3 conv (zero padding) as shifted matmuls over exactly the real source pixels.

Output pixel (2m + a, 2n + b) reads source (m + dy, n + dx) for dy in {a - 1, a}, dx in
{b - 1, b}: the four phases' 16 taps share 9 offsets (dy, dx) in {-1, 0, 1}^2. Per offset,
one matmul of the source pixels that exist there (rows max(0, dy) .. H - 1 + min(0, dy),
columns likewise) with the kernels of the phases that read that offset, side by side; each
phase's result is padded into place and the four results summed per phase, then interleaved.
Multiply-adds per image, forward and in each gradient (the gradient of a slice is a pad and
of a pad a slice): (4H - 2)(4W - 2) Cin Cout, a 4x4 stride-2 transposed conv's true count,
with none spent on the zero border (a phase conv's gradients run over its padded window).
"""
from __future__ import annotations

from keras import ops

# Per axis the 3x3 kernel's taps padded and added, [k0, k0 + k1, k1 + k2, k2], are the taps
# at source offsets -1, 0, 0, +1 of output phases 0, 1, 0, 1 (phase a reads source rows
# m - 1 + a and m + a: a = 0 with rows {0} and {1, 2}, a = 1 with {0, 1} and {2}).
OFFSET_PHASES = {-1: (0,), 0: (1, 0), 1: (1,)}


def _taps(k, axis: int) -> list:
    """[k0, k0 + k1, k1 + k2, k2] along `axis` (length 3): a split (its gradient is a
    concatenation, where TensorFlow's for per-tap slices is a full-size pad each, summed) and
    two adds."""
    k0, k1, k2 = ops.split(k, 3, axis=axis)
    return [k0, k0 + k1, k1 + k2, k2]


def offset_kernels(kernel) -> dict:
    """{(dy, dx): ([(a, b), ...], (in, phases * out) kernel)} from the 3x3 (3, 3, in, out)
    kernel: 6 + 8 additions per (in, out) pair."""
    n_in = kernel.shape[2]
    taps = [_taps(row, 1) for row in _taps(kernel, 0)]  # [row tap][column tap]: (1, 1, in, out)
    first = {-1: 0, 0: 1, 1: 3}  # OFFSET_PHASES[d] are taps first[d], first[d] + 1, ...
    parts = {}
    for dy, rows in OFFSET_PHASES.items():
        for dx, cols in OFFSET_PHASES.items():
            kernels = [taps[first[dy] + i][first[dx] + j] for i in range(len(rows)) for j in range(len(cols))]
            flat = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, axis=3)
            parts[dy, dx] = ([(a, b) for a in rows for b in cols], ops.reshape(flat, (n_in, -1)))
    return parts


def resize_conv(inputs, parts: dict, filters: int):
    """(B, H, W, in) -> (B, 2H, 2W, filters): nearest x2, then the 3x3 conv with zero
    padding whose `offset_kernels` are `parts`. H and W static."""
    h, w = inputs.shape[1], inputs.shape[2]
    phase_sums = {}
    for (dy, dx), (phases, kernel) in parts.items():
        if h - abs(dy) <= 0 or w - abs(dx) <= 0:  # a 1-pixel input has no neighbour there
            continue
        src = inputs[:, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx), :]
        y = ops.tensordot(src, kernel, axes=[[3], [0]])
        pads = [[0, 0], [max(0, -dy), max(0, dy)], [max(0, -dx), max(0, dx)], [0, 0]]
        for phase, part in zip(phases, ops.split(y, len(phases), axis=3) if len(phases) > 1 else [y]):
            if dy or dx:
                part = ops.pad(part, pads)
            phase_sums[phase] = part if phase not in phase_sums else phase_sums[phase] + part
    rows = [ops.stack([phase_sums[a, b] for b in (0, 1)], axis=3) for a in (0, 1)]  # (B, H, W, 2, C)
    return ops.reshape(ops.stack(rows, axis=2), (-1, 2 * h, 2 * w, filters))
