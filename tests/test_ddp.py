"""A multi-device trial: Lightning DDP on two CPU processes (gloo), reporting and pruning through rank 0."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import optuna
import pytest
from lightning.pytorch.callbacks import Callback

from archdsl.planner import plan_spec
from archdsl.search.pruning import PruningCallback
from archdsl.search.space.definition import WorkersSpec
from archdsl.search.storages.connect import StudyRef, open_storage, parse_storage_url
from archdsl.spec.load import spec_from_text
from archdsl.train.fit import Abandoned, fit
from archdsl.train.placement import Placement

SPEC = """\
name: ddp_tiny
input: {channels: 1, size: 8}
stem: {type: conv, channels: 8, kernel_size: 3}
stages:
  - {channels: 16, stride: 2, blocks: [{type: bottleneck, width: 8, mixer: {type: global_attention, num_heads: 2}}]}
head: {type: classifier, num_classes: 10}
train: {epochs: 3, devices: 2, accelerator: cpu, batch_size: 64, optimizer: {lr: 3.0e-3}, data: {name: digits}}
"""


class RankRecorder(Callback):
    """Each rank writes what it saw at the end of training (module level: spawned ranks unpickle it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pruning = next(c for c in trainer.callbacks if isinstance(c, PruningCallback))  # type: ignore[attr-defined]
        record = {
            "rank": trainer.global_rank,
            "world": trainer.world_size,
            "epochs": trainer.current_epoch,
            "should_stop": trainer.should_stop,
            "connected": pruning.trial is not None,
        }
        (self.directory / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def _study(tmp_path: Path) -> tuple[optuna.Study, StudyRef]:
    ref = parse_storage_url(f"sqlite:///{tmp_path / 'study.db'}")
    workers = WorkersSpec(heartbeat_seconds=1, grace_seconds=5)
    study = optuna.create_study(
        study_name="ddp",
        storage=open_storage(ref, workers),
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    return study, StudyRef(ref, workers, "ddp")


def _ranks(directory: Path) -> list[dict[str, object]]:
    return sorted((json.loads(p.read_text()) for p in directory.glob("rank*.json")), key=lambda r: r["rank"])  # type: ignore[arg-type, return-value]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_two_process_gloo_trial_reports_on_rank_zero_and_prunes_on_both_ranks(tmp_path: Path) -> None:
    study, ref = _study(tmp_path)
    spec = spec_from_text(SPEC)

    # 1. no other trials yet: the pruner keeps it, every epoch is reported once, by rank 0 only
    first = study.ask()
    seen = tmp_path / "first"
    seen.mkdir()
    callback = PruningCallback(first, "val/acc", ref)
    result = fit(
        plan_spec(spec),
        tmp_path / "t0",
        force=True,
        progress=False,
        callbacks=[callback, RankRecorder(seen)],
        placement=Placement("cpu"),
    )
    assert result.epochs == 3 and Path(result.checkpoint).is_file()
    assert result.val_acc * 360 == pytest.approx(round(result.val_acc * 360))  # evaluated once, on all 360 images
    ranks = _ranks(seen)
    assert [(r["rank"], r["world"], r["epochs"]) for r in ranks] == [(0, 2, 3), (1, 2, 3)]
    assert [r["connected"] for r in ranks] == [True, False]  # rank 1 never opened the storage
    frozen = study.trials[first.number]
    assert sorted(frozen.intermediate_values) == [1, 2, 3]  # steps: epochs trained
    assert frozen.user_attrs["epoch"] == 3
    study.tell(first, result.val_acc)

    # 2. a trial far below the first one at epoch 0: rank 0 decides to prune and both ranks stop after epoch 0
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={1: 1.0, 2: 1.0, 3: 1.0}))
    second = study.ask()
    seen = tmp_path / "second"
    seen.mkdir()
    with pytest.raises(Abandoned) as stop:
        callbacks = [PruningCallback(second, "val/acc", ref), RankRecorder(seen)]
        fit(
            plan_spec(spec),
            tmp_path / "t1",
            force=True,
            progress=False,
            callbacks=callbacks,
            placement=Placement("cpu"),
        )
    assert stop.value.epoch == 0
    ranks = _ranks(seen)
    assert [(r["rank"], r["epochs"], r["should_stop"]) for r in ranks] == [(0, 1, True), (1, 1, True)]
    pruned = study.trials[second.number]
    assert list(pruned.intermediate_values) == [1] and pruned.intermediate_values[1] < 1.0
    assert (tmp_path / "t1" / "best.ckpt").is_file()  # the epoch that ran was checkpointed before stopping


SLURM_TASK_2_OF_4 = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "archdsl-workers",
    "SLURM_NTASKS": "4",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_PROCID": "2",
    "SLURM_LOCALID": "2",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
    "SLURM_STEP_ID": "0",
}


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_a_trial_trains_as_its_own_inside_a_slurm_task(tmp_path: Path, devices: int) -> None:
    """Under the variables of task 2 of a 4-task SLURM step (what ``srun`` gives every worker), a trial's ranks
    come from its own spawn: a 2-device trial trains (it died with ``IndexError`` in ``parallel_devices``), and a
    1-device trial's process is rank zero, so it writes ``metrics.csv`` and says nothing of ``srun``."""
    import os
    import subprocess
    import sys

    spec = tmp_path / "ddp.yaml"
    spec.write_text(SPEC.replace("epochs: 3", "epochs: 1").replace("devices: 2", f"devices: {devices}"))
    env = {**os.environ, **SLURM_TASK_2_OF_4}
    proc = subprocess.run(
        [sys.executable, "-m", "archdsl", "train", str(spec), "--out", str(tmp_path / "run"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["epochs"] == 1
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert "srun" not in proc.stderr
