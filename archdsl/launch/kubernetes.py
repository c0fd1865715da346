"""A Kubernetes Indexed Job: N worker pods on one study, with GPU limits and the password from a Secret.

The search definition and its base spec travel in a ConfigMap beside the Job, so the image needs only
archdsl installed (and ``sh``). Trial directories go to a PersistentVolumeClaim every pod mounts
(ReadWriteMany); a dataset claim can be mounted read-only (``--data-pvc NAME[:MOUNT]``). ``/dev/shm`` is a
memory-backed ``emptyDir`` of ``--shm-size`` (a container's own is 64 MB, which kills DataLoader workers and
NCCL); it counts against the pod's memory limit.

GPUs: each pod's ``nvidia.com/gpu`` limit is ``--gpus-per-worker``, which must equal the base spec's
``train.devices`` when that is a number (the worker runs ``--device cuda``, its trials train on that many
GPUs). With ``train.devices: auto`` a trial trains on every GPU the pod sees. ``--gpus-per-worker 0`` runs
CPU pods (``--device cpu``).

Failures (Kubernetes 1.29 or later: ``backoffLimitPerIndex``, ``podFailurePolicy``, ``restartPolicy:
Never``, so a failed pod is replaced by a new one, possibly on another node):

- a pod preempted, evicted or drained (condition ``DisruptionTarget``) gets SIGTERM, hands its trial back
  and is replaced without counting against its index's retries (``Ignore``). The worker exits 0 when it
  hands back, which would mark the index done: the container's ``sh`` wrapper exits 143 instead when the
  worker stopped on its SIGTERM;
- exit 2, bad input (a usage or spec error that every retry would repeat), fails the index at once
  (``FailIndex``);
- exit 75 (:data:`archdsl.search.DEVICE_LOST_EXIT`), a device fault that may have poisoned the process, is
  retried in a new pod, counted against ``backoffLimitPerIndex`` (``Count``): ``Ignore`` would replace the
  pod of a GPU that faults on every trial for ever, while the worker has already queued the trial again;
- any other failure counts against ``backoffLimitPerIndex``. Once more than ``maxFailedIndexes`` (half the
  workers) have failed for good, the cause is common to all (the image, the storage) and the Job fails.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from archdsl.errors import ArchDSLError, UsageError
from archdsl.launch.common import Launch
from archdsl.search import DEVICE_LOST_EXIT

__all__ = ["DataVolume", "KubernetesOptions", "SearchFiles", "kubernetes_manifest", "search_files", "trial_processes"]

MOUNT_SEARCH, MOUNT_RUNS, MOUNT_SHM = "/etc/archdsl", "/runs", "/dev/shm"
CONTAINER = "worker"
BAD_INPUT_EXIT = ArchDSLError.exit_code
"""The exit code of a usage or spec error: the same in every retry."""
STOPPED_EXIT = 143
"""What the pod's wrapper exits with when its worker handed back after SIGTERM (128 + SIGTERM)."""

HAND_BACK = f"""\
# SIGTERM (preemption, eviction, drain): the worker hands its trial back and exits 0; exit {STOPPED_EXIT} then,
# so the Job starts this index again instead of counting it done.
stopped=0
trap 'stopped=1; kill -TERM "$worker" 2>/dev/null' TERM
"$@" &
worker=$!
wait "$worker"; status=$?
while kill -0 "$worker" 2>/dev/null; do wait "$worker"; status=$?; done
if [ "$stopped" = 1 ] && [ "$status" = 0 ]; then exit {STOPPED_EXIT}; fi
exit "$status"
"""
"""The container's command (``sh -c HAND_BACK archdsl-worker ARGS...``): runs the worker, passes SIGTERM on."""

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE]\d+)?")
_FACTORS = {
    **{s: 1024 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: 1000 ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
}
_CPU = re.compile(r"(\d+(?:\.\d*)?|\.\d+)|(\d+)m")


@dataclass(frozen=True)
class DataVolume:
    """``--data-pvc NAME[:MOUNT]``: a dataset's PersistentVolumeClaim, mounted read-only."""

    claim: str
    mount: str = "/data"

    @classmethod
    def parse(cls, text: str) -> DataVolume:
        claim, colon, mount = text.partition(":")
        _dns_name("--data-pvc", claim, "a PersistentVolumeClaim name")
        if not colon:
            return cls(claim)
        if not mount.startswith("/") or ":" in mount:
            raise UsageError.option(
                "--data-pvc",
                f"NAME:MOUNT mounts the claim at MOUNT, an absolute path without ':' such as /data, got '{mount}'",
            )
        mount = posixpath.normpath(mount)
        for other, what in ((MOUNT_SEARCH, "search files"), (MOUNT_RUNS, "trial directories"), (MOUNT_SHM, "shm")):
            if mount == other or mount.startswith(other + "/") or other.startswith(mount.rstrip("/") + "/"):
                raise UsageError.option(
                    "--data-pvc", f"the mount point {mount} overlaps the pod's {what} at {other}: choose another MOUNT"
                )
        return cls(claim, mount)


@dataclass(frozen=True)
class KubernetesOptions:
    workers: int
    gpus_per_worker: int
    """``nvidia.com/gpu`` limit per pod; 0: CPU pods."""
    image: str
    secret: str = "archdsl-storage"
    """Secret holding the database password under the key ``password``."""
    pvc: str = "archdsl-runs"
    """PersistentVolumeClaim (ReadWriteMany) for the trial directories."""
    namespace: str | None = None
    cpu: str = "4"
    memory: str = "16Gi"
    backoff_per_worker: int = 3
    """``backoffLimitPerIndex``: failures (other than disruptions) a worker's index may have before it fails."""
    shm_size: str = "8Gi"
    """Size of the memory-backed ``/dev/shm``."""
    data: DataVolume | None = None


@dataclass(frozen=True)
class SearchFiles:
    """What the manifest carries of a search: its two files, and the base spec's device choice."""

    search_text: str
    """The search file, its ``base:`` pointing at ``base.yaml`` beside it."""
    base_text: str
    devices: int | Literal["auto"]
    """``train.devices`` (with the search file's ``set:``)."""
    accelerator: str
    devices_at: str
    """Where ``train.devices`` is written: ``FILE:LINE:COL``."""


def trial_processes(files: SearchFiles, gpus_per_worker: int) -> int:
    """How many processes a worker's trial trains in (``ddp_spawn`` ranks) in a pod of ``gpus_per_worker`` GPUs."""
    if isinstance(files.devices, int):
        return files.devices
    return gpus_per_worker if gpus_per_worker > 1 and files.accelerator in ("auto", "cuda", "gpu") else 1


def _dns_name(option: str, text: str, what: str, *, label: bool = False) -> None:
    rule, most = (_DNS_LABEL, 63) if label else (_DNS_SUBDOMAIN, 253)
    if not rule.fullmatch(text) or len(text) > most:
        dots = "" if label else ", '.'"
        raise UsageError.option(
            option,
            f"{what} is a DNS-1123 name (lowercase letters, digits, '-'{dots}; a letter or digit first and last; "
            f"at most {most} characters), got '{text}'",
        )


def _bytes(option: str, text: str) -> float:
    """A Kubernetes quantity (``8Gi``, ``512Mi``, ``16G``, ``1e9``) in bytes, refused unless positive."""
    m = _QUANTITY.fullmatch(text)
    if m is None or float(m.group(1)) <= 0:
        raise UsageError.option(
            option,
            f"a size is a positive Kubernetes quantity such as 8Gi, 512Mi or 16G (a number and one of the suffixes "
            f"Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E), got '{text}'",
        )
    suffix = m.group(2) or ""
    factor = 10 ** int(suffix[1:]) if suffix[:1] in ("e", "E") and len(suffix) > 1 else _FACTORS.get(suffix, 1)
    return float(m.group(1)) * factor


def _threads(text: str) -> int:
    """Torch threads of a pod given ``--cpu`` (``4``, ``2.5``, ``500m``): its whole CPUs, at least one."""
    m = _CPU.fullmatch(text)
    if m is None or (float(m.group(1)) if m.group(1) else int(m.group(2)) / 1000) <= 0:
        raise UsageError.option(
            "--cpu", f"CPUs are a positive Kubernetes quantity such as 4, 2.5 or 500m, got '{text}'"
        )
    return max(1, int(float(m.group(1)) if m.group(1) else int(m.group(2)) // 1000))


def _device(files: SearchFiles, gpus: int) -> str:
    """The worker's ``--device``, after checking that the pod's GPUs are the ones its trials train on (with
    ``--device cuda`` a trial of ``train.devices: auto`` trains on every GPU the pod sees)."""
    if not gpus:
        return "cpu"
    if isinstance(files.devices, int):
        if files.devices != gpus:
            raise UsageError.option(
                "--gpus-per-worker",
                f"the base spec trains each trial on train.devices={files.devices} GPU(s) ({files.devices_at}), but "
                f"--gpus-per-worker is {gpus}: give --gpus-per-worker {files.devices}, or change train.devices",
            )
    elif gpus > 1 and files.accelerator not in ("auto", "cuda", "gpu"):
        raise UsageError.option(
            "--gpus-per-worker",
            f"the base spec trains on train.accelerator={files.accelerator} with train.devices=auto "
            f"({files.devices_at}), one device per trial: --gpus-per-worker {gpus} would leave GPUs idle; "
            f"set train.devices: {gpus} and train.accelerator: cuda, or give --gpus-per-worker 1",
        )
    return "cuda"  # the worker refuses a torch without CUDA before it touches the study


def kubernetes_manifest(launch: Launch, files: SearchFiles, o: KubernetesOptions) -> str:
    if o.workers < 1 or o.gpus_per_worker < 0:
        raise UsageError.option(
            "--workers",
            f"--workers must be at least 1 and --gpus-per-worker not negative, got {o.workers} and {o.gpus_per_worker}",
        )
    _dns_name("--secret", o.secret, "a Secret name")
    _dns_name("--pvc", o.pvc, "a PersistentVolumeClaim name")
    if o.namespace:
        _dns_name("--namespace", o.namespace, "a namespace", label=True)
    threads = _threads(o.cpu)
    memory, shm = _bytes("--memory", o.memory), _bytes("--shm-size", o.shm_size)
    if shm > memory:
        raise UsageError.option(
            "--shm-size",
            f"/dev/shm is memory and counts against the pod's memory limit: --shm-size {o.shm_size} is more than "
            f"--memory {o.memory}",
        )
    device = _device(files, o.gpus_per_worker)
    name = f"archdsl-{_name(launch.study)}"
    labels = {"app.kubernetes.io/name": "archdsl", "archdsl/study": _name(launch.study)}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if o.namespace:
        meta["namespace"] = o.namespace
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**meta, "name": f"{name}-search"},
        "data": {"search.yaml": files.search_text, "base.yaml": files.base_text},
    }
    out = f"{MOUNT_RUNS}/{_name(launch.study)}"
    argv = launch.worker_argv(search=f"{MOUNT_SEARCH}/search.yaml", out=out, device=device)
    limits: dict[str, Any] = {"cpu": o.cpu, "memory": o.memory}
    if o.gpus_per_worker:
        limits["nvidia.com/gpu"] = o.gpus_per_worker
    mounts: list[dict[str, Any]] = [
        {"name": "search", "mountPath": MOUNT_SEARCH, "readOnly": True},
        {"name": "runs", "mountPath": MOUNT_RUNS},
        {"name": "dshm", "mountPath": MOUNT_SHM},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "search", "configMap": {"name": f"{name}-search"}},
        {"name": "runs", "persistentVolumeClaim": {"claimName": o.pvc}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": o.shm_size}},
    ]
    if o.data:
        mounts.append({"name": "data", "mountPath": o.data.mount, "readOnly": True})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": o.data.claim, "readOnly": True}})
    container = {
        "name": CONTAINER,
        "image": o.image,
        "command": ["sh", "-c", HAND_BACK, "archdsl-worker"],
        "args": argv,
        "env": [
            {"name": "ARCHDSL_STORAGE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": o.secret, "key": "password"}}},
            {"name": "OMP_NUM_THREADS", "value": str(threads)},
        ],
        "resources": {"requests": {"cpu": o.cpu, "memory": o.memory}, "limits": limits},
        "volumeMounts": mounts,
    }

    def exits(action: str, code: int) -> dict[str, Any]:
        return {"action": action, "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [code]}}

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "completionMode": "Indexed",
            "completions": o.workers,
            "parallelism": o.workers,
            "backoffLimitPerIndex": o.backoff_per_worker,
            "maxFailedIndexes": o.workers // 2,
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    exits("FailIndex", BAD_INPUT_EXIT),
                    exits("Count", DEVICE_LOST_EXIT),
                ]
            },
            "template": {
                "metadata": {"labels": dict(meta["labels"])},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
    gpus = f"{o.gpus_per_worker} GPU(s)" if o.gpus_per_worker else "no GPU"
    header = (
        f"# archdsl search '{launch.study}' on Kubernetes: {o.workers} worker pods ({gpus} each) on one study in "
        f"{launch.storage}.\n"
        f"# The password comes from Secret '{o.secret}' (key 'password'):\n"
        f"#   kubectl create secret generic {o.secret} --from-literal=password=...\n"
        f"# Trial directories: PersistentVolumeClaim '{o.pvc}' (ReadWriteMany), mounted at {MOUNT_RUNS}.\n"
        + (f"# Data: PersistentVolumeClaim '{o.data.claim}', mounted read-only at {o.data.mount}.\n" if o.data else "")
        + f"# /dev/shm: {o.shm_size} of the pod's {o.memory} memory. Needs Kubernetes 1.29 or later "
        "(backoffLimitPerIndex, podFailurePolicy).\n"
        "#   kubectl apply -f THIS_FILE\n"
    )
    return header + yaml.dump_all([config, job], Dumper=_Dumper, sort_keys=False, width=120)


def _name(text: str) -> str:
    """A DNS-1123 name: lowercase letters, digits and '-'."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return out[:52] or "search"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the files in the ConfigMap, the wrapper script) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def search_files(search_path: str) -> SearchFiles:
    """The search file's text with its ``base:`` line pointing at ``base.yaml`` beside it (comments kept),
    the base spec's text, and its ``train.devices``; both are checked first."""
    from archdsl.search.space import load_search

    space = load_search(search_path)
    lines = Path(search_path).read_text().splitlines(keepends=True)
    row = space.doc.locate("base").line - 1
    if 0 <= row < len(lines) and lines[row].startswith("base:"):
        lines[row] = f"base: base.yaml  # {space.definition.base} in the original\n"
        text = "".join(lines)
    else:  # base written inside a flow mapping: write the definition out again
        text = yaml.safe_dump({**space.doc.data, "base": "base.yaml"}, sort_keys=False, width=120)
    train = space.base_doc.data.get("train") or {}
    devices = train.get("devices", "auto")
    return SearchFiles(
        text,
        Path(space.base_doc.file).read_text(),
        devices if isinstance(devices, int) else "auto",
        str(train.get("accelerator", "auto")),
        str(space.base_doc.locate(("train", "devices"))),
    )
