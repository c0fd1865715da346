"""``archdsl predict DIR IMAGE...``: top-5 classes per image with the artifact's preprocessing."""

from __future__ import annotations

import argparse

from archdsl.cli._command import at_least, command
from archdsl.cli.output import emit_json


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="an artifact directory written by `archdsl export`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top", type=at_least(1), default=5, metavar="K", help="classes per image (default 5)")
    p.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default=None,
        help="invert the grey levels: auto (when the image's background is not the training images', "
        "e.g. dark ink on white paper for digits), yes, or no (default: the manifest's "
        "preprocessing.invert)",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="use the artifact even if model.py, the weights or spec.yaml no longer match the SHA-256 "
        "its manifest.json lists (checked by default before anything in it runs)",
    )
    p.add_argument("--json", action="store_true", help='one JSON line: {"predictions": [{"image", "top"}, ...]}')


@command("predict", "top-5 classes per image from an exported model", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.export.predict import predict_images

    predictions = predict_images(args.dir, args.images, args.top, args.invert, args.trust)
    if args.json:
        rows = [{"image": pred.image, "top": [{"class": c, "p": p} for c, p in pred.top]} for pred in predictions]
        emit_json({"predictions": rows})
        return 0
    for pred in predictions:
        print(f"{pred.image}: " + ", ".join(f"{c} {p:.3f}" for c, p in pred.top))
    return 0
