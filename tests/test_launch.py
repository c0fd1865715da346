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
    assert spec["backoffLimitPerIndex"] >= 1 and "podFailurePolicy" in spec  # tests/test_kubernetes.py: the rules
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/archdsl:0.1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e for e in container["env"]}
    assert env["ARCHDSL_STORAGE_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db-pass", "key": "password"}}
    argv = container["args"]  # run by the command, a shell wrapper (tests/test_kubernetes.py)
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


# The connection budget of the cluster launchers, on the real PostgreSQL server: the launch file's workers must
# fit its max_connections; writing the file reads the budget and creates nothing.

REFUSED = (
    r"connections: {workers} workers hold {typical} and up to {most} of PostgreSQL's {max} \({reserved} reserved, "
    r"(\d+) in use\), more than the (-?\d+) free: raise max_connections in postgresql\.conf \(then restart the "
    r"server\), run fewer workers, or put Optuna's gRPC storage proxy in front of the database"
)


def _server(url: str) -> tuple[int, int, list[str]]:
    """``max_connections``, the reserved connections and the tables of the database at ``url``."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(sqlalchemy.engine.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT name, setting FROM pg_settings")).all()
            tables = sqlalchemy.inspect(conn).get_table_names()
    finally:
        engine.dispose()
    settings = {name: setting for name, setting in rows}
    reserved = int(settings["superuser_reserved_connections"]) + int(settings.get("reserved_connections", 0))
    return int(settings["max_connections"]), reserved, tables


def _with_devices(tmp_path: Path, devices: int) -> Path:
    search = write_search(tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text(base.read_text().replace("train: {", f"train: {{devices: {devices}, "))
    return search


@pytest.mark.parametrize(
    ("scheduler", "devices", "options", "line"),
    [
        ("slurm", 1, ("--nodes", "2", "--gpus-per-node", "8"), "16 workers hold 32 and up to 64"),
        # 2-process trials (DDP on the CPU here): each trial's rank 0 opens the study again, one more connection
        (
            "slurm",
            2,
            ("--nodes", "2", "--gpus-per-node", "0", "--workers-per-node", "3"),
            "6 workers (with their trials' rank 0) hold 18 and up to 30",
        ),
        (
            "kubernetes",
            2,
            ("--workers", "3", "--gpus-per-worker", "2", "--image", "i"),
            "3 workers (with their trials' rank 0) hold 9 and up to 15",
        ),
    ],
)
def test_cluster_launchers_print_the_connection_budget_and_create_no_study(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    postgres_url: str,
    scheduler: str,
    devices: int,
    options: tuple[str, ...],
    line: str,
) -> None:
    search = _with_devices(tmp_path, devices)
    argv = ["cluster", scheduler, str(search), "--storage", postgres_url, "--out", str(tmp_path / "launch"), *options]
    assert main([*argv, *(["--dir", str(tmp_path / "runs")] if scheduler == "slurm" else [])]) == 0
    most, reserved, tables = _server(postgres_url)
    (said,) = [s for s in capsys.readouterr().err.splitlines() if s.startswith("connections:")]
    assert re.fullmatch(
        rf"connections: {re.escape(line)} of PostgreSQL's {most} \({reserved} reserved, \d+ in use\)"
        r"(; \d+ are free, so they may wait for connections when busy)?",
        said,
    ), said
    assert (tmp_path / "launch").is_file()
    assert tables == []  # not even Optuna's schema: the launch file's workers make the study


@pytest.mark.parametrize(
    ("scheduler", "options", "option", "workers"),
    [
        ("slurm", ("--nodes", "500", "--gpus-per-node", "8"), "--nodes", 4000),
        ("kubernetes", ("--workers", "500", "--gpus-per-worker", "1", "--image", "i"), "--workers", 500),
    ],
)
def test_cluster_launchers_refuse_more_workers_than_the_server_has_connections(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    postgres_url: str,
    scheduler: str,
    options: tuple[str, ...],
    option: str,
    workers: int,
) -> None:
    search = _with_devices(tmp_path, 1)
    out, runs = tmp_path / "launch", tmp_path / "runs"
    argv = ["cluster", scheduler, str(search), "--storage", postgres_url, "--out", str(out), *options]
    assert main([*argv, *(["--dir", str(runs)] if scheduler == "slurm" else [])]) == 2
    captured = capsys.readouterr()
    most, reserved, tables = _server(postgres_url)
    expected = REFUSED.format(workers=workers, typical=2 * workers, most=4 * workers, max=most, reserved=reserved)
    match = re.fullmatch(f"{option}: {expected}\n", captured.err)
    assert match is not None, captured.err
    assert int(match.group(2)) == most - reserved - int(match.group(1))  # free = max - reserved - in use
    assert captured.out == "" and not out.exists() and not runs.exists() and tables == []


def test_cluster_writes_the_launch_file_when_the_server_does_not_answer_from_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A login node may not reach the database: one warning line, and the file is written."""
    search = write_search(tmp_path)
    argv = ["cluster", "slurm", str(search), "--storage", STORAGE, "--nodes", "2", "--gpus-per-node", "4"]
    assert main([*argv, "--dir", str(tmp_path / "runs")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("#!/bin/bash")
    (warning,) = [s for s in captured.err.splitlines() if "connections" in s]
    assert warning.startswith(
        "warning: connections not checked: postgresql://archdsl:***@db.cluster.local:5432/archdsl does not answer "
        "from here ("
    )
    assert warning.endswith("); 8 workers will hold 16 and up to 32 of its max_connections")
    bad = ["cluster", "slurm", str(search), "--storage", "postgresql://archdsl@db:port/x", "--nodes", "1"]
    assert main([*bad, "--gpus-per-node", "1"]) == 2
    assert capsys.readouterr().err == (
        "--storage: cannot read the storage URL postgresql://***: invalid literal for int() with base 10: 'port'\n"
    )


def test_a_ray_search_checks_the_connections_of_the_tasks_it_would_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    """The tasks Ray would start: ``--workers``, else one per ``train.devices`` GPUs of the cluster; too many
    are refused before any task starts (at ``--workers``, or at ``--ray`` when the cluster's GPUs set the count)."""
    from archdsl.errors import UsageError
    from archdsl.launch.ray_tasks import _run, worker_tasks
    from archdsl.search import WorkerOptions
    from archdsl.search.space.load import load_search
    from archdsl.search.storages import open_storage, parse_storage_url

    assert worker_tasks({"CPU": 64.0, "GPU": 8.0}, 2, None) == 4
    assert worker_tasks({"CPU": 64.0, "GPU": 8.0}, 1, 3) == 3
    assert worker_tasks({"CPU": 64.0}, 1, None) == 1

    class NoTasks:
        def __init__(self, resources: dict[str, float]) -> None:
            self.resources = resources

        def cluster_resources(self) -> dict[str, float]:
            return self.resources

        def remote(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("a task was started")

    space = load_search(_with_devices(tmp_path, 2))
    ref = parse_storage_url(postgres_url)
    storage = open_storage(ref, space.definition.workers)
    options = WorkerOptions(out=tmp_path / "out")
    for resources, workers, option, n in (({"CPU": 4.0}, 600, "--workers", 600), ({"GPU": 1600.0}, None, "--ray", 800)):
        with pytest.raises(UsageError) as refused:
            _run(NoTasks(resources), space, ref, "s", options, workers, None, storage)
        (problem,) = refused.value.problems
        assert problem.path == option
        assert problem.message.startswith(f"connections: {n} workers (with their trials' rank 0) hold {3 * n} and ")
    # a budget that fits is printed, and the tasks would start
    with pytest.raises(AssertionError, match="a task was started"):
        _run(NoTasks({"CPU": 4.0}), space, ref, "s", options, 2, None, storage)
    assert "connections: 2 workers (with their trials' rank 0) hold 6 and up to 10 of" in capsys.readouterr().err
