"""``archdsl rank SEARCH.yaml --proxy NAME[,NAME...] --candidates N``: rank random samples of a search space by
zero-cost proxies, without training (:mod:`archdsl.search.proxies`)."""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

from archdsl.cli._command import at_least, command
from archdsl.cli.output import emit_json

if TYPE_CHECKING:
    from archdsl.search.proxies import Ranking


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("search", metavar="SEARCH.yaml", help="search definition")
    p.add_argument(
        "--proxy",
        required=True,
        metavar="NAME[,NAME...]",
        help="proxies, comma-separated; the first ranks (synflow, naswot, grad_norm, snip, params, flops)",
    )
    p.add_argument("--candidates", type=at_least(1), required=True, metavar="N", help="architectures to sample")
    p.add_argument("--seed", type=at_least(0), default=0, metavar="S", help="sampler, batch and weight seed")
    p.add_argument("--batch", type=at_least(1), metavar="B", help="images scored (default: min(batch_size, 64))")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: the spec's train.accelerator)")
    p.add_argument("--allow-import", action="store_true", help="permit train.data.name=custom to import code")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command("rank", "rank random architectures of a search space by zero-cost proxies (no training)", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.search import require_worker_device
    from archdsl.search.proxies import rank, require
    from archdsl.search.space import load_search
    from archdsl.train.placement import device_name

    names = list(dict.fromkeys(n.strip() for n in args.proxy.split(",") if n.strip()))
    require(names, "--proxy")
    space = load_search(args.search)
    placement = require_worker_device(space, args.device)
    accelerator = str((space.base_doc.data.get("train") or {}).get("accelerator", "auto"))
    ranking = rank(
        space,
        names,
        args.candidates,
        seed=args.seed,
        device=device_name(placement, accelerator),
        batch_size=args.batch,
        allow_import=args.allow_import,
    )
    if args.json:
        emit_json({"search": space.name, "seed": args.seed, **ranking.to_json()})
    else:
        print(render(ranking))
    return 0


def render(ranking: Ranking) -> str:
    """The ranking table, the refused candidates and the timing, as text."""
    keys = sorted({k for c in ranking.candidates for k in c.params} | {k for r in ranking.refused for k in r.params})
    short = _short_names(keys)
    shown = [p for p in ranking.proxies if p not in _COUNTS]  # params and flops have their own columns
    header = ["rank", "trial", *shown, "params", "flops", "key params"]
    rows = [
        [
            str(i),
            str(c.trial),
            *(_score(c.scores[p]) for p in shown),
            f"{c.model_params:,}",
            f"{c.flops:,}",
            _params(c.params, short),
        ]
        for i, c in enumerate(ranking.candidates, 1)
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    last = len(header) - 1
    lines = [
        "  ".join(v if i == last else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        for r in [header, *rows]
    ]
    if ranking.refused:
        lines.append(f"refused {len(ranking.refused)}:")
        lines += [f"  trial {r.trial}: {r.reason}  ({_params(r.params, short)})" for r in ranking.refused]
    lines.append(
        f"{len(ranking.candidates)} scored, {len(ranking.refused)} refused; "
        f"{ranking.seconds_per_candidate:.3f} s per candidate (mean, measured; the batch of {ranking.batch_size} "
        f"images loaded once in {ranking.batch_seconds:.1f} s); ranked by {ranking.proxies[0]}, highest first"
    )
    return "\n".join(lines)


_COUNTS = ("params", "flops")


def _score(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6g}"


def _params(params: dict[str, object], short: dict[str, str]) -> str:
    return " ".join(f"{short[k]}={_value(v)}" for k, v in sorted(params.items()))


def _value(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else json.dumps(v) if not isinstance(v, (int, str)) else str(v)


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each parameter by its shortest unambiguous dotted tail (``mixer.kernel_size``, not the whole path)."""
    short: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if tail.strip("*.") and sum(k == tail or k.endswith("." + tail) for k in keys) == 1:
                short[key] = tail
                break
        else:
            short[key] = key
    return short
