"""Kaggle: where the data is, the notebooks' accelerator check, `gan-tpu data`, kernels and their push.

* :mod:`~gan_tpu.kaggle.paths`: the competition data found under /kaggle/input in either
  mount layout (or, on an older TPU node, its GCS copy), the working and scratch folders,
  attached files (the wheel, an Inception network).
* :mod:`~gan_tpu.kaggle.accelerator`: :func:`prepare_accelerator`, the notebooks' check of
  the TPU or GPUs (the choice itself is :mod:`gan_tpu.platform`'s), ``KERAS_BACKEND`` set.
* :mod:`~gan_tpu.kaggle.outputs`: :func:`keep_outputs`, the run's grids, plots, history and
  scores copied next to images.zip (checkpoints stay in scratch space).
* :mod:`~gan_tpu.kaggle.notebooks`: kernel metadata and the notebooks written from their
  ``.py`` twins (``gan-tpu kernels --sync``).
* :mod:`~gan_tpu.kaggle.download`: ``gan-tpu data``, a complete copy or none.
* :mod:`~gan_tpu.kaggle.push`: ``gan-tpu kernel NAME``, the wheel then the kernel.
* :mod:`~gan_tpu.kaggle.versions`, :mod:`~gan_tpu.kaggle.code_submit`,
  :mod:`~gan_tpu.kaggle.roundtrip`, :mod:`~gan_tpu.kaggle.from_run`: a notebook version waited
  for, its images.zip downloaded, validated and submitted (the competition is notebook-only);
  ``make kernel SUBMIT=1``; ``make submit RUN=...`` through ``kernels/gan-tpu-generate``.
* :mod:`~gan_tpu.kaggle.api`: the ``kaggle`` package, credentials checked first, its
  errors as one line with no secret in it.

Nothing here imports TensorFlow or Keras: the TPU notebook imports this package before it
chooses the Keras backend. The notebooks use the names below as ``gan_tpu.kaggle.<name>``.
"""
from gan_tpu.kaggle.accelerator import MACHINE_SHAPES, prepare_accelerator
from gan_tpu.kaggle.download import COMPETITION_COUNTS, check_layout, download_data
from gan_tpu.kaggle.notebooks import (DATASET_SLUG, KERNELS_DIR, OWNER_PLACEHOLDER, check_metadata, kernel_dir,
                                      kernel_names, notebook_in_sync, notebook_json, read_metadata, script_cells,
                                      staged_metadata, sync_notebook, twin_path)
from gan_tpu.kaggle.outputs import keep_outputs
from gan_tpu.kaggle.paths import (COMPETITION, KAGGLE_DATA, KAGGLE_INPUT, KAGGLE_WORKING, LOCAL_DATA, attached_inputs,
                                  competition_data, data_root, find_competition_data, find_input, inception_file,
                                  input_listing, kaggle_gcs_path, kaggle_input, score_extractor, scratch_dir,
                                  working_dir)
from gan_tpu.kaggle.push import find_wheel, push_kernel, push_wheel
from gan_tpu.platform import (TPU_FIX, BackendPlan, TpuFacts, choose_tpu_backend, framework_gpus,
                              tensorflow_tpu_capable, tpu_facts, tpu_kind)

__all__ = [
    "BackendPlan", "COMPETITION", "COMPETITION_COUNTS", "DATASET_SLUG", "KAGGLE_DATA", "KAGGLE_INPUT",
    "KAGGLE_WORKING", "KERNELS_DIR", "LOCAL_DATA", "MACHINE_SHAPES", "OWNER_PLACEHOLDER", "TPU_FIX", "TpuFacts",
    "attached_inputs", "check_layout", "check_metadata", "choose_tpu_backend", "competition_data", "data_root",
    "download_data", "find_competition_data", "find_input", "find_wheel", "framework_gpus", "inception_file",
    "input_listing", "kaggle_gcs_path", "kaggle_input", "keep_outputs", "kernel_dir", "kernel_names",
    "notebook_in_sync", "notebook_json", "prepare_accelerator", "push_kernel", "push_wheel", "read_metadata",
    "score_extractor", "scratch_dir", "script_cells", "staged_metadata", "sync_notebook",
    "tensorflow_tpu_capable", "tpu_facts", "tpu_kind", "twin_path", "working_dir",
]
