"""Train step time and memory estimates for registered models, at their registered defaults.

    python bench/bench_train_step.py                          # the CycleGAN variants, 128 px
    python bench/bench_train_step.py --models ugatit,ugatit_light --size 256 --jit true
    python bench/bench_train_step.py --memory-only --size 256  # parameters and estimates only
    python bench/bench_train_step.py --models dcgan,wgan_gp,sngan,artgan --batch 8  # noise models
    python bench/bench_train_step.py --models cut,fastcut,stargan          # CUT, FastCUT, StarGAN
    python bench/bench_train_step.py --models unit,munit,drit  # the survey's translation zoo

For each model (built by name with its registered defaults, ``--set key=value`` to change
one): the median wall time of ``--repeats`` train steps after ``--warmup`` steps, on random
``(monet, photo)`` batches of ``--batch`` images, in a ``tf.function`` (XLA with ``--jit
true``; default: XLA on an accelerator, off on CPU, as training does).

Memory, per replica, at the bench's size and batch, float32 (``--precision
mixed_bfloat16`` halves activations):
- parameters, and their float32 state: weights + gradients + two Adam/AdaBelief slots
  = 16 bytes per trainable parameter;
- activations: every layer output of one forward pass of each network, summed, times
  the forward passes the heaviest player keeps for its backward pass. CycleGAN's
  generator player: 6 generator passes (2 translations, 2 cycles, 2 identities) and 2
  discriminator passes; a WGAN-GP critic player: 4 discriminator passes plus 2 for the
  penalty, counted twice (its double backward). An estimate, not a measurement: XLA
  fuses some outputs away and adds workspace of its own.
Models other than the CycleGAN family report parameters, per-network activations and
time; their pass counts are theirs to add (``PASSES`` below).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_MODELS = ("cyclegan", "cyclegan_resnet", "cyclegan_wgangp", "sn_cyclegan")


def _cyclegan_passes(model):
    """(generator passes, discriminator passes) kept by the heaviest player."""
    g_player = (6 if model.identity_weight else 4, 2)
    d_passes = 4 + (2 * 2 if model.adversarial == "wgan-gp" else 0)
    return max(g_player, (0, d_passes), key=lambda p: p[0] * 10 + p[1])  # G player dominates


def _noise_passes(model):
    """{network: forward passes kept} by the heaviest player of a noise model (see its losses):
    D/critic steps keep one generator pass (its variables are watched) and D on real + fake;
    WGAN-GP's penalty pass counts twice (double backward); ArtGAN's generator player keeps
    D on the fakes and encoder -> decoder on the real Monet + photo batch."""
    if type(model).__name__ == "ArtGAN":
        return {"znet": 1, "decoder": 3, "encoder": 3, "classifier": 1}
    if type(model).__name__ == "WGANGP":
        return {"generator": 1, "critic": 4}
    return {"generator": 1, "discriminator": 2}


PASSES = {"CycleGAN": _cyclegan_passes, "DCGAN": _noise_passes, "WGANGP": _noise_passes,
          "SNGAN": _noise_passes, "ArtGAN": _noise_passes, "BigGAN": _noise_passes}
# U-GAT-IT's generator player: 6 generator passes, 4 discriminator passes (global + local
# per domain). Bayesian CycleGAN's: 4 generator calls (2 translations, 2 reconstructions)
# and 4 discriminator calls, each on mc_samples x the batch (its small encoders left out).
PASSES.update(UGATIT=lambda m: (6, 4), UGATITLight=lambda m: (6, 4),
              BayesianCycleGAN=lambda m: (4 * m.mc_samples, 4 * m.mc_samples))
# UNIT's generator player: each private encoder runs on its image and on the translation
# into its domain (2), the shared encoder block on all 4; the shared decoder block on 6 codes
# (2 reconstructions, 2 translations, 2 cycles), each private decoder on 3; D on the fakes.
# MUNIT's: each content and style encoder on its image and the translation into its domain,
# each decoder on a reconstruction and a translation (+ the cycle if its weight is set).
PASSES.update(
    UNIT=lambda m: {"enc_monet": 2, "enc_photo": 2, "enc_shared": 4, "dec_shared": 6, "dec_monet": 3,
                    "dec_photo": 3, "d_monet": 1, "d_photo": 1},
    MUNIT=lambda m: {**{f"{part}_{d}": 2 for part in ("content", "style") for d in ("monet", "photo")},
                     "decoder_monet": 2 + bool(m.cycle_weight), "decoder_photo": 2 + bool(m.cycle_weight),
                     "d_monet": 1, "d_photo": 1},
    # DRIT++'s: each generator runs on 4x the batch (translation, self-reconstruction, two
    # random codes) and once for the cross-cycle; encoders on images and translations.
    DRIT=lambda m: {"content_monet": 2, "content_photo": 2, "content_shared": 4, "attr_monet": 3, "attr_photo": 3,
                    "gen_monet": 5, "gen_photo": 5, "gen_shared": 10, "d_monet": 1, "d_photo": 1,
                    "d2_monet": 2, "d2_photo": 2, "content_d": 2})


def _cut_passes(model):
    """CUT's generator player (the heavier): the generator on photos (+ paintings with
    identity NCE), its encoder up to the last NCE layer on those images and on their
    translations, D on the translated photos."""
    groups = 2 if model.nce_identity else 1
    share = layer_outputs(model._encoder) / layer_outputs(model.generator)
    return {"generator": groups * (1 + 2 * share), "discriminator": 1}


def _stargan_passes(model):
    """StarGAN works on 2B images (photos and paintings): the generator player keeps two
    generator passes (translation, reconstruction) and one D pass; the critic player D on
    real + fake and the penalty's pass, counted twice (double backward). The heavier one."""
    players = [{"generator": 4, "discriminator": 2}, {"discriminator": 4 + 2 * 2}]
    return max(players, key=lambda p: sum(layer_outputs(getattr(model, n)) * k for n, k in p.items()))


PASSES.update(CUT=_cut_passes, StarGAN=_stargan_passes)


def layer_outputs(net) -> int:
    """Elements of every layer output of one forward pass at batch 1 (inputs excluded)."""
    import keras

    total = 0
    for layer in net.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        total += sum(math.prod(o.shape[1:]) for o in outputs)
    return total


def memory(model, batch: int, act_bytes: int) -> dict:
    nets = {name: net for name, net in model.networks.items() if net.trainable_variables}
    # a network made of the others (ArtGAN's generator = decoder(znet)) is not counted twice
    ids = {n: {id(v) for v in net.trainable_variables} for n, net in nets.items()}
    nets = {n: net for n, net in nets.items()
            if not any(ids[m] < ids[n] for m in ids)}  # < : a proper subset
    params = sum(net.count_params() for net in nets.values())
    acts = {name: layer_outputs(net) for name, net in nets.items()}
    out = {"parameters": params, "params_by_network": {n: net.count_params() for n, net in nets.items()},
           "state_gb": params * 16 / 1e9, "activations_per_pass": acts}
    passes = PASSES.get(type(model).__name__)
    counts = passes(model) if passes else None
    if isinstance(counts, dict):  # {network: forward passes kept}
        out["activation_gb"] = sum(acts[n] * k for n, k in counts.items()) * batch * act_bytes / 1e9
        out["total_gb"] = out["state_gb"] + out["activation_gb"]
    elif passes:
        g, d = counts
        g_one = max(v for k, v in acts.items() if k.startswith("g_"))
        d_one = max(v for k, v in acts.items() if k.startswith("d_"))
        out["activation_gb"] = (g * g_one + d * d_one) * batch * act_bytes / 1e9
        out["total_gb"] = out["state_gb"] + out["activation_gb"]
    return out


def step_time(model, size: int, batch: int, warmup: int, repeats: int, jit: bool) -> list[float]:
    import numpy as np
    import tensorflow as tf

    model.compile(jit_compile=jit)
    rng = np.random.default_rng(0)
    data = tuple(tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)) for _ in range(2))
    step = tf.function(model.train_step, jit_compile=jit)
    for _ in range(warmup):
        logs = step(data)
        float(next(iter(logs.values())))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        logs = step(data)
        float(next(iter(logs.values())))  # wait for the device
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registered names")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--jit", choices=("auto", "true", "false"), default="auto")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model option, TOML value")
    p.add_argument("--memory-only", action="store_true", help="parameters and estimates, no timing")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)

    import tomllib

    import keras
    import tensorflow as tf

    from gan_tpu import models

    keras.mixed_precision.set_global_policy(args.precision)
    gpu = bool(tf.config.list_logical_devices("GPU"))
    jit = gpu if args.jit == "auto" else args.jit == "true"
    options = {k: tomllib.loads(f"v = {v}")["v"] for k, v in (s.split("=", 1) for s in args.set)}
    act_bytes = 4 if args.precision == "float32" else 2
    device = tf.config.list_logical_devices("GPU")[0].name if gpu else f"CPU ({os.cpu_count()} cores)"
    print(f"# {device}, {args.size} px, batch {args.batch}, jit {jit}, {args.precision}")
    print("| model | parameters | weights+grads+Adam (GB) | activations est. (GB) | step (s, median) |")
    print("|---|---|---|---|---|")
    results = []
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        model = models.build(name, image_size=args.size,
                             **{k: v for k, v in options.items() if k in models.defaults(name)})
        row = {"model": name, "size": args.size, "batch": args.batch, "jit": jit,
               "precision": args.precision, "device": device}
        row.update(memory(model, args.batch, act_bytes))
        if not args.memory_only:
            row["step_times_s"] = step_time(model, args.size, args.batch, args.warmup, args.repeats, jit)
            row["step_s"] = statistics.median(row["step_times_s"])
        results.append(row)
        act = f"{row['activation_gb']:.2f}" if "activation_gb" in row else "n/a"
        step = f"{row['step_s']:.3f}" if "step_s" in row else "-"
        print(f"| {name} | {row['parameters'] / 1e6:.1f} M | {row['state_gb']:.2f} | {act} | {step} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
