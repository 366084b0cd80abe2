"""The Kaggle subcommands: ``gan-tpu data``, ``gan-tpu kernel NAME``, ``gan-tpu kernels``."""
from __future__ import annotations

from gan_tpu.kaggle.download import download_data
from gan_tpu.kaggle.notebooks import DATASET_SLUG, KERNELS_DIR, check_metadata, kernel_names, notebook_in_sync, \
    read_metadata, sync_notebook
from gan_tpu.kaggle.paths import COMPETITION, LOCAL_DATA
from gan_tpu.kaggle.push import push_kernel


def cmd_data(args) -> int:
    download_data(args.out, competition=args.competition, force=args.force)
    return 0


def cmd_kernel(args) -> int:
    if not (args.wait or args.submit):
        push_kernel(args.name, wheel_dir=args.wheel_dir, upload_wheel=not args.no_wheel, dataset=args.dataset,
                    inception=args.inception)
        return 0
    from gan_tpu.kaggle.roundtrip import push_and_collect

    push_and_collect(args.name, wheel_dir=args.wheel_dir, upload_wheel=not args.no_wheel, dataset=args.dataset,
                     inception=args.inception, submit=args.submit, message=args.message or "", timeout_s=args.wait_hours * 3600,
                     poll_s=args.poll)
    return 0


def cmd_kernels(args) -> int:
    stale = []
    for name in kernel_names():
        folder = KERNELS_DIR / name
        if args.sync:
            sync_notebook(folder)
        problems = check_metadata(read_metadata(folder), folder)
        for problem in problems:
            print(f"kernels/{name}: {problem}")
        in_sync = notebook_in_sync(folder)
        if not in_sync:
            stale.append(name)
        print(f"kernels/{name}: {'ok' if not problems and in_sync else 'NOT OK'}"
              f"{'' if in_sync else ' (notebook out of date: gan-tpu kernels --sync)'}")
        if problems:
            stale.append(name)
    return 1 if stale else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="download the competition data with the kaggle package",
                              description="Download and unpack the competition data (needs Kaggle "
                              "credentials and the competition's rules accepted).")
    p.add_argument("--out", default=LOCAL_DATA, help=f"folder to create (default {LOCAL_DATA})")
    p.add_argument("--competition", default=COMPETITION, help=f"competition slug (default {COMPETITION})")
    p.add_argument("--force", action="store_true", help="download again even if the folder is complete")
    p.set_defaults(func=cmd_data)

    p = subparsers.add_parser("kernel", help="push the wheel and a kernels/NAME notebook to Kaggle",
                              description="Upload dist/gan_tpu-VERSION-py3-none-any.whl as a new version of "
                              f"<you>/{DATASET_SLUG}, then push kernels/NAME with your username filled in.")
    p.add_argument("name", help="a folder under kernels/ (e.g. tpu-cyclegan, gpu-cyclegan)")
    p.add_argument("--wheel-dir", default="dist", help="where `make wheel` put the wheel (default dist)")
    p.add_argument("--no-wheel", action="store_true", help="push only the notebook")
    p.add_argument("--dataset", help=f"the wheel's dataset as OWNER/SLUG (default <you>/{DATASET_SLUG})")
    p.add_argument("--inception", help="attach Kaggle's Inception network (classify_image_graph_def.pb): a dataset "
                   "OWNER/SLUG or a Kaggle Model OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]; the notebook then "
                   "evaluates with it (without one, [eval] stays off)")
    p.add_argument("--wait", action="store_true", help="wait for the version to finish, then download "
                   "its images.zip into kaggle_output/ and validate it")
    p.add_argument("--submit", action="store_true", help="--wait, then submit that version (needs -m)")
    p.add_argument("-m", "--message", help="the submission's description (with --submit)")
    p.add_argument("--wait-hours", type=float, default=9.0, help="give up waiting after this long (default 9)")
    p.add_argument("--poll", type=float, default=60.0, help="seconds between status checks (default 60)")
    p.set_defaults(func=cmd_kernel)

    p = subparsers.add_parser("kernels", help="check every kernel's metadata and notebook (--sync rewrites them)",
                              description="Check every notebook under kernels/: its kernel-metadata.json passes "
                                          "the kaggle package's own checks and the notebook equals its .py twin.")
    p.add_argument("--sync", action="store_true", help="write each notebook from its .py twin first")
    p.set_defaults(func=cmd_kernels)
