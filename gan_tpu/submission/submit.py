"""``gan-tpu submit``: the competition takes notebook submissions only, so a submission is a
notebook version: ``--kernel OWNER/SLUG [--version N]`` downloads that version's images.zip,
validates it and submits the version through the official client's code-competition route
(``competition_submit_code``, as ``kaggle competitions submit -k -v`` does); ``--run DIR``
first puts a local run's generator on Kaggle and paints it there (gan_tpu.kaggle.from_run).
A plain zip goes only to a file competition (``--competition``); for this one it is refused
with the right command. Credentials are checked first, errors scrubbed of secrets."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import INSTALL_HINT, error_line, find_credentials, load_api, loaded, one_line, scrub
from gan_tpu.kaggle.paths import COMPETITION as DEFAULT_COMPETITION
from gan_tpu.kaggle.versions import POLL_S, WAIT_S, ZIP, download_zip, latest_version, split_kernel, status_of, \
    wait_for

NOTEBOOK_ONLY = {DEFAULT_COMPETITION}  # competitions that score a notebook version's output only


def notebook_route(zip_path: str = "images.zip") -> str:
    return (f"{DEFAULT_COMPETITION} takes notebook submissions only, not an uploaded {zip_path}: "
            f"submit the notebook version that wrote it with `gan-tpu submit --kernel OWNER/SLUG "
            f"--version N -m MESSAGE` (or push one: `make kernel SUBMIT=1`; from a local run: "
            f"`make submit RUN=runs/NAME`)")


def _check_response(result, what: str) -> str:
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
    text = _check_response(result, f"{kernel}/{version} to {competition}")
    log(f"submitted {kernel} version {version} to {competition}: {text or 'ok'}")
    if getattr(result, "ref", None):
        log(f"submission ref: {result.ref}")
    return path


def submit_notebook(kernel: str, message: str, version: int | None = None, *,
                    competition: str = DEFAULT_COMPETITION, api=None, out=None) -> Path:
    """``gan-tpu submit --kernel``: the given (or newest) version, checked, then submitted."""
    out = out or sys.stdout
    log = lambda line: print(line, file=out, flush=True)  # noqa: E731
    split_kernel(kernel)
    _require_message(message)
    api = loaded(api)
    if version is None:
        version = latest_version(api, kernel)
        log(f"{kernel}: newest version {version}")
    with tempfile.TemporaryDirectory(prefix="gan-tpu-submit-") as folder:
        return submit_version(api, kernel, int(version), message, competition=competition, folder=folder, log=log)


def _require_message(message: str) -> None:
    if not message or not message.strip():
        raise UserError("a submission message is required: -m MESSAGE")


def submit(path: str, message: str, competition: str = DEFAULT_COMPETITION, *,
           validate: bool = True, out=None) -> object:
    """A file competition's route: validate ``path``, then upload it; returns the API's response."""
    out = out or sys.stdout
    if competition in NOTEBOOK_ONLY:
        raise UserError(notebook_route(path))
    _require_message(message)
    # Cheap checks first: a missing package or credentials should not wait for validation.
    if importlib.util.find_spec("kaggle") is None:
        raise UserError(f"the kaggle package is not installed: {INSTALL_HINT}")
    creds = find_credentials()
    if validate:
        validated(path, lambda line: print(line, file=out, flush=True))
    api = load_api()
    try:
        result = api.competition_submit(os.fspath(path), message, competition)
    except Exception as err:  # noqa: BLE001 - API errors (HTTP, network, validation) as one line
        raise UserError(f"Kaggle API error submitting {path} to {competition}: "
                        f"{error_line(err)}") from err
    text = _check_response(result, f"{path} to {competition}")
    who = f" as {creds.username}" if creds.username else ""
    print(f"submitted {path} to {competition}{who}: {text or 'ok'}", file=out, flush=True)
    ref = getattr(result, "ref", None)
    if ref:
        print(f"submission ref: {ref}", file=out, flush=True)
    return result


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit a Kaggle notebook version (--kernel), or a local run through a generation notebook (--run)",
        description=f"{DEFAULT_COMPETITION} scores the images.zip a notebook version wrote: --kernel OWNER/SLUG "
        "[--version N] downloads it, validates it and submits that version; --run DIR uploads the run's "
        "generator, paints images.zip in a Kaggle notebook, and submits that. A ZIP is submitted only to a file "
        f"competition (--competition). Needs the official kaggle package ({INSTALL_HINT}) and credentials: "
        "kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle, or KAGGLE_USERNAME and KAGGLE_KEY.",
    )
    p.add_argument("zip", nargs="?", help="a file competition's submission file")
    p.add_argument("--kernel", metavar="OWNER/SLUG", help="the notebook whose version to submit")
    p.add_argument("--version", type=int, metavar="N", help="its version (default: the newest)")
    p.add_argument("--run", metavar="DIR", help="a local run: its generator is painted on Kaggle, then submitted")
    p.add_argument("-m", "--message", required=True, help="the submission's description")
    p.add_argument("--competition", default=DEFAULT_COMPETITION,
                   help=f"competition slug (default {DEFAULT_COMPETITION})")
    p.add_argument("--wait-hours", type=float, default=WAIT_S / 3600,
                   help=f"--run: how long to wait for the notebook (default {WAIT_S / 3600:.0f})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = [name for name in ("zip", "kernel", "run") if getattr(args, name)]
    if len(chosen) != 1:
        raise UserError("give one of: --kernel OWNER/SLUG (a notebook version), --run DIR (a local run), "
                        "or ZIP (a file competition)")
    if args.version is not None and not args.kernel:
        raise UserError("--version goes with --kernel OWNER/SLUG")
    if args.kernel:
        submit_notebook(args.kernel, args.message, args.version, competition=args.competition)
    elif args.run:
        from gan_tpu.kaggle.from_run import submit_run

        _require_message(args.message)
        submit_run(args.run, args.message, competition=args.competition, timeout_s=args.wait_hours * 3600)
    else:
        submit(args.zip, args.message, args.competition)
    return 0
