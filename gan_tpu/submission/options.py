"""`gan-tpu generate`'s output options, without importing TensorFlow or Keras (for `--help`)."""
from __future__ import annotations

from typing import Any


def add_generate_args(parser) -> None:
    """The output options of ``gan-tpu generate`` (`gan-tpu generate` adds --run, --checkpoint and --photos)."""
    from gan_tpu.submission.validate import add_count_args

    parser.add_argument("--out", default="images.zip", help="the zip to write (default images.zip)")
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="images to write (default: all photos, topped up to 7,000, at most 10,000)")
    parser.add_argument("--batch", type=int, default=None, metavar="B",
                        help="global batch (default 8 per replica)")
    parser.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG quality (default 95)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_count_args(parser)


def generate_kwargs(args) -> dict[str, Any]:
    """:func:`write_submission` keyword arguments from :func:`add_generate_args` options."""
    return dict(count=args.count, batch_size=args.batch, quality=args.quality,
                allow_any_count=args.allow_any_count, progress=args.progress,
                min_count=args.min_count, max_count=args.max_count)
