"""A search's trials to the trackers of ``train.loggers``: one MLflow run per trained trial, under one parent run
per study.

A trial's run is tagged with the study (``archdsl.study``), its number (``archdsl.trial``), its parameters
(``archdsl.param.NAME``, the name's ``*`` written ``_``; all of them as JSON in ``archdsl.params``) and, for a
retry that continues a lost trial's training, that trial (``archdsl.retry_of``: the lost trial's run goes on).
Its metrics per epoch, its spec as parameters and its best checkpoint come from the training's logger
(:mod:`archdsl.train.mlflow_runs`).

The parent run carries ``archdsl.role=study`` and ``archdsl.study``. Workers that start together may each make
one; whichever worker next looks keeps the earliest, moves the others' children under it (MLflow's nesting is
the ``mlflow.parentRunId`` tag) and deletes them (tagged ``archdsl.merged_into``), so the study ends with one
parent whatever the race. Nothing here imports MLflow unless the trial's spec names the ``mlflow`` logger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.errors import SpecError
from archdsl.train.loggers import TrackedRun, require_extras

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from archdsl.search.space.load import SearchSpace
    from archdsl.spec.model import ModelSpec
    from archdsl.spec.train import MlflowSpec

__all__ = [
    "MERGED_TAG",
    "PARAM_TAG",
    "PARENT_TAG",
    "ROLE_TAG",
    "STUDY_TAG",
    "TRIAL_TAG",
    "require_tracking",
    "study_run",
    "trial_run",
]

STUDY_TAG = "archdsl.study"
TRIAL_TAG = "archdsl.trial"
PARAM_TAG = "archdsl.param."
PARAMS_TAG = "archdsl.params"
RETRY_TAG = "archdsl.retry_of"
ROLE_TAG = "archdsl.role"
MERGED_TAG = "archdsl.merged_into"
PARENT_TAG = "mlflow.parentRunId"
"""MLflow nests a run under the run this tag names."""


def require_tracking(space: SearchSpace) -> None:
    """Refuse a search whose base spec names a logger whose extra is missing (located in the base spec), before
    any study is touched: every trial would fail on it."""
    from archdsl.spec.load import parse_spec

    try:
        require_extras(parse_spec(space.base_doc).train)
    except SpecError as err:
        raise err.located(space.base_doc.locate) from None


def trial_run(
    number: int, params: dict[str, Any], spec: ModelSpec, out: Path, study: str, retry_of: int | None = None
) -> TrackedRun:
    """The run trial ``number`` of ``study`` trains as (``out``: the search's directory, where a default MLflow
    store lies); with the ``mlflow`` logger, its parent run is found or made here."""
    if "mlflow" not in spec.train.loggers:
        return TrackedRun(f"trial {number}", study, out)
    from archdsl.train.mlflow_runs import tag_key

    tags = {STUDY_TAG: study, TRIAL_TAG: str(number), PARAMS_TAG: json.dumps(params, default=str)[:8000]}
    tags |= {tag_key(f"{PARAM_TAG}{name}"): str(value)[:8000] for name, value in params.items()}
    if retry_of is not None:
        tags[RETRY_TAG] = str(retry_of)
    tags[PARENT_TAG] = study_run(spec.train.mlflow, out, study)
    return TrackedRun(f"trial {number}", study, out, tags)


def study_run(settings: MlflowSpec, out: Path, study: str) -> str:
    """The id of ``study``'s parent run in the store and experiment of ``settings`` (default: the study's name),
    found by its tags or made; a race of workers that each made one is settled here (module docstring)."""
    from archdsl.train.mlflow_runs import default_artifacts, experiment_id, mlflow_client, tracking_uri

    client = mlflow_client(tracking_uri(settings, out), out if default_artifacts(settings, out) else None)
    eid = experiment_id(client, settings.experiment or study, default_artifacts(settings, out))
    found = _parents(client, eid, study)
    if not _live(found):
        run = client.create_run(eid, run_name=study, tags={ROLE_TAG: "study", STUDY_TAG: study})
        client.set_terminated(run.info.run_id)  # a folder for the trials' runs: nothing runs in it
        found = _parents(client, eid, study)
    winner = min(_live(found), key=lambda r: (r.info.start_time or 0, r.info.run_id))
    live = {r.info.run_id for r in _live(found)}
    for run in found:
        if run.info.run_id == winner.info.run_id:
            continue
        if run.info.run_id in live:
            client.set_tag(run.info.run_id, MERGED_TAG, winner.info.run_id)
            client.delete_run(run.info.run_id)
        elif MERGED_TAG not in run.data.tags:
            continue  # deleted by a person, not merged: its children stay where they are
        for child in _search(client, eid, f"tags.`{PARENT_TAG}` = '{run.info.run_id}'"):
            client.set_tag(child.info.run_id, PARENT_TAG, winner.info.run_id)
    return str(winner.info.run_id)


def _parents(client: MlflowClient, eid: str, study: str) -> list[Run]:
    """Every parent run of ``study`` in the experiment, deleted ones included (the study's name is compared
    here, not quoted into a filter)."""
    return [r for r in _search(client, eid, f"tags.`{ROLE_TAG}` = 'study'") if r.data.tags.get(STUDY_TAG) == study]


def _live(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.info.lifecycle_stage == "active" and MERGED_TAG not in r.data.tags]


def _search(client: MlflowClient, eid: str, where: str) -> list[Run]:
    from mlflow.entities import ViewType

    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([eid], where, run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
