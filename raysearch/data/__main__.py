"""`python -m raysearch.data`: synthetic | prepare | download-coco | info | push | baselines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from raysearch import cli
from raysearch.data.download import Expected, download_coco
from raysearch.data.photos import DEFAULT_MIN_CROP, DEFAULT_VAL_FRACTION
from raysearch.errors import DataError, RaysearchError


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m raysearch.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synthetic = commands.add_parser(
        "synthetic", help="write the synthetic dataset as a raw MSCOCO 2014 tree (then run prepare on it)"
    )
    synthetic.add_argument("--out", required=True, type=Path, help="directory to write (created)")
    synthetic.add_argument("--train", type=int, default=2000, help="train images (default 2000)")
    synthetic.add_argument("--val", type=int, default=200, help="val images (default 200)")
    synthetic.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    synthetic.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synthetic.add_argument("--force", action="store_true", help="write into --out even if it holds other files")

    prepare = commands.add_parser(
        "prepare", help="raw COCO 2014 (or IFT6266) tree, or any folder of photos -> packed 64x64 dataset"
    )
    source = prepare.add_mutually_exclusive_group(required=True)
    source.add_argument("--coco-root", type=Path,
                        help="holds annotations/ + train2014/ + val2014/ (or the IFT6266 layout)")
    source.add_argument("--images", type=Path,
                        help="any folder of photos (jpg/jpeg/png/bmp/webp, searched recursively; no captions); "
                        "its train/ and val/ subfolders are the splits when it has both")
    prepare.add_argument("--out", required=True, type=Path, help="prepared dataset directory (created)")
    prepare.add_argument("--size", type=int, default=64, help="output side in pixels (default 64)")
    prepare.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    prepare.add_argument("--force", action="store_true",
                         help="write into --out even if it holds other files or another prepared dataset")
    # The --images-only flags default to "not given" (SUPPRESS): prepare_photos' own signature holds their
    # defaults, and a flag given with --coco-root is an error whatever its value.
    photos = prepare.add_argument_group("--images only")
    photos.add_argument("--crops", type=int, default=argparse.SUPPRESS,
                        help="squares per train photo: 1 = the centered largest square (default), "
                        "N > 1 = N random squares")
    photos.add_argument("--val-crops", type=int, default=argparse.SUPPRESS,
                        help="squares per val photo (default: --crops)")
    photos.add_argument("--min-crop", type=float, default=argparse.SUPPRESS,
                        help=f"smallest random square, a fraction of the short side (default {DEFAULT_MIN_CROP})")
    photos.add_argument("--seed", type=int, default=argparse.SUPPRESS,
                        help="random squares: same seed, same bytes (default 0)")
    photos.add_argument("--val-fraction", type=float, default=argparse.SUPPRESS,
                        help="without train/ and val/ subfolders: share of photos in val, chosen by a hash "
                        f"of the file name (default {DEFAULT_VAL_FRACTION})")

    download = commands.add_parser("download-coco", help="fetch and unpack the official MSCOCO 2014 zips (resumable)")
    download.add_argument("--dest", required=True, type=Path, help="directory to unpack into (use as --coco-root)")
    download.add_argument("--base-url", default=None,
                          help="one URL serving all the zips (default: images.cocodataset.org zips/ and annotations/)")
    download.add_argument("--files", nargs="+", default=None, help="some of train2014.zip val2014.zip annotations_trainval2014.zip (default: all three)")
    download.add_argument("--checksums", type=Path, default=None,
                          help="JSON {file: {size, md5}} replacing the table of the official files (for a mirror)")
    download.add_argument("--retries", type=int, default=5, help="resumes after a dropped connection (default 5)")
    download.add_argument("--delete-zips", action="store_true", help="delete each zip once unpacked")

    info = commands.add_parser("info", help="print a prepared dataset's summary as one JSON object")
    info.add_argument("path", type=Path)
    info.add_argument("--min-count", type=int, default=10, help="vocabulary threshold (default 10)")

    push = commands.add_parser(
        "push", help="upload a prepared dataset to a storage URI (s3://, gs://, file://, ...) for --data URI"
    )
    push.add_argument("dir", type=Path, help="prepared dataset directory")
    push.add_argument("uri", help="destination URI, e.g. s3://bucket/coco64 (overwritten if present)")

    baselines = commands.add_parser(
        "baselines", help="validation metrics of the classical fills (mean, harmonic, Telea, Navier-Stokes); "
        "last line one JSON object"
    )
    baselines.add_argument("data", help="prepared dataset directory, storage URI, or `synthetic` (the default dataset)")
    baselines.add_argument("--val-images", type=int, default=None,
                           help="the first N val images, as data.val_images (0 = all; default: data.val_images's default)")
    baselines.add_argument("--seed", type=int, default=None,
                           help="metric seed, as train.seed (default: train.seed's default)")
    return parser


def _read_checksums(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"--checksums {path}: unreadable ({error})") from None
    if not isinstance(raw, dict):
        raise DataError(f"--checksums {path}: must be a JSON object {{file: {{\"size\": int, \"md5\": str}}}}")
    table = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) - {"size", "md5"}:
            raise DataError(f"--checksums {path}: entry {name!r} must be an object with only 'size' and 'md5'")
        size, md5 = entry.get("size"), entry.get("md5")
        if not (size is None or isinstance(size, int)) or not (md5 is None or isinstance(md5, str)):
            raise DataError(f"--checksums {path}: entry {name!r}: 'size' must be an integer, 'md5' a string")
        table[name] = Expected(size, md5)
    return table


# prepare_photos' keyword arguments that only --images takes.
PHOTO_OPTIONS = ("crops", "val_crops", "min_crop", "seed", "val_fraction")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # Imported per command: `download-coco` and `prepare` never need torch.
        if args.command == "synthetic":
            from raysearch.data.synthetic import write_synthetic

            out = write_synthetic(args.out, train=args.train, val=args.val, seed=args.seed, workers=args.workers,
                                  force=args.force)
            print(f"wrote {args.train} train + {args.val} val images in the MSCOCO 2014 layout to {out}; "
                  f"next: python -m raysearch.data prepare --coco-root {out} --out DIR")
        elif args.command == "prepare":
            from raysearch.data.prepare import prepare, prepare_photos

            photo_options = {name: getattr(args, name) for name in PHOTO_OPTIONS if hasattr(args, name)}
            if args.images is not None:
                prepare_photos(args.images, args.out, size=args.size, workers=args.workers, force=args.force,
                               **photo_options)
            else:
                if photo_options:
                    flags = ", ".join(f"--{name.replace('_', '-')}" for name in photo_options)
                    raise DataError(f"{flags}: only for --images, not --coco-root")
                prepare(args.coco_root, args.out, size=args.size, workers=args.workers, force=args.force)
        elif args.command == "download-coco":
            checksums = _read_checksums(args.checksums) if args.checksums else None
            if args.retries < 0:
                raise DataError(f"--retries: must be >= 0, got {args.retries}")
            download_coco(args.dest, base_url=args.base_url, files=args.files, checksums=checksums,
                          retries=args.retries, delete_zips=args.delete_zips)
        elif args.command == "info":
            from raysearch.data.info import dataset_info

            if args.min_count < 1:
                raise DataError(f"--min-count: must be >= 1, got {args.min_count}")
            print(json.dumps(dataset_info(args.path, args.min_count)))
        elif args.command == "push":
            from raysearch.data.remote import push
            from raysearch.storage import is_uri

            if not is_uri(args.uri):
                raise DataError(f"push: {args.uri!r} is not a storage URI; give one like s3://bucket/coco64 "
                                "or file:///abs/path")
            push(args.dir, args.uri)
        elif args.command == "baselines":
            from raysearch.baselines import print_baselines

            print_baselines(args.data, val_images=args.val_images, seed=args.seed)
    except RaysearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
