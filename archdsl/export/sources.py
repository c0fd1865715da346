"""Where an export comes from: a spec file, a checkpoint of ``archdsl train``, or a search's trial."""

from __future__ import annotations

import json
from pathlib import Path

from archdsl.errors import Location, SpecError, UsageError
from archdsl.export.artifact import ExportSource
from archdsl.spec.load import load_spec, spec_from_text
from archdsl.train.checkpoint_io import load_checkpoint_data

__all__ = ["from_checkpoint", "from_initialised_spec", "from_path", "from_study"]


def from_checkpoint(path: str | Path, metrics: dict[str, float] | None = None) -> ExportSource:
    """Spec and weights of a checkpoint written by ``archdsl train`` (loaded with ``weights_only=True``)."""
    path = Path(path)
    try:
        data = load_checkpoint_data(path)
        spec_data = data["hyper_parameters"]["spec"]
    except (OSError, KeyError, RuntimeError) as exc:
        raise SpecError.at("", f"not a checkpoint written by archdsl train: {exc}", Location(str(path))) from None
    spec = spec_from_text(json.dumps(spec_data), f"{path}#spec")
    prefix = "backbone."
    state = {k[len(prefix) :]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    if metrics is None:
        result = path.parent / "result.json"
        metrics = {}
        if path.name == "best.ckpt" and result.is_file():
            saved = json.loads(result.read_text())
            metrics = {k: saved[k] for k in ("val/acc", "val/loss", "test/acc") if k in saved}
    return ExportSource(spec, state, metrics, f"checkpoint {path.resolve()}", (path,))


def from_initialised_spec(path: str | Path, init: str, init_map: str | None = None) -> ExportSource:
    """A spec file whose weights come from checkpoint ``init`` as ``train.init`` would load them (its ``map``,
    ``stages``, ``head`` and ``strict`` when the spec has a ``train.init``; ``init_map`` overrides the map), e.g.
    timm's ResNet-50 file into ``specs/resnet50.yaml``: a standalone artifact of pretrained weights, untrained
    here. Every mismatch is located as in ``archdsl train``; nothing is written unless all of it loads."""
    from archdsl.compiler.build import build_from_plan
    from archdsl.planner import plan_model
    from archdsl.spec.train import InitSpec
    from archdsl.weights import load_init

    spec = load_spec(path)
    settings = spec.train.init.model_dump(by_alias=True) if spec.train.init is not None else {}
    settings |= {"from": str(init)} | ({"map": init_map} if init_map is not None else {})
    plan = plan_model(spec)
    loaded = load_init(plan, InitSpec.model_validate(settings), spec.source.locate if spec.source else None)
    model = build_from_plan(plan, "cpu")
    loaded.copy_into(model)
    state = dict(model.state_dict())  # detached; the model is not used after
    return ExportSource(
        spec,
        state,
        {},
        f"spec {Path(path).resolve()} initialised from {Path(init).resolve()}",
        (Path(path), Path(init)),
    )


def from_study(storage: str | None, study_name: str | None, directory: Path | None, trial: int | None) -> ExportSource:
    """The best trial (or trial ``trial``) of a search, with the checkpoint it kept."""
    from optuna.trial import TrialState

    from archdsl.search import TrialRecord, load_study, study_out_dir, trial_checkpoint, winners

    study = load_study(directory, storage, study_name)
    if trial is None:
        chosen = winners(study)[0]
    else:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        if trial not in trials:
            raise UsageError.option("--trial", f"study '{study.study_name}' has no trial {trial}")
        chosen = trials[trial]
        if chosen.state != TrialState.COMPLETE:
            raise UsageError.option("--trial", f"trial {trial} is {chosen.state.name}, not COMPLETE")
    path = trial_checkpoint(chosen, directory or study_out_dir(study))
    record = TrialRecord.of(chosen)
    if path is None or not path.is_file():
        host = record.checkpoint_host
        written = f", written on host {host}" if host else ""
        raise UsageError.option(
            "--trial",
            f"trial {chosen.number}'s checkpoint is not available here (looked for {path}{written})",
        )
    metrics = record.metrics()
    source = from_checkpoint(path, metrics)
    reads = (path, *((directory,) if directory is not None else ()))
    return ExportSource(
        source.spec, source.state_dict, metrics, f"study {study.study_name}, trial {chosen.number}", reads
    )


def from_path(path: str | Path, trial: int | None = None) -> ExportSource:
    """A spec file (fresh weights), a ``.ckpt`` file, a training directory (its ``best.ckpt``), or a search
    output directory."""
    path = Path(path)
    if path.is_dir() and (path / "best.ckpt").is_file() and trial is None:
        return from_checkpoint(path / "best.ckpt")  # `archdsl train --out DIR`
    if path.is_dir():
        return from_study(None, None, path, trial)
    if path.suffix == ".ckpt":
        return from_checkpoint(path)
    return ExportSource(load_spec(path), None, {}, f"spec {path.resolve()} (untrained)", (path,))
