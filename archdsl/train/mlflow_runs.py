"""MLflow runs of archdsl: the tracking store a spec names, one run per training (continued across a resume),
the spec as the run's parameters, the best checkpoint as a tag.

Imported only where a run logs to MLflow (``train.loggers`` names ``mlflow``): it imports MLflow.

The store is ``train.mlflow.tracking_uri``, else the ``MLFLOW_TRACKING_URI`` environment variable, else
``sqlite:///DIR/mlflow.db`` in the run's directory (a search's: its output directory), its artifacts beside it
in ``DIR/mlartifacts``. A database is MLflow's default store since 3.0; the ``./mlruns`` file store is in
maintenance mode and MLflow 3.18 refuses it unless ``MLFLOW_ALLOW_FILE_STORE`` is set, and SQLite, unlike
files, lets several workers of a search share one store (MLflow locks its creation).

Lightning's ``MLFlowLogger`` calls ``mlflow.set_tracking_uri`` when it makes its run, which also sets
``MLFLOW_TRACKING_URI`` in this process's environment: every later run in the process would take that store
for the user's. :class:`SpecMLFlowLogger` makes its experiment and run itself, with the client it was given,
and leaves the process's tracking URI alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from archdsl.atomic import atomic_write_text
from archdsl.errors import SpecError

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Checkpoint
    from mlflow.tracking import MlflowClient

    from archdsl.spec.train import MlflowSpec
    from archdsl.train.loggers import TrackedRun

__all__ = [
    "ARTIFACTS",
    "CHECKPOINT_TAG",
    "RUN_FILE",
    "STORE",
    "SpecMLFlowLogger",
    "experiment_id",
    "flat_params",
    "mlflow_client",
    "tag_key",
    "tracking_uri",
]

STORE = "mlflow.db"
"""The default store: a SQLite database in the run's (or search's) directory."""
ARTIFACTS = "mlartifacts"
"""Artifacts of the default store's experiments, beside the database (the name ``mlflow server`` uses)."""
RUN_FILE = "mlflow_run.json"
"""In the run's directory: the store and run a resumed training continues."""
CHECKPOINT_TAG = "archdsl.checkpoint"
"""Tag of a run: its best checkpoint (``best.ckpt``), absolute."""
URI_VARIABLE = "MLFLOW_TRACKING_URI"


def tracking_uri(settings: MlflowSpec, store: Path) -> str:
    """The spec's tracking URI, else ``MLFLOW_TRACKING_URI``, else a SQLite database in ``store``."""
    if settings.tracking_uri:
        return settings.tracking_uri
    if uri := os.environ.get(URI_VARIABLE):
        return uri
    return f"sqlite:///{(store / STORE).resolve()}"


def default_artifacts(settings: MlflowSpec, store: Path) -> str | None:
    """Where the default store's experiments keep artifacts (``store/mlartifacts``); a store given by the spec or
    the environment keeps its own default."""
    if settings.tracking_uri or os.environ.get(URI_VARIABLE):
        return None
    return (store / ARTIFACTS).resolve().as_uri()


@contextlib.contextmanager
def _quiet_store() -> Iterator[None]:
    """MLflow's SQL store trips SQLAlchemy's deprecation warnings when it is opened and logs each step of making
    its tables: nothing an archdsl user can act on."""
    chatter = logging.getLogger("mlflow.store.db.utils")
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        chatter.setLevel(level)


def mlflow_client(uri: str, store: Path | None = None) -> MlflowClient:
    """A client of the store at ``uri`` (made on first use; ``store``: the directory a default database lies in)."""
    from mlflow.tracking import MlflowClient

    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    with _quiet_store():
        return MlflowClient(uri)


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, made when missing (several workers may make it at once: one wins)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException:  # another worker made it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise SpecError.at(
            "train.mlflow.experiment",
            f"the MLflow experiment '{name}' in {client.tracking_uri} is deleted; restore it "
            "(mlflow experiments restore) or name another experiment",
        )
    return str(found.experiment_id)


_BAD_KEY = re.compile(r"[^/\w.\- ]")
"""Characters MLflow refuses in parameter, metric and tag names (``*`` of a tied search parameter)."""


def tag_key(name: str) -> str:
    """``name`` as an MLflow parameter or tag name: other characters become ``_`` (at most 250 characters)."""
    return _BAD_KEY.sub("_", name)[:250]


def flat_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A spec as MLflow parameters: one per leaf, named by its dotted path (``stages.0.blocks.0.mixer.type``);
    a list of plain values is one parameter (``train.optimizer.betas``), values are JSON text (strings bare)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{path}."))
        elif isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value):
            flat.update(flat_params({str(i): v for i, v in enumerate(value)}, f"{path}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[tag_key(path)] = text[:6000]  # MLflow's longest parameter value
    return flat


class SpecMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger for one archdsl run in ``out``: its store and experiment from ``train.mlflow``
    and the :class:`~archdsl.train.loggers.TrackedRun` (run name, tags), the spec as parameters (dotted paths,
    logged once), the best checkpoint as the :data:`CHECKPOINT_TAG` tag.

    The run's id is kept in ``out/mlflow_run.json``: a resumed training continues the same run (its tags set
    again, its parameters added where missing: MLflow never changes a logged parameter)."""

    def __init__(self, out: Path, settings: MlflowSpec, run: TrackedRun, *, resume: bool) -> None:
        uri = tracking_uri(settings, run.store)
        default_store = default_artifacts(settings, run.store) is not None
        if default_store:
            run.store.mkdir(parents=True, exist_ok=True)
        with _quiet_store():
            super().__init__(
                experiment_name=settings.experiment or run.experiment,
                run_name=run.name,
                tracking_uri=uri,
                tags=dict(run.tags),
                artifact_location=default_artifacts(settings, run.store),
            )
        self._out = out
        self._continued = _continued_run(out, uri) if resume else None
        self._params_logged = False
        self._best = ""

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        """The client, once the experiment and run exist (made here, without ``mlflow.set_tracking_uri``)."""
        if not self._initialized:
            self._open()
        return self._mlflow_client

    def _open(self) -> None:
        from mlflow.entities import RunTag
        from mlflow.tracking.context.registry import resolve_tags

        client = self._mlflow_client
        eid = experiment_id(client, self._experiment_name, self._artifact_location)
        tags = {k: str(v) for k, v in (self.tags or {}).items()}
        run_id = self._continued if self._continued and _active(client, self._continued, eid) else None
        if run_id is not None:
            client.update_run(run_id, status="RUNNING", name=self._run_name)
            if tags:
                client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        else:
            run_id = client.create_run(eid, run_name=self._run_name, tags=resolve_tags(tags)).info.run_id
            self._continued = None
        self._experiment_id, self._run_id, self._initialized = eid, run_id, True
        record = {"tracking_uri": self._tracking_uri, "experiment_id": eid, "run_id": run_id}
        atomic_write_text(self._out / RUN_FILE, json.dumps(record, indent=2) + "\n")

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The spec (``ClassificationModule``'s ``spec`` hyper-parameter) as dotted-path parameters, once: Lightning
        logs the hyper-parameters again at every stage (fit, validate, test)."""
        from mlflow.entities import Param

        if self._params_logged:
            return
        self._params_logged = True
        data = dict(vars(params) if not isinstance(params, Mapping) else params)
        spec = data.get("spec")
        flat = flat_params(spec if isinstance(spec, Mapping) else data)
        client, run_id = self.experiment, self.run_id
        assert run_id is not None  # the experiment property made the run
        if self._continued:
            logged = client.get_run(run_id).data.params
            flat = {k: v for k, v in flat.items() if k not in logged}
        items = [Param(k, v) for k, v in flat.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
            client.log_batch(run_id, params=items[start : start + 100])

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Checkpoint) -> None:
        """Tag the run with the best checkpoint (the callback monitoring ``val/acc``) when it changes."""
        best = str(getattr(checkpoint_callback, "best_model_path", "") or "")
        if getattr(checkpoint_callback, "monitor", None) != "val/acc" or not best:
            return
        best = str(Path(best).resolve())
        if best != self._best:
            self._best = best
            self.experiment.set_tag(self.run_id, CHECKPOINT_TAG, best)

    def where(self) -> dict[str, str]:
        """The store, experiment and run (read from ``mlflow_run.json``: a run made by a DDP rank is not this
        object's)."""
        try:
            record = json.loads((self._out / RUN_FILE).read_text())
        except (OSError, ValueError):
            return {"mlflow": str(self._tracking_uri)}
        return {
            "mlflow": str(record["tracking_uri"]),
            "mlflow_experiment": str(record["experiment_id"]),
            "mlflow_run": str(record["run_id"]),
        }


def _continued_run(out: Path, uri: str) -> str | None:
    """The run a resumed training in ``out`` continues: the one ``mlflow_run.json`` names in the same store."""
    try:
        record = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("tracking_uri") != uri:
        return None
    run_id = record.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _active(client: MlflowClient, run_id: str, eid: str) -> bool:
    """Whether run ``run_id`` exists in experiment ``eid`` and is not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.lifecycle_stage == "active" and str(run.info.experiment_id) == eid
