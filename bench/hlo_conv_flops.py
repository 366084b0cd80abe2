"""Where a compiled train step's FLOPs go: every convolution of its optimized HLO with the
multiply-adds XLA's cost analysis counts for it (taps on padding and on the holes of an
input dilation skipped, as `HloCostAnalysis::HandleConvolution` does), grouped by the op
it came from (forward conv, input gradient, kernel gradient), plus the whole module's FLOPs.

    KERAS_BACKEND=tensorflow python bench/hlo_conv_flops.py --size 64 --set ngf=32 --set ndf=32 \
        --mode transpose --mode resize
    python bench/hlo_conv_flops.py --hlo step.hlo          # an HLO text already dumped

With --dump DIR the optimized HLO of each mode is written to DIR/<backend>_<mode>_<size>.hlo.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_DEF = re.compile(r"%([\w.-]+) = \w+\[([\d,]*)\]")
_CONV = re.compile(r"%([\w.-]+) = \w+\[([\d,]*)\]\S* convolution\((?:\S+ )?%([\w.-]+), (?:\S+ )?%([\w.-]+)\), "
                   r"window=\{([^}]*)\}, dim_labels=(\w+)_(\w+)->(\w+)(.*)")


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d]


def _window(text: str, n: int) -> dict:
    """`size=3x3 stride=2x2 pad=1_1x0_1 lhs_dilate=2x2` -> per-dimension lists."""
    fields = dict(item.split("=") for item in text.split())
    out = {"size": [int(s) for s in fields["size"].split("x")]}
    for key in ("stride", "lhs_dilate", "rhs_dilate"):
        out[key] = [int(s) for s in fields[key].split("x")] if key in fields else [1] * n
    pads = fields.get("pad", "x".join(["0_0"] * n)).split("x")
    out["pad_lo"] = [int(p.split("_")[0]) for p in pads]
    return out


def valid_taps(in_size, out_size, k, stride, pad_lo, lhs_dilate, rhs_dilate) -> int:
    """(output, kernel) position pairs that read a real input element, one spatial dimension."""
    count = 0
    for ki in range(k):
        for oi in range(out_size):
            pos = oi * stride - pad_lo + ki * rhs_dilate
            if pos >= 0 and pos % lhs_dilate == 0 and pos // lhs_dilate < in_size:
                count += 1
    return count


def conv_macs(out_shape, lhs_shape, rhs_shape, window, lhs_labels, rhs_labels, out_labels, groups=1) -> int:
    """Multiply-adds XLA counts for one convolution (2 FLOPs each)."""
    spatial = [c for c in lhs_labels if c.isdigit()]
    w = _window(window, len(spatial))
    taps = 1
    for i, c in enumerate(spatial):
        taps *= valid_taps(lhs_shape[lhs_labels.index(c)], out_shape[out_labels.index(c)],
                           rhs_shape[rhs_labels.index(c)], w["stride"][i], w["pad_lo"][i],
                           w["lhs_dilate"][i], w["rhs_dilate"][i])
    batch, feat_in = lhs_shape[lhs_labels.index("b")], lhs_shape[lhs_labels.index("f")]
    return batch * taps * (feat_in // groups) * out_shape[out_labels.index("f")]


def _origin(rest: str) -> tuple[str, str]:
    """(op, layer) a convolution came from: TF's op_type or JAX's primitive path, and the
    Keras layer's name without the model's prefix (`g_monet_up4_conv` -> `g_up4_conv`)."""
    op_type = re.search(r'op_type="([^"]*)"', rest)
    name = re.search(r'op_name="([^"]*)"', rest)
    name = name.group(1) if name else ""
    if op_type:
        kind = op_type.group(1)
    else:  # JAX: a transpose(jvp(...)) is a gradient; which operand it is for, XLA does not say
        kind = "gradient" if "transpose(" in name else "forward"
    layer = re.search(r"/([gd])_(?:monet|photo)_([a-z]\w*?)(?:_\d+)?/", name)
    return kind, f"{layer.group(1)}_{layer.group(2)}" if layer else "?"


def convolutions(text: str) -> list[dict]:
    shapes = {m.group(1): m.group(2) for m in _DEF.finditer(text)}
    rows = []
    for line in text.splitlines():
        m = _CONV.search(line)
        if not m:
            continue
        name, out, lhs, rhs, window, ll, rl, ol, rest = m.groups()
        lhs, rhs = shapes[lhs], shapes[rhs]
        groups = re.search(r"feature_group_count=(\d+)", rest)
        macs = conv_macs(_dims(out), _dims(lhs), _dims(rhs), window, ll, rl, ol, int(groups.group(1)) if groups else 1)
        rows.append({"name": name, "out": out, "lhs": lhs, "rhs": rhs, "window": window, "labels": f"{ll}_{rl}->{ol}",
                     "macs": macs, "origin": _origin(rest)})
    return rows


def module_flops(text: str) -> float:
    import jax
    import jaxlib._hlo as hlo
    from jax._src.lib import xla_client

    return float(xla_client._xla.hlo_module_cost_analysis(jax.devices()[0].client, hlo.hlo_module_from_text(text))["flops"])


def step_hlo(mode: str, size: int, sets: list[str]) -> str:
    from bench_backends import Worker

    from gan_tpu.layers import PhaseResizeConv2D

    PhaseResizeConv2D.lowering = "dots"  # a "resize_phases" worker before sets another
    args = argparse.Namespace(model="cyclegan", size=size, batch=1, set=[*sets, f"upsample={mode}"])
    worker = Worker("", args)
    if worker.jax:
        import jax

        m = worker.model
        state = ([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                 [v.value for v in m.optimizer.variables], [v.value for v in m.metrics_variables])
        return jax.jit(m.train_step).lower(state, worker.data).compile().as_text()
    import tensorflow as tf

    data = tuple(tf.constant(d) for d in worker.data)
    return tf.function(worker.model.train_step, jit_compile=True).experimental_get_compiler_ir(data)(stage="optimized_hlo")


def report(label: str, text: str) -> dict:
    """Print and return {(layer, op): MACs} over every conv of the module (both generators'
    and discriminators' uses summed; layers named without the domain)."""
    rows = convolutions(text)
    total = sum(r["macs"] for r in rows)
    print(f"== {label}: {len(rows)} convolutions, {2 * total / 1e9:.4f} GFLOP in convolutions", flush=True)
    table = collections.Counter()
    for r in rows:
        table[r["origin"][1], r["origin"][0]] += r["macs"]
    for (layer, kind), macs in sorted(table.items()):
        print(f"  {layer:16s} {kind:22s} {2 * macs / 1e6:9.2f} MFLOP")
    return table


def compare(base: dict, other: dict) -> None:
    print("== difference per layer (second minus first), MFLOP")
    for layer in sorted({k[0] for k in base} | {k[0] for k in other}):
        b = sum(v for k, v in base.items() if k[0] == layer)
        o = sum(v for k, v in other.items() if k[0] == layer)
        if b != o:
            print(f"  {layer:16s} {2 * b / 1e6:9.2f} -> {2 * o / 1e6:9.2f}  ({2 * (o - b) / 1e6:+.2f})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hlo", action="append", default=[])
    p.add_argument("--mode", action="append", default=[])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--dump")
    p.add_argument("--total", action="store_true", help="also XLA's cost analysis of each whole module")
    args = p.parse_args(argv)
    texts = [(path, open(path).read()) for path in args.hlo]
    for mode in args.mode:
        text = step_hlo(mode, args.size, args.set)
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            backend = os.environ.get("KERAS_BACKEND", "tensorflow")
            with open(os.path.join(args.dump, f"{backend}_{mode}_{args.size}.hlo"), "w") as fh:
                fh.write(text)
        texts.append((mode, text))
    tables = [report(label, text) for label, text in texts]
    for table in tables[1:]:
        compare(tables[0], table)
    if args.total:  # XLA's own count of the whole module (needs JAX)
        for label, text in texts:
            print(f"== {label}: whole module {module_flops(text) / 1e9:.4f} GFLOP (XLA cost analysis)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
