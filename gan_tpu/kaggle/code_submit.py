"""The code-competition submission of one notebook version: waited for (or required complete),
its images.zip downloaded and validated, then ``competition_submit_code`` (the official
client's ``kaggle competitions submit -k OWNER/SLUG -v N``)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import error_line, one_line, scrub
from gan_tpu.kaggle.paths import COMPETITION as DEFAULT_COMPETITION
from gan_tpu.kaggle.versions import POLL_S, WAIT_S, ZIP, download_zip, status_of, wait_for


def check_response(result, what: str) -> str:
    text = scrub(one_line(getattr(result, "message", "") or ""))
    if text.lower().startswith("could not"):  # the package reports a failed upload this way
        raise UserError(f"Kaggle API error submitting {what}: {text}")
    return text


def validated(path: str | os.PathLike, log=print) -> None:
    """Validate a submission zip, its report printed; a one-line refusal when it is not valid."""
    from gan_tpu.submission.validate import validate_zip

    report = validate_zip(os.fspath(path))
    for line in report.lines():
        log(line)
    if not report.ok:
        raise UserError(f"not submitting {path}: it is not a valid submission (see above)")


def submit_version(api, kernel: str, version: int, message: str, *, competition: str = DEFAULT_COMPETITION,
                   folder: str | os.PathLike, wait: bool = False, timeout_s: float = WAIT_S, poll_s: float = POLL_S,
                   submit: bool = True, sleep=time.sleep, clock=time.monotonic, log=print) -> Path:
    """Version `version` of notebook `kernel`: waited for (or required complete), its images.zip
    downloaded into `folder` and validated, then submitted unless `submit` is False. Returns the zip."""
    if wait:
        wait_for(api, kernel, version, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep, clock=clock, log=log)
    else:
        status, failure = status_of(api, kernel, version)
        if status != "complete":
            raise UserError(f"{kernel}/{version} is {status}{': ' + failure if failure else ''}; "
                            f"only a complete version can be submitted")
    path = download_zip(api, kernel, version, folder)
    log(f"downloaded {kernel}/{version}'s {ZIP} to {path}")
    validated(path, log)
    if not submit:
        log(f"not submitted; to submit it: gan-tpu submit --kernel {kernel} --version {version} -m MESSAGE")
        return path
    try:
        result = api.competition_submit_code(ZIP, message, competition, kernel, version)
    except Exception as err:  # noqa: BLE001 - HTTP, network, validation errors as one line
        raise UserError(f"Kaggle API error submitting {kernel}/{version} to {competition}: "
                        f"{error_line(err)}") from None
    text = check_response(result, f"{kernel}/{version} to {competition}")
    log(f"submitted {kernel} version {version} to {competition}: {text or 'ok'}")
    if getattr(result, "ref", None):
        log(f"submission ref: {result.ref}")
    return path
