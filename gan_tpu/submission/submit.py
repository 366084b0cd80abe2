"""``gan-tpu submit images.zip -m MESSAGE``: validate, then submit with the official kaggle
package (credentials checked first, errors scrubbed of secrets: gan_tpu.kaggle.api)."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import INSTALL_HINT, error_line, find_credentials, load_api, one_line, scrub
from gan_tpu.kaggle.paths import COMPETITION as DEFAULT_COMPETITION


def submit(path: str, message: str, competition: str = DEFAULT_COMPETITION, *,
           validate: bool = True, out=None) -> object:
    """Validate ``path``, then submit it; returns the API's response object."""
    from gan_tpu.submission.validate import validate_zip

    out = out or sys.stdout
    if not message or not message.strip():
        raise UserError("a submission message is required: -m MESSAGE")
    # Cheap checks first: a missing package or credentials should not wait for validation.
    if importlib.util.find_spec("kaggle") is None:
        raise UserError(f"the kaggle package is not installed: {INSTALL_HINT}")
    creds = find_credentials()
    if validate:
        report = validate_zip(path)
        print("\n".join(report.lines()), file=out, flush=True)
        if not report.ok:
            raise UserError(f"not submitting {path}: it is not a valid submission (see above)")
    api = load_api()
    try:
        result = api.competition_submit(os.fspath(path), message, competition)
    except Exception as err:  # noqa: BLE001 - API errors (HTTP, network, validation) as one line
        raise UserError(f"Kaggle API error submitting {path} to {competition}: "
                        f"{error_line(err)}") from err
    text = scrub(one_line(getattr(result, "message", "") or ""))
    if text.lower().startswith("could not"):  # the package reports a failed upload this way
        raise UserError(f"Kaggle API error submitting {path} to {competition}: {text}")
    who = f" as {creds.username}" if creds.username else ""
    print(f"submitted {path} to {competition}{who}: {text or 'ok'}", file=out, flush=True)
    ref = getattr(result, "ref", None)
    if ref:
        print(f"submission ref: {ref}", file=out, flush=True)
    return result


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "submit",
        help="validate an images.zip and submit it to the competition",
        description="Validate a submission zip, then submit it with the official kaggle package "
        f"({INSTALL_HINT}). Credentials: kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle, "
        "or KAGGLE_USERNAME and KAGGLE_KEY.",
    )
    p.add_argument("zip", help="the zip to submit, e.g. images.zip")
    p.add_argument("-m", "--message", required=True, help="the submission's description")
    p.add_argument("--competition", default=DEFAULT_COMPETITION,
                   help=f"competition slug (default {DEFAULT_COMPETITION})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    submit(args.zip, args.message, args.competition)
    return 0
