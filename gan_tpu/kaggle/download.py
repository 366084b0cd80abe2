"""``gan-tpu data``: the competition's zip through the official ``kaggle`` package, unpacked
and checked in a hidden folder, renamed into place only when complete."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Mapping

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import error_line, loaded
from gan_tpu.kaggle.paths import COMPETITION, LOCAL_DATA
from gan_tpu.record_names import count_in_name

# The full competition, for the record: counts a complete download must hold.
COMPETITION_COUNTS = {"monet": 300, "photo": 7038}


def check_layout(root: str | os.PathLike, expect: Mapping[str, int] | None = None) -> dict[str, int]:
    """Check a data folder has Kaggle's layout, consistently; returns {domain: image count}.

    Each domain needs ``<domain>_tfrec/*-N.tfrec`` and ``<domain>_jpg/*.jpg`` holding the
    same number of images (a half-unpacked folder fails here), and ``expect``'s counts.
    """
    root = Path(root)
    counts = {}
    for domain in ("monet", "photo"):
        records = sorted((root / f"{domain}_tfrec").glob("*.tfrec"))
        jpgs = list((root / f"{domain}_jpg").glob("*.jpg"))
        if not records:
            raise UserError(f"{root}: no {domain}_tfrec/*.tfrec")
        named = [count_in_name(p.name) for p in records]
        if None in named:
            raise UserError(f"{root / f'{domain}_tfrec'}: record names lack their -N count")
        in_records = sum(named)
        if len(jpgs) != in_records:
            raise UserError(f"{root}: {domain}_jpg holds {len(jpgs)} images but the records name {in_records}")
        if expect and domain in expect and in_records != expect[domain]:
            raise UserError(f"{root}: {in_records} {domain} images, expected {expect[domain]}")
        counts[domain] = in_records
    return counts


def download_data(dest: str = LOCAL_DATA, *, competition: str = COMPETITION, force: bool = False,
                  expect: Mapping[str, int] | None = None, api=None, log=print) -> dict[str, int]:
    """Download and unpack the competition into ``dest``; returns {domain: count}.

    The zip lands in ``.<name>.download/`` beside ``dest`` (kept after a failure so the
    kaggle package can resume), is unpacked and checked in ``.<name>.partial/``, and only
    then renamed to ``dest``: a folder at ``dest`` is always complete.
    """
    if expect is None and competition == COMPETITION:
        expect = COMPETITION_COUNTS
    dest = Path(dest)
    if dest.exists() and not force:
        try:
            counts = check_layout(dest, expect)
        except UserError as err:
            raise UserError(f"{dest} exists but is not a complete copy ({err}): "
                            f"remove it or use --force") from None
        log(f"{dest}: already complete ({counts['monet']} Monet paintings, {counts['photo']} photos)")
        return counts
    api = loaded(api)
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    download = parent / f".{dest.name}.download"
    partial = parent / f".{dest.name}.partial"
    download.mkdir(exist_ok=True)
    log(f"downloading {competition} into {download}")
    try:
        api.competition_download_files(competition, path=str(download), force=False, quiet=False)
    except Exception as err:  # noqa: BLE001 - HTTP, network, 403 rules not accepted
        hint = " (accept the competition's rules on its Kaggle page first)" if "403" in str(err) else ""
        raise UserError(f"downloading {competition} failed: {error_line(err)}{hint}") from None
    archives = sorted(download.glob("*.zip"))
    if not archives:
        raise UserError(f"downloading {competition} left no .zip in {download}")
    archive = archives[0]
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad:
                raise zipfile.BadZipFile(f"bad CRC in {bad}")
            zf.extractall(partial)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        archive.unlink(missing_ok=True)  # an incomplete zip: start over next time
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(f"{archive}: incomplete or corrupt download ({err}); run again") from None
    try:
        counts = check_layout(partial, expect)
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if dest.exists():  # --force: swap in the new copy, then drop the old one
        old = parent / f".{dest.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(partial, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, dest)
    shutil.rmtree(download, ignore_errors=True)
    log(f"{dest}: {counts['monet']} Monet paintings, {counts['photo']} photos")
    return counts
