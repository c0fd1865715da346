"""Read a finished (or running) study back: from a search's output directory or a storage URL.

A search writes ``DIR/study.json`` (the study's name and its storage URL without any password), so
``archdsl best|report|status|export DIR`` find a PostgreSQL-backed study as well as the embedded
``DIR/study.db``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from archdsl.atomic import atomic_write_text
from archdsl.errors import Location, SearchError, UsageError
from archdsl.search.record import StudyRecord, TrialRecord
from archdsl.search.space.definition import WorkersSpec
from archdsl.search.storages.connect import StorageRef, default_storage_url, open_storage, parse_storage_url
from archdsl.search.study import best_trials
from archdsl.spec.load import spec_from_text
from archdsl.spec.model import ModelSpec

__all__ = [
    "OpenStudy",
    "load_study",
    "open_existing",
    "record_study",
    "study_out_dir",
    "trial_checkpoint",
    "trial_dir",
    "trial_spec",
    "winners",
]

STUDY_FILE = "study.json"
TRIALS_DIR = "trials"


def trial_dir(out: Path, number: int) -> Path:
    """Where trial ``number`` of a search with ``--out out`` trains."""
    return out / TRIALS_DIR / f"{number:04d}"


def record_study(out: Path, ref: StorageRef, study_name: str) -> None:
    """Write ``DIR/study.json`` unless it already says the same (workers share DIR)."""
    url, _password = ref.split_password()
    text = json.dumps({"study": study_name, "storage": url}, indent=2) + "\n"
    path = out / STUDY_FILE
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


@dataclass(frozen=True)
class OpenStudy:
    study: optuna.Study
    storage: BaseStorage
    ref: StorageRef


def open_existing(directory: str | Path | None, storage: str | None, study_name: str | None) -> OpenStudy:
    """The study of ``DIR`` (the ``--out`` of a search) or of ``--storage URL --study NAME``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if directory is not None:
        directory = Path(directory)
        recorded = directory / STUDY_FILE
        if recorded.is_file():
            data = json.loads(recorded.read_text())
            storage, study_name = storage or _moved(data["storage"], directory), study_name or data["study"]
        elif (directory / "study.db").is_file():
            storage = default_storage_url(directory)
        else:
            raise SearchError.at(
                "", f"no study in '{directory}' (is it the --out of `archdsl search`?)", Location(str(directory))
            )
    if storage is None:
        raise UsageError.option("DIR", "give a search output DIR, or --storage URL and --study NAME")
    ref = parse_storage_url(storage)
    opened = open_storage(ref, WorkersSpec())
    if study_name is None:
        names = [s.study_name for s in opened.get_all_studies()]
        if len(names) != 1:
            raise UsageError.option("--study", f"{ref.display} holds studies {names}; name one with --study")
        study_name = names[0]
    try:
        return OpenStudy(optuna.load_study(study_name=study_name, storage=opened), opened, ref)
    except KeyError:
        raise UsageError.option("--study", f"no study '{study_name}' in {ref.display}") from None


def _moved(url: str, directory: Path) -> str:
    """The storage ``study.json`` names, or ``DIR/study.db`` when the embedded database it names is gone
    and ``DIR`` holds one (the search directory was moved or copied)."""
    here = directory / "study.db"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file() and here.is_file():
        return default_storage_url(directory)
    return url


def load_study(directory: str | Path | None, storage: str | None, study_name: str | None) -> optuna.Study:
    return open_existing(directory, storage, study_name).study


def trial_spec(trial: FrozenTrial) -> ModelSpec:
    """The fully resolved spec this trial trained (stored with the trial)."""
    data = TrialRecord.of(trial).spec
    if data is None:
        raise UsageError.option(
            "--trial", f"trial {trial.number} has no stored spec (rejected or failed before training)"
        )
    return spec_from_text(json.dumps(data), f"<trial {trial.number}>")


def study_out_dir(study: optuna.Study) -> Path | None:
    return StudyRecord.of(study).out_dir


def trial_checkpoint(trial: FrozenTrial, base: Path | None) -> Path | None:
    """The absolute path of the checkpoint a trial kept: recorded absolute (workers share a filesystem),
    or relative to the search's ``--out`` (``base``) in older studies; None when it kept none. A search
    directory that was moved or copied (``base`` no longer where the trial wrote it) holds the checkpoint
    at the same place under ``base``: ``trials/NNNN/NAME``."""
    recorded = TrialRecord.of(trial).checkpoint
    if recorded is None:
        return None
    path = Path(recorded)
    if not path.is_absolute():
        return (Path(base or ".") / path).resolve()
    moved = Path(base) / TRIALS_DIR / path.parent.name / path.name if base is not None else None
    if not path.is_file() and path.parent.parent.name == TRIALS_DIR and moved is not None and moved.is_file():
        return moved.resolve()
    return path.resolve()


def winners(study: optuna.Study) -> list[FrozenTrial]:
    best = best_trials(study)
    if not best:
        raise UsageError.option("--study", f"study '{study.study_name}' has no completed trial yet")
    return best
