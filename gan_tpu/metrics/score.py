"""``gan-tpu score``: FID, memorization distance, MiFID, KID (and IS) of a zip against Monet paintings.

    gan-tpu score images.zip --reference DATA/monet_tfrec \
        [--extractor kaggle[:PATH] | inception_v3[:WEIGHTS] | tiny] [--cache DIR] [--json OUT]
        [--checkerboard N] [--photos PATH]

The reference is read once per extractor and content, then cached as an .npz of
its features and statistics (``--cache``, default ``$GAN_TPU_CACHE`` or
``~/.cache/gan_tpu``); that .npz (or one from ``--save-reference``) can be given
as ``--reference`` itself. TensorFlow is imported only when the command runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

from gan_tpu.errors import UserError

EXTRACTOR_HELP = "kaggle[:PATH] (Kaggle's Inception graph, .pb or .tgz; the default), " \
                 "inception_v3[:WEIGHTS] (Keras InceptionV3, weights file or imagenet), or tiny (tests/demo)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="local FID / memorization distance / MiFID / KID of images against Monet paintings",
        description="Score generated images the way Kaggle does (MiFID), against a local reference set.")
    p.add_argument("generated", help="images.zip to score (a folder of JPEGs or .tfrec files also works)")
    p.add_argument("--reference", required=True, metavar="PATH",
                   help="Monet paintings: a data root, monet_tfrec/, a JPG folder, a .tfrec, a zip, tfds:NAME[:SPLIT], "
                        "or a reference .npz (from --save-reference or the cache)")
    p.add_argument("--extractor", default="kaggle", metavar="SPEC", help=EXTRACTOR_HELP)
    p.add_argument("--cache", metavar="DIR", help="reference feature cache (default $GAN_TPU_CACHE or ~/.cache/gan_tpu)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference cache")
    p.add_argument("--save-reference", metavar="NPZ", help="also write the reference features/statistics here")
    p.add_argument("--json", metavar="OUT", help="write the scores as JSON to this file")
    p.add_argument("--batch", type=int, default=64, help="images per batch, over all replicas (default 64)")
    p.add_argument("--eps", type=float, default=0.1, help="memorization threshold (Kaggle: 0.1)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (0 skips KID; default 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    p.add_argument("--checkerboard", type=int, default=1000, metavar="N",
                   help="checkerboard index (not a Kaggle figure) over the first N generated images "
                        "(default 1000; 0 skips it)")
    p.add_argument("--photos", metavar="PATH",
                   help="photos (a data root, photo_tfrec/, a JPG folder, ...) whose checkerboard index "
                        "is printed as the baseline")
    p.add_argument("--precision", choices=("auto", "float64", "float32"), default="auto",
                   help="statistics precision (auto: float64, float32 under a TPUStrategy)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- reference
def _content_digest(files) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def reference_cache_path(cache_dir: str, extractor_key: str, content: str) -> str:
    key = hashlib.sha256(f"{extractor_key}\0{content}".encode()).hexdigest()[:24]
    return os.path.join(cache_dir, f"reference-{extractor_key.split('-')[0]}-{key}.npz")


def _load_npz(path: str, extractor):
    import numpy as np

    from gan_tpu.metrics.scoring import Reference

    try:
        with np.load(path, allow_pickle=False) as data:
            made_by = str(data["extractor"]) if "extractor" in data.files else None
        ref = Reference.load(path)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: not a reference .npz ({str(err).splitlines()[0]})") from None
    if made_by and made_by != extractor.key:
        raise UserError(f"{path}: made with extractor {made_by}, not {extractor.key}")
    if ref.dim != extractor.dim:
        raise UserError(f"{path}: {ref.dim}-d statistics, but extractor {extractor.name} gives {extractor.dim}-d features")
    if ref.n < 2:
        raise UserError(f"{path}: the reference needs at least 2 images, has {ref.n}")
    return ref


def _save_npz(ref, path: str, extractor_key: str) -> None:
    import numpy as np

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    arrays = {"mu": ref.mu, "sigma": ref.sigma, "n": np.int64(ref.n), "extractor": np.str_(extractor_key)}
    if ref.features is not None:
        arrays["features"] = ref.features
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def load_reference(path: str, extractor, *, cache_dir=None, batch_size=64, dtype=None, log=print):
    """A ``Reference`` for ``path`` under ``extractor``: from an .npz, the cache, or by extracting."""
    from gan_tpu import data
    from gan_tpu.metrics.extractors import Progress
    from gan_tpu.metrics.scoring import Reference

    if isinstance(path, str) and path.lower().endswith(".npz"):
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such reference .npz")
        return _load_npz(path, extractor), "npz"
    source = data.resolve(path, "monet")
    cache_file = None
    if cache_dir:
        local = all(os.path.isfile(f) for f in source.files)
        if local:
            cache_file = reference_cache_path(cache_dir, extractor.key, _content_digest(source.files))
            if os.path.isfile(cache_file):
                return _load_npz(cache_file, extractor), f"cache {cache_file}"
    count = data.count_images(source)
    if count < 2:
        raise UserError(f"{path}: the reference needs at least 2 images, has {count}")
    data.verify_source(source)
    log(f"reference: extracting {extractor.name} features of {count} images from {path}")
    images = data.source_images(source)
    feats, _ = extractor.features(images, batch_size, Progress("reference", count))
    kwargs = {} if dtype is None else {"dtype": dtype}
    ref = Reference.from_features(feats, **kwargs)
    if cache_file:
        _save_npz(ref, cache_file, extractor.key)
    return ref, "extracted"


# --------------------------------------------------------------------------- generated
def generated_images(path: str):
    """(dataset, count) for the images to score; a zip gets the submission checks, any count."""
    from gan_tpu import data

    source = data.resolve(path)
    if source.kind == "zip":
        from gan_tpu.submission.validate import validate_zip

        report = validate_zip(path, min_count=None, max_count=None)
        if not report.ok:
            more = len(report.problems) - 1
            extra = f" (and {more} more problem{'s' if more > 1 else ''}; see gan-tpu validate)" if more else ""
            raise UserError(f"{path}: {report.problems[0]}{extra}")
        count = report.count
    else:
        count = data.verify_source(source)
    if count < 2:
        raise UserError(f"{path}: need at least 2 images to score, found {count}")
    return data.source_images(source), count


def checkerboard_of(images, limit: int, batch_size: int = 64):
    """(index, count, median detail share) of the first ``limit`` images of a dataset; the
    index is None when they lack the detail it needs (see metrics.checkerboard)."""
    from gan_tpu.metrics.checkerboard import CheckerboardMeter

    meter = CheckerboardMeter(limit)
    for batch in images.take(limit).batch(batch_size):
        meter.update(batch.numpy())
    return (meter.result() if meter.measurable else None), meter.count, meter.detail()


# --------------------------------------------------------------------------- output
def format_scores(scores: dict, eps: float) -> list[str]:
    """The table ``gan-tpu score`` prints: one metric per line."""
    def num(v, fmt="{:.4f}"):
        return "n/a" if v is None else fmt.format(v)

    lines = [f"extractor:              {scores['extractor_label']}",
             f"images:                 {scores['n_generated']} generated, {scores['n_reference']} reference",
             f"FID:                    {num(scores['fid'])}"]
    d = scores.get("distance")
    if d is None:
        lines.append("memorization distance:  n/a (the reference .npz has no features)")
    else:
        verdict = f"below {eps}: penalized" if d < eps else f">= {eps}: no penalty"
        lines.append(f"memorization distance:  {d:.6f} ({verdict})")
    lines.append(f"MiFID:                  {num(scores.get('mifid'))}")
    if scores.get("checkerboard") is not None:
        base = scores.get("checkerboard_photos")
        baseline = "" if base is None else f"; photos {base:.3f}"
        lines.append(f"checkerboard index:     {scores['checkerboard']:.3f} (period-2 spectral peak, "
                     f"{scores['checkerboard_images']} images{baseline}; ~1: none; not a Kaggle figure)")
    elif scores.get("checkerboard_detail") is not None:
        lines.append(f"checkerboard index:     not measured: the images have little detail at the pixel scale "
                     f"(median {scores['checkerboard_detail']:.4f} of their power at periods under 4 px, "
                     f"photos ~0.04; painted below 256 px and upscaled?), so JPEG's 8x8 blocks would make the peak")
    if scores.get("kid") is not None:
        lines.append(f"KID:                    {scores['kid']:.6f} ± {scores['kid_std']:.6f}")
    if scores.get("is") is not None:
        lines.append(f"Inception Score:        {scores['is']:.4f} ± {scores['is_std']:.4f}")
    if not scores["comparable_with_kaggle"]:
        lines.append(f"note: {scores['extractor']} features are not comparable with Kaggle's scores")
    return lines


def score_paths(generated: str, reference: str, extractor: str = "kaggle", *, cache_dir=None,
                batch_size: int = 64, eps: float = 0.1, kid_subsets: int = 100, kid_subset_size: int = 1000,
                precision: str = "auto", save_reference=None, strategy=None, log=None,
                checkerboard: int = 1000, photos=None) -> dict:
    """Score the images at ``generated`` against ``reference``: the work of ``gan-tpu score``.

    Returns the scores dict (fid, distance, mifid, kid, kid_std, is, is_std, counts and
    the extractor's name/key/label, and the checkerboard index of the first ``checkerboard``
    images, with ``photos``' as its baseline); ``format_scores(scores, eps)`` gives the table.
    """
    from gan_tpu import runtime
    from gan_tpu.metrics.extractors import Progress, get_extractor
    from gan_tpu.metrics.scoring import StreamingScorer, resolve_dtype

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if batch_size < 1:
        raise UserError(f"--batch must be at least 1, got {batch_size}")
    if not os.path.exists(generated):
        raise UserError(f"{generated}: no such file or folder")
    from gan_tpu import tfds_source

    for ref_path in reference if isinstance(reference, (list, tuple)) else [reference]:
        if not (ref_path.lower().endswith(".npz") or tfds_source.is_spec(ref_path) or os.path.exists(ref_path)):
            raise UserError(f"{ref_path}: no such reference file or folder")
    images, count = generated_images(generated)
    strategy = strategy or runtime.get_strategy(keras_models=False)  # TF graphs, on any Keras backend
    ex = get_extractor(extractor, strategy=strategy)
    dtype = resolve_dtype(precision, strategy)
    ref, origin = load_reference(reference, ex, cache_dir=cache_dir, batch_size=batch_size, dtype=dtype, log=log)
    if save_reference:
        _save_npz(ref, save_reference, ex.key)
    log(f"reference: {ref.n} images ({origin})")
    log(f"scoring {count} images from {generated} with {ex.label}")
    scorer = StreamingScorer(ref, dtype, keep_features=kid_subsets > 0)
    for feats, probs in ex.extract(images, batch_size, Progress("generated", count)):
        scorer.update(feats, probs)
    scores = scorer.result(eps=eps, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    scores["checkerboard"] = scores["checkerboard_photos"] = scores["checkerboard_detail"] = None
    if checkerboard > 0:
        scores["checkerboard"], scores["checkerboard_images"], scores["checkerboard_detail"] = checkerboard_of(
            images, checkerboard, batch_size)
        if photos:
            from gan_tpu import data

            scores["checkerboard_photos"], _, _ = checkerboard_of(
                data.source_images(data.resolve(photos, "photo")), checkerboard, batch_size)
    scores.update({
        "extractor": ex.name, "extractor_key": ex.key,
        "extractor_label": ex.label, "comparable_with_kaggle": ex.comparable_with_kaggle,
        "generated": generated, "reference": reference, "eps": eps, "precision": dtype.name,
    })
    return scores


def run(args) -> int:
    from gan_tpu.metrics.extractors import default_cache_dir

    cache_dir = None if args.no_cache else (args.cache or default_cache_dir())
    scores = score_paths(args.generated, args.reference, args.extractor, cache_dir=cache_dir,
                         batch_size=args.batch, eps=args.eps, kid_subsets=args.kid_subsets,
                         kid_subset_size=args.kid_subset_size, precision=args.precision,
                         save_reference=args.save_reference, checkerboard=args.checkerboard,
                         photos=args.photos)
    for line in format_scores(scores, args.eps):
        print(line)
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({k: v for k, v in scores.items() if k != "extractor_label"}, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json}")
    return 0
