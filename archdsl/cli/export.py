"""``archdsl export [SOURCE] --out DIR``: a standalone artifact of a spec, a checkpoint or a search's winner."""

from __future__ import annotations

import argparse

from archdsl.cli._command import at_least, command
from archdsl.cli.output import emit_json
from archdsl.errors import UsageError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE", help="spec file, checkpoint (.ckpt), or search output DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory to write")
    p.add_argument(
        "--format",
        default="source,state_dict,pt2",
        metavar="LIST",
        help="comma-separated: source, state_dict, pt2, onnx, torchscript (default: source,state_dict,pt2)",
    )
    p.add_argument("--trial", type=at_least(0), metavar="N", help="export trial N instead of the best")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (with --study, instead of SOURCE)")
    p.add_argument("--study", metavar="NAME", help="study name")
    p.add_argument(
        "--init",
        metavar="PATH",
        help="with a spec SOURCE: its weights from this checkpoint, loaded as train.init loads them (no training)",
    )
    p.add_argument(
        "--init-map",
        choices=("archdsl", "timm", "torchvision"),
        help="the checkpoint's tensor names for --init (default: the spec's train.init.map, else archdsl)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing DIR")
    p.add_argument("--json", action="store_true", help="print the manifest as one JSON line")


@command("export", "export a model as a standard nn.Module: source, weights, torch.export, ONNX", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.export.artifact import export_model
    from archdsl.export.sources import from_initialised_spec, from_path, from_study

    if args.init is not None or args.init_map is not None:
        if args.source is None or not args.source.endswith((".yaml", ".yml")) or args.init is None:
            raise UsageError.option("--init", "--init PATH (and --init-map) go with a spec file SOURCE")
        source = from_initialised_spec(args.source, args.init, args.init_map)
    elif args.source is not None:
        source = from_path(args.source, args.trial)
    elif args.storage and args.study:
        source = from_study(args.storage, args.study, None, args.trial)
    else:
        raise UsageError.option("SOURCE", "give a SOURCE, or --storage URL and --study NAME")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    result = export_model(source, args.out, formats, force=args.force)
    if args.json:
        emit_json(result.manifest)
    else:
        m = result.manifest
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in m["metrics"].items())
        print(
            f"exported {m['name']} ({m['params']:,} params{', ' + metrics if metrics else ''}) to {result.directory}/"
        )
        for f in result.files:
            print(f"  {f}")
    return 0
