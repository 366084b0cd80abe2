# The .py twin of gan-tpu-generate.ipynb: `gan-tpu kernels --sync` writes the notebook from it,
# and CI runs it on CPU with GAN_TPU_SMOKE=1 (a tiny untrained generator, sample photos).

# %% [markdown]
# # gan_tpu: paint images.zip from a generator trained elsewhere
#
# The competition scores the `images.zip` a notebook version writes, so a generator trained on
# your own GPU box is submitted through this notebook: `make submit RUN=runs/NAME` uploads the
# run's `generator.keras` and `budget.json` (the training time its budget guard recorded) as the
# dataset `gan-tpu-generator`, pushes this notebook, waits for it, and submits the version.
# It translates every photo offline (Internet off) and prints training + generation time
# against the 5-hour GPU budget.

# %%
# 1. Install gan_tpu from the attached dataset (offline, no dependencies: the image has them).
import glob
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

STARTED = time.monotonic()
SMOKE = os.environ.get("GAN_TPU_SMOKE") == "1"  # CI: CPU, sample data, seconds
INPUT = "/kaggle/input"  # the wheel: /kaggle/input/datasets/<owner>/gan-tpu-wheel/ (older: /kaggle/input/gan-tpu-wheel/)
wheels = sorted((p for depth in range(5) for p in glob.glob(INPUT + "/*" * depth + "/gan_tpu-*.whl")),
                key=os.path.basename)
if wheels:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--force-reinstall", wheels[-1]], check=True)
    importlib.invalidate_caches()
elif importlib.util.find_spec("gan_tpu") is None:
    raise SystemExit("gan_tpu is not installed: attach the gan-tpu-wheel dataset (make submit uploads it)")
import gan_tpu
from gan_tpu import kaggle as gk

print(f"gan_tpu {gan_tpu.__version__} from {os.path.dirname(gan_tpu.__file__)}")

# %%
# 2. The GPU, before anything imports Keras (generation of 7,038 photos takes minutes on a T4).
plan = gk.prepare_accelerator("gpu", smoke=SMOKE)

# %%
# 3. The generator and its training record (the gan-tpu-generator dataset), and the photos.
from gan_tpu.cli import main as gan_tpu_cli

WORK = gk.working_dir()
if SMOKE:  # a tiny untrained CycleGAN generator and its record, on `gan-tpu sample-data`
    from gan_tpu import models

    DATA = os.path.join(WORK, "sample-data")
    assert gan_tpu_cli(["sample-data", "--out", DATA, "--monet", "2", "--photo", "8"]) == 0
    folder = os.path.join(WORK, "gan-tpu-generator")
    os.makedirs(folder, exist_ok=True)
    models.build("cyclegan", image_size=32, ngf=4, ndf=4).translator.save(os.path.join(folder, "generator.keras"))
    with open(os.path.join(folder, "budget.json"), "w") as fh:
        json.dump({"run": "smoke", "train_seconds": 60.0, "budget_seconds": 18000.0, "steps": 2}, fh)
    GENERATOR = os.path.join(folder, "generator.keras")
else:  # the photos: the competition data under /kaggle/input, in either mount layout
    DATA = gk.competition_data()
    GENERATOR = gk.find_input(("gan-tpu-generator/generator.keras", "generator.keras"))
if not GENERATOR:
    raise SystemExit("no generator.keras under /kaggle/input: attach the gan-tpu-generator dataset "
                     "(make submit RUN=runs/NAME uploads it)")
with open(os.path.join(os.path.dirname(GENERATOR), "budget.json")) as fh:
    RECORD = json.load(fh)
print(f"generator: {GENERATOR}\nphotos:    {DATA}")
print(f"trained:   {RECORD['train_seconds'] / 3600:.2f} h of a {RECORD['budget_seconds'] / 3600:.2f} h budget "
      f"({RECORD.get('steps')} steps, run {RECORD.get('run')})")

# %%
# 4. Translate every photo into /kaggle/working/images.zip, then validate it.
ZIP = os.path.join(WORK, "images.zip")
count_args = ["--allow-any-count"] if SMOKE else []
if gan_tpu_cli(["generate", "--checkpoint", GENERATOR, "--photos", DATA, "--out", ZIP, "--no-progress",
                *count_args]) != 0:
    raise SystemExit("gan-tpu generate failed; see the messages above")
if gan_tpu_cli(["validate", ZIP, *count_args]) != 0:
    raise SystemExit(f"{ZIP} is not a valid submission")

# %%
# 5. The budget: training (recorded on the GPU box) + this notebook, against 5 hours on GPU.
generation_s = time.monotonic() - STARTED
total_s = RECORD["train_seconds"] + generation_s
BUDGET_S = 5 * 3600.0
with open(os.path.join(WORK, "budget.json"), "w") as fh:
    json.dump(dict(RECORD, generation_seconds=generation_s, total_seconds=total_s, gpu_budget_seconds=BUDGET_S),
              fh, indent=2)
print(f"budget: training {RECORD['train_seconds'] / 3600:.2f} h + generation {generation_s / 60:.1f} min "
      f"= {total_s / 3600:.2f} h of {BUDGET_S / 3600:.0f} h on GPU"
      f"{'' if total_s <= BUDGET_S else ' -- OVER the budget'}")

# %% [markdown]
# ## Submit
# `make submit RUN=runs/NAME` has already waited for this version, validated its `images.zip`
# and submitted it. By hand: `gan-tpu submit --kernel OWNER/gan-tpu-generate --version N -m MSG`,
# or in the notebook viewer: *Output* > *Submit*. `budget.json` beside the zip keeps the times.
