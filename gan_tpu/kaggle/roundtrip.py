"""``make kernel`` end to end: push the wheel and a notebook, wait for the version it started,
download its images.zip, validate it and, when asked, submit that version."""
from __future__ import annotations

import time
from pathlib import Path

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import loaded
from gan_tpu.kaggle.notebooks import KERNELS_DIR
from gan_tpu.kaggle.push import Pushed, push_kernel
from gan_tpu.kaggle.versions import POLL_S, WAIT_S
from gan_tpu.kaggle.code_submit import submit_version

OUTPUT_DIR = "kaggle_output"  # where downloaded outputs go: kaggle_output/<slug>-v<N>/images.zip


def push_and_collect(name: str, *, wheel_dir: str = "dist", upload_wheel: bool = True, dataset: str | None = None,
                     inception: str | None = None, submit: bool = False, message: str = "", competition: str | None = None,
                     out_dir: str | Path = OUTPUT_DIR, timeout_s: float = WAIT_S, poll_s: float = POLL_S,
                     root: Path | str = KERNELS_DIR, api=None, sleep=time.sleep, clock=time.monotonic,
                     log=print) -> tuple[Pushed, Path]:
    """Push ``kernels/<name>``, wait for its version, download and validate its images.zip, and
    submit that version when `submit`. Returns (the pushed version, the downloaded zip)."""
    if submit and not (message or "").strip():
        raise UserError("a submission message is required: MESSAGE=... (gan-tpu kernel NAME --submit -m MESSAGE)")
    api = loaded(api)
    pushed = push_kernel(name, wheel_dir=wheel_dir, upload_wheel=upload_wheel, dataset=dataset, root=root,
                         api=api, sleep=sleep, log=log, inception=inception)
    if not pushed.version:
        raise UserError(f"Kaggle did not say which version of {pushed.kernel} it started; when it has run: "
                        f"gan-tpu submit --kernel {pushed.kernel} --version N -m MESSAGE")
    folder = Path(out_dir) / f"{pushed.kernel.split('/')[1]}-v{pushed.version}"
    folder.mkdir(parents=True, exist_ok=True)
    extra = {} if competition is None else {"competition": competition}
    path = submit_version(api, pushed.kernel, pushed.version, message, folder=folder, wait=True, timeout_s=timeout_s,
                          poll_s=poll_s, submit=submit, sleep=sleep, clock=clock, log=log, **extra)
    return pushed, path
