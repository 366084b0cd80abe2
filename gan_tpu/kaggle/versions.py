"""A notebook version on Kaggle: its number, waiting for it to finish, its log's tail, and its
``images.zip`` downloaded (the ``kaggle`` package's ``kernels_*`` calls, errors as one line)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import error_line

DONE, FAILED = "complete", ("error", "cancel_requested", "cancel_acknowledged")
WAIT_S, POLL_S = 9 * 3600.0, 60.0  # a version runs 12 h at most on Kaggle; ours plan 3 h (TPU) or 5 h (GPU)
ZIP = "images.zip"


def split_kernel(kernel: str) -> tuple[str, str]:
    """OWNER/SLUG -> (owner, slug); a one-line error otherwise."""
    parts = (kernel or "").split("/")
    if len(parts) != 2 or not all(parts):
        raise UserError(f"--kernel {kernel!r}: expected OWNER/SLUG, as in kaggle.com/code/OWNER/SLUG")
    return parts[0], parts[1]


def latest_version(api, kernel: str) -> int:
    """The number of ``kernel``'s newest version, as the API lists the owner's notebooks."""
    owner, slug = split_kernel(kernel)
    try:
        found = api.kernels_list(page_size=100, search=slug, user=owner) or []
    except Exception as err:  # noqa: BLE001
        raise UserError(f"Kaggle API error listing {owner}'s notebooks: {error_line(err)}") from None
    for meta in found:
        if meta is not None and str(getattr(meta, "ref", "")).lower() == kernel.lower():
            number = int(getattr(meta, "current_version_number", 0) or 0)
            if number > 0:
                return number
    raise UserError(f"cannot tell {kernel}'s latest version from the Kaggle API: pass --version N "
                    f"(the number on the notebook's Version tab)")


def status_of(api, kernel: str, version: int) -> tuple[str, str]:
    """(status name in lower case, failure message) of one version."""
    ref = f"{kernel}/{version}"
    try:
        response = api.kernels_status(ref)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"Kaggle API error reading {ref}'s status: {error_line(err)}") from None
    status = getattr(response, "status", response)
    name = str(getattr(status, "name", status)).lower().rsplit(".", 1)[-1]
    return name, str(getattr(response, "failure_message", "") or "")


def log_tail(api, kernel: str, version: int, lines: int = 15) -> list[str]:
    """The last `lines` lines of a version's log (Kaggle serves it as JSON records)."""
    try:
        text = api.kernels_logs(f"{kernel}/{version}") or ""
    except Exception as err:  # noqa: BLE001 - the tail is a courtesy: say why it is missing
        return [f"(no log: {error_line(err)})"]
    try:
        records = json.loads(text)
        if isinstance(records, list):
            text = "".join(str(r.get("data", "")) for r in records if isinstance(r, dict))
    except ValueError:
        pass
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]


def wait_for(api, kernel: str, version: int, *, timeout_s: float = WAIT_S, poll_s: float = POLL_S,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
             log=print) -> None:
    """Poll version `version` of `kernel` until it completes: a progress line per poll; the
    failure message and the log's tail as the error when it fails; an error past `timeout_s`."""
    ref, start = f"{kernel}/{version}", clock()
    while True:
        status, failure = status_of(api, kernel, version)
        waited = clock() - start
        if status == DONE:
            log(f"{ref}: complete after {waited:.0f} s of waiting")
            return
        if status in FAILED:
            tail = "\n".join(f"    {ln}" for ln in log_tail(api, kernel, version))
            raise UserError(f"{ref} ended with status {status}{': ' + failure if failure else ''}; "
                            f"the log's last lines:\n{tail}")
        if waited >= timeout_s:
            raise UserError(f"{ref} is still {status} after {waited:.0f} s; wait for it on kaggle.com/code/{kernel}, "
                            f"then: gan-tpu submit --kernel {kernel} --version {version} -m MESSAGE")
        log(f"{ref}: {status}, {waited:.0f} s waited (checking every {poll_s:.0f} s, up to {timeout_s:.0f} s)")
        sleep(poll_s)


def download_zip(api, kernel: str, version: int, folder: str | Path) -> Path:
    """Download version `version`'s ``images.zip`` into `folder`; returns its path."""
    ref, folder = f"{kernel}/{version}", Path(folder)
    try:
        files, _ = api.kernels_output(ref, str(folder), file_pattern=rf"(^|/){re.escape(ZIP)}$", force=True,
                                      quiet=True)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"Kaggle API error downloading {ref}'s output: {error_line(err)}") from None
    found = [Path(f) for f in files if Path(f).name == ZIP and Path(f).is_file()]
    if not found:
        raise UserError(f"{ref} wrote no {ZIP} (its output: {', '.join(Path(f).name for f in files) or 'nothing'})")
    return found[0]
