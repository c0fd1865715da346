"""Read a finished (or running) study back: from a search's output directory or a storage URL."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from archdsl.errors import Location, SearchError
from archdsl.search.study import OUT_DIR, best_trials
from archdsl.spec.load import spec_from_text
from archdsl.spec.model import ModelSpec

__all__ = ["load_study", "study_out_dir", "trial_spec", "winners"]


def load_study(directory: str | Path | None, storage: str | None, study_name: str | None) -> optuna.Study:
    """The study of ``DIR`` (the ``--out`` of a search) or of ``--storage URL --study NAME``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if directory is not None:
        db = Path(directory) / "study.db"
        if not db.is_file():
            raise SearchError.at(
                "", f"no study.db in '{directory}' (is it the --out of `archdsl search`?)", Location(str(directory))
            )
        storage = f"sqlite:///{db.resolve()}"
        names = optuna.get_all_study_names(storage)
        if study_name is None:
            if len(names) != 1:
                raise SearchError.at(
                    "", f"'{directory}' holds studies {names}; name one with --study", Location(str(directory))
                )
            study_name = names[0]
    if storage is None or study_name is None:
        raise SearchError.at("", "give a search output DIR, or --storage URL and --study NAME", Location("archdsl"))
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise SearchError.at("", f"no study '{study_name}' in {storage}", Location("--study")) from None


def trial_spec(trial: FrozenTrial) -> ModelSpec:
    """The fully resolved spec this trial trained (stored with the trial)."""

    data = trial.user_attrs.get("spec")
    if data is None:
        raise SearchError.at(
            "", f"trial {trial.number} has no stored spec (rejected or failed before training)", Location("--trial")
        )
    return spec_from_text(json.dumps(data), f"<trial {trial.number}>")


def study_out_dir(study: optuna.Study) -> Path | None:
    out = study.user_attrs.get(OUT_DIR)
    return Path(out) if out else None


def winners(study: optuna.Study) -> list[FrozenTrial]:
    best = best_trials(study)
    if not best:
        raise SearchError.at("", f"study '{study.study_name}' has no completed trial yet", Location("--study"))
    return best
