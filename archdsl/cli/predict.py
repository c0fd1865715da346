"""``archdsl predict DIR IMAGE...``: top-5 classes per image with the artifact's preprocessing."""

from __future__ import annotations

import argparse
import json

from archdsl.cli._command import command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="an artifact directory written by `archdsl export`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON line per image")


@command("predict", "top-5 classes per image from an exported model", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.export.predict import predict_images

    for pred in predict_images(args.dir, args.images, args.top):
        if args.json:
            print(json.dumps({"image": pred.image, "top": [{"class": c, "p": p} for c, p in pred.top]}))
        else:
            print(f"{pred.image}: " + ", ".join(f"{c} {p:.3f}" for c, p in pred.top))
    return 0
