# The .py twin of gpu-cyclegan.ipynb: `gan-tpu kernels --sync` writes the notebook from it.
# `make test-compat` executes the notebook itself in a Jupyter kernel, with GAN_TPU_SMOKE=1,
# against a stand-in /kaggle tree (both mount layouts) holding `gan-tpu sample-data`.

# %% [markdown]
# # Monet CycleGAN on Kaggle GPUs, with gan_tpu
#
# Trains the competition starter's U-Net CycleGAN with gan_tpu on the notebook's GPUs
# (`MirroredStrategy` over both T4s), inside the 5-hour budget (a budget guard stops training
# in time to generate), then writes `/kaggle/working/images.zip`, validates it and scores it
# locally.
#
# Attach before running: the competition data (`gan-getting-started`) and the `gan-tpu-wheel`
# dataset that `make kernel KERNEL=gpu-cyclegan` uploads. Internet stays off (a notebook with
# Internet on cannot be submitted). Optional: Kaggle's Inception network
# (`classify_image_graph_def.pb` from `inception-2015-12-05`, as a dataset or a Kaggle Model;
# `make kernel INCEPTION=OWNER/SLUG` attaches it): with it the run holds 256 photos out and keeps
# the generator with the best MiFID; without it every photo trains and the last generator paints.
#
# The GPU check comes first: the driver must show the GPUs and TensorFlow, which trains, must
# see them too; otherwise the notebook stops at once and says why, never a silent CPU run.

# %%
# 1. Install gan_tpu from the attached dataset (offline, no dependencies: the image has them).
#    Kaggle mounts it at /kaggle/input/datasets/<owner>/gan-tpu-wheel/ (or, in older
#    sessions, /kaggle/input/gan-tpu-wheel/): look a few folders down, not at one path.
import glob
import importlib
import importlib.util
import os
import subprocess
import sys

SMOKE = os.environ.get("GAN_TPU_SMOKE") == "1"  # CI: CPU, sample data, seconds
INPUT = "/kaggle/input"
wheels = sorted((p for depth in range(5) for p in glob.glob(INPUT + "/*" * depth + "/gan_tpu-*.whl")),
                key=os.path.basename)
if wheels:
    print(f"wheel: {wheels[-1]}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--force-reinstall", wheels[-1]], check=True)
    importlib.invalidate_caches()
elif importlib.util.find_spec("gan_tpu") is None:
    held = ", ".join(sorted(os.listdir(INPUT))) if os.path.isdir(INPUT) else "nothing"
    raise SystemExit(f"gan_tpu is not installed and no gan_tpu-*.whl is under {INPUT} (it holds: {held}): "
                     f"attach the gan-tpu-wheel dataset (make kernel KERNEL=gpu-cyclegan uploads it)")
import gan_tpu
from gan_tpu import kaggle as gk

print(f"gan_tpu {gan_tpu.__version__} from {os.path.dirname(gan_tpu.__file__)}")

# %%
# 2. The GPUs (the driver's, and TensorFlow's, asked in a subprocess) and the versions,
#    before anything imports Keras. No GPU, GPUs TensorFlow cannot see, or too old a
#    package: this stops here with the reason, never a silent 5-hour CPU run.
plan = gk.prepare_accelerator("gpu", smoke=SMOKE)

# %%
# 3. The run: the shipped `cyclegan` pipeline. budget.hours leaves about 15 minutes of the
#    5 hours for scoring; generation is inside the guard.
#    The data is found under /kaggle/input in either mount layout; the run folder
#    (checkpoints) goes to scratch space, not the notebook's output.
from gan_tpu.cli import main as gan_tpu_cli

WORK = gk.working_dir()
DATA = gk.competition_data()
INCEPTION = gk.inception_file(log=print)
PIPELINE = "cyclegan"
SETTINGS = [
    "train.batch_size=1",       # per replica: 2 T4s -> global batch 2
    'train.epochs="auto"',      # as many steps as the budget holds, the LR decay ending at the last
    "budget.hours=4.75",
    "submission.batch_size=16",
]
if INCEPTION:  # MiFID of 256 held-out photos every epoch (3,391 steps each); the best is exported
    SETTINGS += ["eval.every=1", f'eval.extractor="kaggle:{INCEPTION}"']
if not SMOKE:
    SETTINGS.append('runtime.device="gpu"')
if SMOKE:  # tiny everything, on `gan-tpu sample-data` laid out as Kaggle mounts the competition
    SETTINGS += ["data.image_size=32", "model.ngf=4", "model.ndf=4", "train.batch_size=2",
                 "train.epochs=1", "train.steps_per_epoch=2", "train.samples=2",
                 "budget.hours=0.25", "submission.allow_any_count=true", "eval.photos=2"]
SETTINGS += [f'data.monet="{DATA}"', f'data.photo="{DATA}"']
SETTINGS.append(f'runtime.backend="{plan.backend}"')  # the backend chosen above, explicitly
RUN_DIR = os.path.join(gk.scratch_dir(), PIPELINE)
ZIP = os.path.join(WORK, "images.zip")
print(f"data: {DATA}\nrun:  {RUN_DIR}\nzip:  {ZIP}")

# %%
# 4. Train under the budget guard, then translate every photo into images.zip; keep the
#    sample grids, plots, history and scores next to it.
sets = [arg for s in SETTINGS for arg in ("--set", s)]
rc = gan_tpu_cli(["run", PIPELINE, "--out", RUN_DIR, "--zip", ZIP, *sets])
gk.keep_outputs(RUN_DIR, WORK)
if rc != 0:
    raise SystemExit(f"gan-tpu run failed (exit status {rc}); see the messages above")

# %%
# 5. Validate the zip exactly as the competition's rules say (7,000-10,000 JPEGs, 256x256x3).
count_args = ["--allow-any-count"] if SMOKE else []
if gan_tpu_cli(["validate", ZIP, *count_args]) != 0:
    raise SystemExit(f"{ZIP} is not a valid submission")

# %%
# 6. Score it locally against the Monet paintings (MiFID, as Kaggle computes it) with the
#    attached Inception network. Without one, the `tiny` extractor only checks that
#    scoring runs: its figures say nothing about the leaderboard.
EXTRACTOR = f"kaggle:{INCEPTION}" if INCEPTION else "tiny"
quick = ["--kid-subsets", "0"] if SMOKE or not INCEPTION else []
rc = gan_tpu_cli(["score", ZIP, "--reference", DATA, "--extractor", EXTRACTOR,
                  "--json", os.path.join(WORK, "scores.json"), *quick])
if rc != 0:
    raise SystemExit("local scoring failed; the zip itself is valid")

# %% [markdown]
# ## Submit
# The competition takes notebook submissions only: Kaggle scores the `images.zip` this
# version wrote (Internet off). In the notebook viewer: *Output* > *Submit*. From a terminal:
# `gan-tpu submit --kernel OWNER/SLUG --version N -m "gan_tpu cyclegan on GPU"` (it downloads
# and validates this version's zip first); `make kernel KERNEL=gpu-cyclegan SUBMIT=1` pushes, waits
# and submits in one go. An uploaded zip (`kaggle competitions submit -f` alone) is refused.
# The checkpoints stay in scratch space (`/kaggle/temp` or `/tmp`, not saved with the notebook); the
# sample grids, plots, history and scores are kept next to `images.zip` in the Output tab.
