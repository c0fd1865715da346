"""The Kubernetes manifest against Kubernetes' own schemas (``kubernetes-validate``, offline, strict): /dev/shm,
the dataset claim, GPUs equal to ``train.devices``, the pod failure policy; and the container's wrapper, run
by ``sh``, turning a worker's hand-back after SIGTERM into a failed pod whose index is started again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from archdsl.cli import main
from archdsl.launch.kubernetes import HAND_BACK
from archdsl.search import DEVICE_LOST_EXIT
from tests.test_cluster import write_search

# The oldest Kubernetes the manifest is for (backoffLimitPerIndex and FailIndex, beta and on by default from
# 1.29) and the newest whose schemas the installed kubernetes-validate ships.
VERSIONS = ("1.29", ".".join(latest_version().split(".")[:2]))
STORAGE = "postgresql://archdsl@db.cluster.local:5432/archdsl"  # not reachable from here: the budget is not checked


def _search(tmp_path: Path, train: str = "") -> Path:
    search = write_search(tmp_path)
    if train:
        base = tmp_path / "base.yaml"
        base.write_text(base.read_text().replace("train: {", f"train: {{{train}, "))
    return search


def _manifest(
    capsys: pytest.CaptureFixture[str], search: Path, *options: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    argv = ["cluster", "kubernetes", str(search), "--storage", STORAGE, "--image", "registry.example/archdsl:0.1"]
    assert main([*argv, *options]) == 0
    captured = capsys.readouterr()
    config, job = yaml.safe_load_all(captured.out)
    return config, job, captured.err


def _refused(capsys: pytest.CaptureFixture[str], search: Path, *options: str) -> str:
    argv = ["cluster", "kubernetes", str(search), "--storage", STORAGE, "--image", "registry.example/archdsl:0.1"]
    assert main([*argv, *options]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


@pytest.mark.parametrize("version", VERSIONS)
def test_the_manifest_passes_kubernetes_schemas_with_shm_data_gpus_and_the_failure_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    search = _search(tmp_path, "devices: 2, accelerator: cuda")
    config, job, err = _manifest(
        capsys,
        search,
        "--workers",
        "4",
        "--gpus-per-worker",
        "2",
        "--shm-size",
        "12Gi",
        "--memory",
        "48Gi",
        "--data-pvc",
        "imagenet-1k:/datasets/imagenet",
    )
    for document in (config, job):
        assert kubernetes_validate.validate(document, version, strict=True) == version
    assert "connections not checked: postgresql://archdsl@db.cluster.local:5432/archdsl does not answer" in err
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    # /dev/shm: memory-backed, of the size asked for
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "12Gi"}
    # the dataset's claim, read-only on the volume and on the mount
    data = mounts["/datasets/imagenet"]
    assert data["readOnly"] is True
    assert volumes[data["name"]]["persistentVolumeClaim"] == {"claimName": "imagenet-1k", "readOnly": True}
    # GPUs: train.devices, and the worker trains on them with --device cuda
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    args = container["args"]
    assert args[:3] == ["archdsl", "worker", "/etc/archdsl/search.yaml"] and args[args.index("--device") + 1] == "cuda"
    # failures: a replaced pod per failure, retries per index, the policy's rules in order
    assert pod["restartPolicy"] == "Never" and "backoffLimit" not in spec
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] == 3 and spec["maxFailedIndexes"] == 2
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    by_code = {r["onExitCodes"]["values"][0]: r for r in rules[1:]}
    assert all(r["onExitCodes"]["containerName"] == container["name"] for r in rules[1:])
    assert by_code[2]["action"] == "FailIndex" and by_code[2]["onExitCodes"]["operator"] == "In"
    assert DEVICE_LOST_EXIT == 75 and by_code[75]["action"] == "Count"
    assert container["command"][:2] == ["sh", "-c"]


def test_gpus_per_worker_must_equal_a_numeric_train_devices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = _search(tmp_path, "devices: 2")
    base = tmp_path / "base.yaml"
    row = next(i for i, line in enumerate(base.read_text().splitlines(), 1) if line.startswith("train:"))
    col = base.read_text().splitlines()[row - 1].index("devices: 2") + len("devices: ") + 1
    err = _refused(capsys, search, "--workers", "2", "--gpus-per-worker", "4")
    assert err == (
        f"--gpus-per-worker: the base spec trains each trial on train.devices=2 GPU(s) ({base}:{row}:{col}), but "
        "--gpus-per-worker is 4: give --gpus-per-worker 2, or change train.devices\n"
    )
    assert "give --gpus-per-worker 2" in _refused(capsys, search, "--workers", "2", "--gpus-per-worker", "1")


def test_devices_auto_trains_on_every_gpu_of_the_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``train.devices: auto`` with 8 GPUs: ``--device cuda``, under which an ``auto`` trial trains on every GPU
    the worker sees (it trained on one); one GPU runs ``--device cuda`` too; none runs ``--device cpu``."""
    search = _search(tmp_path)  # train.devices unset: auto
    _, job, err = _manifest(capsys, search, "--workers", "2", "--gpus-per-worker", "8")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert container["args"][container["args"].index("--device") + 1] == "cuda"
    assert "warning: connections not checked" in err and "2 workers will hold 6 and up to 10" in err
    for gpus, device in (("1", "cuda"), ("0", "cpu")):
        _, job, _ = _manifest(capsys, search, "--workers", "2", "--gpus-per-worker", gpus)
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["args"][container["args"].index("--device") + 1] == device
        assert ("nvidia.com/gpu" in container["resources"]["limits"]) == (gpus != "0")
    cpu = _search(tmp_path / "cpu", "accelerator: cpu")
    assert "would leave GPUs idle" in _refused(capsys, cpu, "--workers", "1", "--gpus-per-worker", "8")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--shm-size", "8GB"),
            "--shm-size: a size is a positive Kubernetes quantity such as 8Gi, 512Mi or 16G (a number and one of the "
            "suffixes Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E), got '8GB'",
        ),
        (
            ("--shm-size", "32Gi"),
            "--shm-size: /dev/shm is memory and counts against the pod's memory limit: --shm-size 32Gi is more than "
            "--memory 16Gi",
        ),
        (
            ("--data-pvc", "ImageNet"),
            "--data-pvc: a PersistentVolumeClaim name is a DNS-1123 name (lowercase letters, digits, '-', '.'; a "
            "letter or digit first and last; at most 253 characters), got 'ImageNet'",
        ),
        (
            ("--data-pvc", "imagenet:data"),
            "--data-pvc: NAME:MOUNT mounts the claim at MOUNT, an absolute path without ':' such as /data, got 'data'",
        ),
        (
            ("--data-pvc", "imagenet:/runs/x"),
            "--data-pvc: the mount point /runs/x overlaps the pod's trial directories at /runs: choose another MOUNT",
        ),
    ],
)
def test_bad_sizes_and_claims_are_refused_at_their_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], message: str
) -> None:
    search = _search(tmp_path)
    assert _refused(capsys, search, "--workers", "2", "--gpus-per-worker", "1", *options) == message + "\n"


WORKER = """\
import signal, sys, time
code = int(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # hands its trial back, exits 0 like archdsl worker
print("ready", flush=True)
time.sleep(60 if code < 0 else 0)
sys.exit(max(code, 0))
"""


def _wrapped(code: int) -> subprocess.Popen[str]:
    argv = ["sh", "-c", HAND_BACK, "archdsl-worker", sys.executable, "-c", WORKER, str(code)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("code", [0, 2, DEVICE_LOST_EXIT, 1])
def test_the_wrapper_passes_the_workers_exit_code_on(code: int) -> None:
    proc = _wrapped(code)
    assert proc.wait(timeout=30) == code


def test_the_wrapper_fails_the_pod_when_the_worker_handed_back_after_sigterm() -> None:
    """Exit 0 would mark the index done and lose the worker; 143 (with ``DisruptionTarget``: ``Ignore``) starts
    it again."""
    proc = _wrapped(-1)  # runs until SIGTERM
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143 and time.monotonic() - started < 10


def test_device_cuda_trains_an_auto_trial_on_every_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the pod's 8 GPUs look like to the worker (no GPU here: torch's count is set to 8)."""
    import torch

    from archdsl.spec.train import TrainSpec
    from archdsl.train.placement import parse_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert parse_device("cuda").trainer_args(TrainSpec.model_validate({"devices": "auto"})) == ("gpu", 8, 8)
    assert parse_device("cuda").trainer_args(TrainSpec.model_validate({"devices": 2})) == ("gpu", 2, 2)
    assert parse_device("cuda:3").trainer_args(TrainSpec.model_validate({"devices": "auto"})) == ("gpu", [3], 1)
