"""Launchers: the SLURM script and the Kubernetes manifest as the schedulers read them; a real local Ray
cluster running a search with two worker tasks."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from archdsl.cli import main
from tests.test_cluster import write_search

STORAGE = "postgresql://archdsl:s3cret-pw@db.cluster.local:5432/archdsl"


def _generate(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    captured = capsys.readouterr()
    assert "s3cret-pw" not in captured.out
    assert "not written into the launch file" in captured.err
    return captured.out


def test_slurm_script_is_an_array_with_one_worker_per_gpu_and_requeue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    search = write_search(tmp_path)
    runs = tmp_path / "shared" / "runs"
    text = _generate(
        capsys,
        "cluster",
        "slurm",
        str(search),
        "--storage",
        STORAGE,
        "--nodes",
        "3",
        "--gpus-per-node",
        "8",
        "--dir",
        str(runs),
        "--time",
        "12:00:00",
        "--setup",
        "source /opt/venv/bin/activate",
    )
    script = tmp_path / "job.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)
    directives = dict(
        (line[len("#SBATCH ") :] + "=").split("=")[:2] for line in text.splitlines() if line.startswith("#SBATCH --")
    )
    assert directives["--array"] == "0-2"
    assert directives["--ntasks-per-node"] == "8" and directives["--gpus-per-task"] == "1"
    assert "--requeue" in directives
    assert directives["--signal"] == "B:USR1@120" and directives["--time"] == "12:00:00"
    assert directives["--output"] == f"{runs}/logs/slurm-%A_%a.out" and (runs / "logs").is_dir()
    assert "scontrol requeue" in text and "trap requeue USR1" in text
    (srun,) = [line for line in text.splitlines() if line.startswith("srun ")]
    argv = shlex.split(srun.rstrip(" &"))
    worker = argv[argv.index("archdsl") :]
    assert worker[:3] == ["archdsl", "worker", str(search.resolve())]
    assert worker[worker.index("--storage") + 1] == "postgresql://archdsl@db.cluster.local:5432/archdsl"
    assert worker[worker.index("--out") + 1] == str(runs) and worker[worker.index("--device") + 1] == "cuda"


def test_slurm_script_gives_multi_gpu_trials_their_gpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = write_search(tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text(base.read_text().replace("train: {", "train: {devices: 4, accelerator: cuda, "))
    text = _generate(
        capsys,
        "cluster",
        "slurm",
        str(search),
        "--storage",
        STORAGE,
        "--nodes",
        "2",
        "--gpus-per-node",
        "8",
        "--dir",
        str(tmp_path / "runs"),
    )
    assert "#SBATCH --ntasks-per-node=2" in text and "#SBATCH --gpus-per-task=4" in text
    assert (
        main(
            [
                "cluster",
                "slurm",
                str(search),
                "--storage",
                STORAGE,
                "--nodes",
                "1",
                "--gpus-per-node",
                "6",
                "--dir",
                str(tmp_path / "runs"),
            ]
        )
        == 2
    )
    assert "train.devices=4 GPUs, which does not divide --gpus-per-node 6" in capsys.readouterr().err


def test_slurm_refuses_an_sqlite_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = write_search(tmp_path)
    assert (
        main(["cluster", "slurm", str(search), "--storage", "sqlite:///x.db", "--nodes", "1", "--gpus-per-node", "1"])
        == 2
    )
    assert "--storage: a cluster needs a storage every node reaches" in capsys.readouterr().err


def test_kubernetes_manifest_is_an_indexed_job_with_gpu_limits_and_the_password_from_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    search = write_search(tmp_path)
    text = _generate(
        capsys,
        "cluster",
        "kubernetes",
        str(search),
        "--storage",
        STORAGE,
        "--workers",
        "4",
        "--gpus-per-worker",
        "1",
        "--image",
        "registry.example/archdsl:0.1",
        "--secret",
        "db-pass",
    )
    config, job = list(yaml.safe_load_all(text))
    assert config["kind"] == "ConfigMap" and job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 4 and spec["parallelism"] == 4
    assert spec["backoffLimit"] >= 4
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure" and pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/archdsl:0.1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e for e in container["env"]}
    assert env["ARCHDSL_STORAGE_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db-pass", "key": "password"}}
    argv = container["command"] + container["args"]
    assert argv[:3] == ["archdsl", "worker", "/etc/archdsl/search.yaml"]
    assert argv[argv.index("--storage") + 1] == "postgresql://archdsl@db.cluster.local:5432/archdsl"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["search"]["configMap"]["name"] == config["metadata"]["name"]
    assert "persistentVolumeClaim" in volumes["runs"]
    # the ConfigMap's files are a valid search: the same study (fingerprint) as the original files
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    for name, content in config["data"].items():
        (mounted / name).write_text(content)
    from archdsl.search.space.load import load_search

    assert load_search(mounted / "search.yaml").fingerprint() == load_search(search).fingerprint()
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])


@pytest.mark.slow
def test_a_local_ray_cluster_runs_a_search_with_two_worker_tasks(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is the optional extra archdsl[ray]")
    search = write_search(tmp_path, trials=6, epochs=1)
    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "archdsl",
                "search",
                str(search),
                "--out",
                str(out),
                "--ray",
                "auto",
                "--workers",
                "2",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        ray.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["stopped"] == "budget" and summary["trials"]["complete"] == 6
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6 and {t.user_attrs["worker"] for t in done} == {"ray-0", "ray-1"}
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
