"""The side-by-side benchmark suite behind `make bench` and `make bench-quick`: writes BENCHMARKS.md.

Each section measures gan_tpu against the way a user would otherwise do it (the
competition starter notebook's design, re-created in bench/), on this machine, and says
the median of at least 3 runs, the ratio to that anchor, the machine and the command that
reproduces it:

* input:      bench/bench_input.py        images/s, decode + augment + batch, vs batch-1 map-only reading
* train_step: bench/bench_train_step.py   step time per model at 128 px (256 px with --device on an accelerator),
                                          vs the starter's step (persistent tape, four optimizers) re-created here
* generate:   bench/bench_generate.py     generation + zip images/s, vs eager calls + PIL saves + make_archive
* score:      bench/bench_score.py        MiFID of 10,000 x 2,048 features vs the SciPy transcription,
                                          and the float32 vs float64 error
* backends:   bench/bench_backends.py     CycleGAN (and U-GAT-IT, CUT, full run) step + generation on JAX vs
                                          TensorFlow + XLA: time, compiled vs analytic FLOPs, % of peak

BENCHMARKS.md is made of sections between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
markers: a run rewrites only the sections it ran and keeps every other one as it was, so
numbers reported from other machines (merged by hand under their own names, e.g.
`train_step@h100`) survive. Each section runs in its own process.

    python bench/bench_suite.py [--quick] [--only input,generate] [--out BENCHMARKS.md] [--device]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTIONS = ("input", "train_step", "generate", "score", "backends")
TITLES = {
    "input": "Input pipeline: images/s (decode + augment + batch)",
    "train_step": "Train step time at 128 px",
    "generate": "Generation + zip: images/s",
    "score": "Scoring: 10,000 x 2,048 features, and float32 vs float64",
    "backends": "Keras backends: JAX vs TensorFlow + XLA, time and FLOPs per step",
    # written by bench/bench_quality.py (`make bench-quality`, `make bench-monet`)
    "quality": "Paired-truth style benchmark (quality, not speed)",
    "monet": "A real Monet run (quality, not speed)",
    # the same, measured pinned to one core (`--section`)
    "quality-1core": "Paired-truth style benchmark on one pinned core (quality, not speed)",
    "monet-1core": "A real Monet run on one pinned core (quality, not speed)",
    "zoo-1core": "Translation zoo on the paired-truth benchmark, one pinned core (quality, not speed)",
    "noise": "Noise models on the Monet paintings (quality, not speed)",
}
HEADER = """# Benchmarks

gan_tpu side by side with the approach users would otherwise take: the competition starter
notebook's published design, re-created in `bench/` (batch-1 map-only tf.data reading; one
persistent tape and four optimizers per step; one eager generator call and one PIL save
per image, then `shutil.make_archive`; SciPy `sqrtm` scoring). Every figure is the median
of at least 3 runs on the machine named in its section, with its ratio to that anchor
(above 1: gan_tpu is faster) and the command that reproduces it.

Written by `make bench` (full) or `make bench-quick` (under 5 minutes on a 2-core CPU) via
`bench/bench_suite.py`. Each section sits between `<!-- bench:NAME -->` markers and is
rewritten only by a run of that section (`python bench/bench_suite.py --only NAME`);
sections from other machines are added under their own names (e.g. `train_step@h100`)
and kept.
"""
# (quick, full) arguments per section's own script
ARGS = {
    "input": (["--images", "2000", "--repeats", "3"], ["--images", "6000", "--repeats", "5"]),
    "train_step": (["--models", "cyclegan", "--size", "128", "--repeats", "3"], ["--size", "128", "--repeats", "5"]),
    "generate": (["--model", "demo", "--count", "200", "--repeats", "3"],
                 ["--model", "all", "--count", "1000", "--repeats", "3"]),
    "score": (["--repeats", "3"], ["--repeats", "5"]),
    # one bench_backends.py run per entry (bench_backends' own arguments)
    "backends": ([["--size", "32", "--set", "ngf=8", "--set", "ndf=8", "--steps", "3", "--gen-count", "8", "--gen-repeats", "3"]],
                 [["--size", "64", "--set", "ngf=32", "--set", "ndf=32", "--steps", "5", "--gen-count", "8"],
                  ["--size", "128", "--set", "ngf=32", "--set", "ndf=32", "--steps", "5", "--gen-count", "0"],
                  ["--model", "ugatit_light", "--size", "64", "--set", "ngf=16", "--set", "ndf=16",
                   "--set", "global_layers=6", "--steps", "5", "--gen-count", "0"],  # 7 layers need 96 px
                  ["--model", "cut", "--size", "64", "--set", "ngf=16", "--set", "ndf=16", "--steps", "5",
                   "--gen-count", "0"]]),
}


def machine() -> str:
    """This machine in words: CPU model and count, accelerators, TensorFlow version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    accel = []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        accel = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        pass
    if os.path.exists("/dev/accel0") or os.environ.get("TPU_NAME"):
        accel.append("TPU")
    gpus = f", {len(accel)} x {accel[0]}" if accel else ", no accelerator"
    try:
        from importlib.metadata import version

        tfv = next(version(d) for d in ("tensorflow", "tensorflow-cpu", "tensorflow-tpu") if _has(d))
    except StopIteration:
        tfv = "?"
    return f"{os.cpu_count()} x {cpu}{gpus}; Python {platform.python_version()}, TensorFlow {tfv}"


def _has(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


def _script(name: str) -> str:
    return os.path.join("bench", f"bench_{name}.py")


def _run(cmd: list[str], timeout: float) -> tuple[int, str, float]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + ("\n" + proc.stderr if proc.returncode else "")
        return proc.returncode, out, time.perf_counter() - start
    except subprocess.TimeoutExpired as err:
        return 124, (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or ""), timeout


def _tail(text: str, lines: int = 12) -> str:
    keep = [ln for ln in text.splitlines() if ln.strip() and not re.match(r"^(I0000|W0000|E0000|WARNING: All)", ln)]
    return "\n".join(keep[-lines:])


def _command(parts: list[str]) -> str:
    return "PYTHONPATH=. python " + " ".join(shlex.quote(p) for p in parts)


# --------------------------------------------------------------------------- sections


def section_input(args_: list[str], timeout: float) -> tuple[list[str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "input.json")
        cmd = [_script("input"), *args_]
        rc, out, _ = _run([sys.executable, *cmd, "--json", out_json], timeout)
        if rc == 3:
            return [f"Skipped: {_tail(out, 1)}"], _command(cmd)
        if rc != 0:
            return ["Failed:", "```", _tail(out), "```"], _command(cmd)
        with open(out_json) as fh:
            result = json.load(fh)
    sys.path.insert(0, HERE)
    from bench_input import markdown

    body = [f"{result['images']} images per run through each reader, Monet and photo streams zipped "
            f"(real 256x256 JPEGs from ../shared/realdata in Kaggle's record layout: "
            f"{result['data']['monet']} Monet, {result['data']['photo']} photos); median of "
            f"{result['repeats']}. Anchor: the starter notebook's reading (decode + scale, batch 1). "
            f"\"starter + augment\" does gan_tpu's augmentation the starter's way: the same work per image.",
            "", *markdown(result)]
    return body, _command(cmd)


def starter_step_times(size: int, repeats: int, warmup: int = 1) -> list[float]:
    """The starter notebook's train step on gan_tpu's `cyclegan` networks (registered defaults):
    one persistent tape over all four losses, then four optimizers, one per network."""
    import keras
    import numpy as np
    import tensorflow as tf

    from gan_tpu import models

    keras.utils.set_random_seed(0)
    model = models.build("cyclegan", image_size=size)
    m_gen, p_gen, m_disc, p_disc = model.g_monet, model.g_photo, model.d_monet, model.d_photo
    nets = (m_gen, p_gen, m_disc, p_disc)
    opts = [keras.optimizers.Adam(2e-4, beta_1=0.5) for _ in nets]
    for opt, net in zip(opts, nets):
        opt.build(net.trainable_variables)
    bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
    lam = 10.0

    def disc_loss(real, fake):
        return (tf.reduce_mean(bce(tf.ones_like(real), real)) + tf.reduce_mean(bce(tf.zeros_like(fake), fake))) * 0.5

    def gen_loss(fake):
        return tf.reduce_mean(bce(tf.ones_like(fake), fake))

    @tf.function
    def step(real_monet, real_photo):
        with tf.GradientTape(persistent=True) as tape:
            fake_monet = m_gen(real_photo, training=True)
            cycled_photo = p_gen(fake_monet, training=True)
            fake_photo = p_gen(real_monet, training=True)
            cycled_monet = m_gen(fake_photo, training=True)
            same_monet = m_gen(real_monet, training=True)
            same_photo = p_gen(real_photo, training=True)
            disc_real_monet, disc_real_photo = m_disc(real_monet, training=True), p_disc(real_photo, training=True)
            disc_fake_monet, disc_fake_photo = m_disc(fake_monet, training=True), p_disc(fake_photo, training=True)
            cycle = lam * (tf.reduce_mean(tf.abs(real_monet - cycled_monet)) +
                           tf.reduce_mean(tf.abs(real_photo - cycled_photo)))
            m_gen_loss = gen_loss(disc_fake_monet) + cycle + lam * 0.5 * tf.reduce_mean(tf.abs(real_monet - same_monet))
            p_gen_loss = gen_loss(disc_fake_photo) + cycle + lam * 0.5 * tf.reduce_mean(tf.abs(real_photo - same_photo))
            m_disc_loss = disc_loss(disc_real_monet, disc_fake_monet)
            p_disc_loss = disc_loss(disc_real_photo, disc_fake_photo)
        for loss, net, opt in zip((m_gen_loss, p_gen_loss, m_disc_loss, p_disc_loss), nets, opts):
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables))
        return m_gen_loss

    rng = np.random.default_rng(0)
    batch = [tf.constant(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)) for _ in range(2)]
    for _ in range(warmup):
        float(step(*batch))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(step(*batch))  # wait for the device
        times.append(time.perf_counter() - start)
    return times


def section_train_step(args_: list[str], timeout: float, device: bool) -> tuple[list[str], str]:
    args_ = list(args_)
    if device:  # an accelerator: the competition's own size (bench_train_step uses XLA there)
        args_[args_.index("--size") + 1] = "256"
    size = int(args_[args_.index("--size") + 1])
    repeats = int(args_[args_.index("--repeats") + 1])
    cmd = [_script("train_step"), *args_]
    anchor_cmd = [os.path.join("bench", "bench_suite.py"), "--starter-step", str(size), str(repeats)]
    if not os.path.exists(os.path.join(ROOT, _script("train_step"))):
        return ["Not measured: bench/bench_train_step.py is not in this checkout yet."], _command(cmd)
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "steps.json")
        rc, out, _ = _run([sys.executable, *cmd, "--json", out_json], timeout)
        if rc != 0:
            return ["Failed:", "```", _tail(out), "```"], _command(cmd)
        with open(out_json) as fh:
            rows = json.load(fh)
    rc, out, _ = _run([sys.executable, *anchor_cmd], timeout)
    if rc != 0:
        return ["Starter step failed:", "```", _tail(out), "```"], _command(cmd)
    starter = json.loads(out.strip().splitlines()[-1])
    anchor = statistics.median(starter)
    first = rows[0] if rows else {}
    lines = [f"One train step on a batch of 1 at {size} px ({first.get('device', '?')}, XLA "
             f"{'on' if first.get('jit') else 'off'}, {first.get('precision', 'float32')}), median of {repeats} after "
             f"a warm-up step. Anchor: the starter notebook's step (one persistent tape, four optimizers) "
             f"on the same `cyclegan` networks, re-created in bench/bench_suite.py (`{_command(anchor_cmd)}`). "
             f"Models other than `cyclegan` are compared with that same anchor: a cost, not a like-for-like.",
             "", "| model | parameters | step s (median) | runs s | vs starter step |", "|---|---|---|---|---|",
             f"| starter's step, U-Net CycleGAN (anchor) | {rows[0]['parameters'] / 1e6 if rows and rows[0]['model'] == 'cyclegan' else 0:.1f} M | "
             f"{anchor:.3f} | {', '.join(f'{t:.3f}' for t in starter)} | 1.00x |"]
    for row in rows:
        if "step_s" not in row:
            continue
        runs = ", ".join(f"{t:.3f}" for t in row["step_times_s"])
        lines.append(f"| {row['model']} | {row['parameters'] / 1e6:.1f} M | {row['step_s']:.3f} | {runs} | "
                     f"{anchor / row['step_s']:.2f}x |")
    return lines, _command(cmd)


_GEN_MED = re.compile(r"^(\w+)\s+(starter|ours \w+ \w+)\s*: process ([\d.]+) s \(([\d.]+)x the starter's\), "
                      r"generate\+zip ([\d.]+) s \(([\d.]+) img/s\)(?:; bare forward ([\d.]+) img/s; generate at "
                      r"(\d+) % of it \(whole call\), (\d+) % \(after the first batch\), (\d+) % \(CPU time)?")
_GEN_HEAD = re.compile(r"^(\d+) photos, (\d+) CPUs, medians of (\d+)")


def generate_table(out: str) -> list[str]:
    """bench_generate.py's summary lines as a table (empty if it printed none)."""
    rows, head = [], None
    for line in out.splitlines():
        if m := _GEN_MED.match(line.strip()):
            rows.append(m)
        elif m := _GEN_HEAD.match(line.strip()):
            head = (int(m[1]), int(m[3]))
    if not rows:
        return []
    lines = [f"{head[0]} photos (256x256 JPEGs) per run, each run a fresh process; median of {head[1]}."
             if head else "", "",
             "| generator | way | generate + zip s | images/s | whole process s | vs starter (process) "
             "| bare forward img/s | generate / bare (whole call, after the first batch, CPU) |",
             "|---|---|---|---|---|---|---|---|"]
    for m in rows:
        if m[2] == "starter":
            label, bare, share = "starter (eager + PIL + make_archive)", "-", "-"
        else:
            upsample, backend = m[2].split()[1:]
            label, bare = f"gan_tpu write_submission ({upsample}, {backend})", m[7]
            share = f"{m[8]} %, {m[9]} %, {m[10]} %"
        lines.append(f"| {m[1]} | {label} | {m[5]} | {m[6]} | {m[3]} | {m[4]}x | {bare} | {share} |")
    return lines


def section_generate(args_: list[str], timeout: float) -> tuple[list[str], str]:
    cmd = [_script("generate"), *args_]
    try:
        import PIL  # noqa: F401 - the starter way saves with PIL
    except ImportError:
        return ["Not measured: the starter way needs Pillow (`pip install pillow`; `make bench` installs it)."], \
            _command(cmd)
    rc, out, _ = _run([sys.executable, *cmd], timeout)
    if rc != 0:
        return ["Failed:", "```", _tail(out), "```"], _command(cmd)
    table = generate_table(out)
    return (table or ["```", _tail(out, 40), "```"]), _command(cmd)


def score_figures(repeats: int) -> dict:
    """Time of MiFID on 10,000 x 2,048 generated vs 300 reference features: the SciPy
    transcription of Kaggle's scorer against gan_tpu.metrics in float64 and float32, with
    the errors against SciPy (bench_score.py's sets and timer)."""
    sys.path.insert(0, HERE)
    import tensorflow as tf

    import bench_score as bs
    from gan_tpu import metrics
    from gan_tpu.metrics import kaggle_numpy as kn

    gen, ref = bs.feats(10_000, 0), bs.feats(300, 1, 0.35, 0.01)
    metrics.mifid(gen[:2000], ref)
    metrics.mifid(gen[:2000], ref, dtype=tf.float32)  # trace both once
    rows = {}
    for name, fn in (("scipy", lambda: kn.mifid(gen, ref)),
                     ("float64", lambda: metrics.mifid(gen, ref)),
                     ("float32", lambda: metrics.mifid(gen, ref, dtype=tf.float32))):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            got = fn()
            times.append(time.perf_counter() - start)
        rows[name] = {"median": statistics.median(times), "runs": times,
                      "fid": float(got["fid"]), "distance": float(got["distance"])}
    want = rows["scipy"]
    for name in ("float64", "float32"):
        rows[name]["fid_rel_err"] = abs(rows[name]["fid"] - want["fid"]) / abs(want["fid"])
        rows[name]["distance_abs_err"] = abs(rows[name]["distance"] - want["distance"])
    return rows


def score_table(rows: dict, repeats: int) -> list[str]:
    anchor = rows["scipy"]["median"]
    lines = [f"MiFID of 10,000 generated vs 300 reference 2,048-d features (random, seeded as in "
             f"bench_score.py); median of {repeats}. Errors are against the SciPy transcription of "
             f"Kaggle's scorer (np.cov float64, scipy.linalg.sqrtm).", "",
             "| implementation | median s | runs s | vs SciPy | FID | FID rel. error | distance abs. error |",
             "|---|---|---|---|---|---|---|"]
    labels = {"scipy": "SciPy transcription (anchor)", "float64": "gan_tpu.metrics, float64",
              "float32": "gan_tpu.metrics, float32 (TPU precision)"}
    for name, row in rows.items():
        runs = ", ".join(f"{t:.2f}" for t in row["runs"])
        err = ("-", "-") if name == "scipy" else (f"{row['fid_rel_err']:.1e}", f"{row['distance_abs_err']:.1e}")
        lines.append(f"| {labels[name]} | {row['median']:.2f} | {runs} | {anchor / row['median']:.2f}x | "
                     f"{row['fid']:.4f} | {err[0]} | {err[1]} |")
    return lines


def section_score(args_: list[str], timeout: float, quick: bool) -> tuple[list[str], str]:
    repeats = int(args_[args_.index("--repeats") + 1])
    cmd = [os.path.join("bench", "bench_suite.py"), "--score-figures", str(repeats)]
    rc, out, _ = _run([sys.executable, *cmd], timeout)
    if rc != 0:
        return ["Failed:", "```", _tail(out), "```"], _command(cmd)
    rows = json.loads(out.strip().splitlines()[-1])
    body = score_table(rows, repeats)
    commands = _command(cmd)
    if not quick:  # the full precision table (7 sets) and extractor throughput
        full = [_script("score"), *args_]
        rc, out, _ = _run([sys.executable, *full], timeout)
        body += ["", f"`{_command(full)}`:", ""]
        body += [_tail(out, 200)] if rc == 0 else ["```", _tail(out), "```"]
    return body, commands


def section_backends(runs: list[list[str]], timeout: float) -> tuple[list[str], str]:
    sys.path.insert(0, HERE)
    from bench_backends import markdown

    results, commands = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, run_args in enumerate(runs):
            cmd = [_script("backends"), *run_args]
            commands.append(_command(cmd))
            out_json = os.path.join(tmp, f"backends{i}.json")
            rc, out, _ = _run([sys.executable, *cmd, "--json", out_json], timeout)
            if rc != 0:
                return ["Failed:", "```", _tail(out), "```"], "; ".join(commands)
            with open(out_json) as fh:
                results.append(json.load(fh))
    body = ["Each backend's whole train step compiled by XLA on this CPU (TensorFlow `jit_compile=True`, "
            "JAX `jax.jit`, one worker process each, alive together), steps timed alternately TF-XLA / JAX "
            "so both see the same load; batch 1, float32. Compiled FLOPs: XLA's cost analysis of each "
            "backend's optimized HLO; analytic: conv/dense multiply-adds per network use (x3 trained, "
            "x2 input gradient only, x1 forward only), see bench/bench_backends.py.", "", *markdown(results)]
    return body, "; ".join(commands)


# --------------------------------------------------------------------------- the file


def render(name: str, body: list[str], command: str, seconds: float, where: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([f"<!-- bench:{name} -->", f"## {TITLES.get(name, name)}", "",
                      f"Machine: {where}. Measured {stamp} in {seconds:.0f} s.  ",
                      f"Reproduce: `{command}`", "", *body, f"<!-- /bench:{name} -->"])


_SECTION = re.compile(r"<!-- bench:([\w@.\-]+) -->\n.*?<!-- /bench:\1 -->", re.S)


def merge(existing: str, sections: dict[str, str]) -> str:
    """BENCHMARKS.md with `sections` replaced where they are; new ones appended (in SECTIONS
    order); everything else, marked or not (prose, hand-written tables), kept as it is."""
    if not (existing or "").strip():
        order = [s for s in SECTIONS if s in sections] + sorted(k for k in sections if k not in SECTIONS)
        return HEADER + "\n" + "\n\n".join(sections[k] for k in order) + "\n"
    present = {m.group(1) for m in _SECTION.finditer(existing)}
    text = _SECTION.sub(lambda m: sections.get(m.group(1), m.group(0)), existing)
    new = [s for s in SECTIONS if s in sections and s not in present]
    new += sorted(k for k in sections if k not in SECTIONS and k not in present)
    return text.rstrip("\n") + "".join(f"\n\n{sections[k]}" for k in new) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer images and runs: under 5 minutes on 2 CPU cores")
    p.add_argument("--only", help=f"comma-separated sections ({', '.join(SECTIONS)}); default all")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--device", action="store_true", help="on an accelerator: train step at 256 px")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per section (default 1800)")
    p.add_argument("--score-figures", type=int, metavar="REPEATS", help=argparse.SUPPRESS)
    p.add_argument("--starter-step", type=int, nargs=2, metavar=("SIZE", "REPEATS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.starter_step:
        print(json.dumps(starter_step_times(*args.starter_step)))
        return 0
    if args.score_figures:
        print(json.dumps(score_figures(args.score_figures)))
        return 0
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        p.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    where = machine()
    done = {}
    print(f"benchmarks on {where}{' (quick)' if args.quick else ''}: {', '.join(names)}", flush=True)
    for name in names:
        section_args = ARGS[name][0 if args.quick else 1]
        start = time.perf_counter()
        if name == "input":
            body, command = section_input(section_args, args.timeout)
        elif name == "train_step":
            body, command = section_train_step(section_args, args.timeout, args.device)
        elif name == "generate":
            body, command = section_generate(section_args, args.timeout)
        elif name == "backends":
            body, command = section_backends(section_args, args.timeout)
        else:
            body, command = section_score(section_args, args.timeout, args.quick)
        seconds = time.perf_counter() - start
        done[name] = render(name, body, command, seconds, where)
        print(f"\n{done[name]}\n", flush=True)
        existing = open(args.out).read() if os.path.exists(args.out) else ""
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:  # after every section: a long run keeps what it measured
            fh.write(merge(existing, {name: done[name]}))
        os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
