"""A Kubernetes Indexed Job: N worker pods on one study, with GPU limits and the password from a Secret.

The search definition and its base spec travel in a ConfigMap beside the Job, so the image needs only
archdsl installed. Trial directories go to a PersistentVolumeClaim every pod mounts (ReadWriteMany).
Pods restart on failure (``restartPolicy: OnFailure``, ``backoffLimit``). A pod deleted by preemption or
a node drain gets SIGTERM, hands its trial back and exits 0 within ``terminationGracePeriodSeconds``;
the other pods retry the trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from archdsl.errors import UsageError
from archdsl.launch.common import Launch

__all__ = ["KubernetesOptions", "kubernetes_manifest"]

MOUNT_SEARCH, MOUNT_RUNS = "/etc/archdsl", "/runs"


@dataclass(frozen=True)
class KubernetesOptions:
    workers: int
    gpus_per_worker: int
    image: str
    secret: str = "archdsl-storage"
    """Secret holding the database password under the key ``password``."""
    pvc: str = "archdsl-runs"
    """PersistentVolumeClaim (ReadWriteMany) for the trial directories."""
    namespace: str | None = None
    cpu: str = "4"
    memory: str = "16Gi"
    backoff_per_worker: int = 3


def _name(text: str) -> str:
    """A DNS-1123 name: lowercase letters, digits and '-'."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return out[:52] or "search"


def kubernetes_manifest(launch: Launch, search_text: str, base_text: str, o: KubernetesOptions) -> str:
    if o.workers < 1 or o.gpus_per_worker < 0:
        raise UsageError.option(
            "--workers",
            f"--workers must be at least 1 and --gpus-per-worker not negative, got {o.workers} and {o.gpus_per_worker}",
        )
    if o.gpus_per_worker and o.gpus_per_worker < launch.gpus_per_worker:
        raise UsageError.option(
            "--gpus-per-worker",
            f"the base spec trains each trial on train.devices={launch.gpus_per_worker} GPUs; "
            f"--gpus-per-worker {o.gpus_per_worker} is too few",
        )
    name = f"archdsl-{_name(launch.study)}"
    labels = {"app.kubernetes.io/name": "archdsl", "archdsl/study": _name(launch.study)}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if o.namespace:
        meta["namespace"] = o.namespace
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**meta, "name": f"{name}-search"},
        "data": {"search.yaml": search_text, "base.yaml": base_text},
    }
    out = f"{MOUNT_RUNS}/{_name(launch.study)}"
    argv = launch.worker_argv(search=f"{MOUNT_SEARCH}/search.yaml", out=out)
    if not o.gpus_per_worker:
        argv[argv.index("--device") + 1] = "cpu"
    limits: dict[str, Any] = {"cpu": o.cpu, "memory": o.memory}
    if o.gpus_per_worker:
        limits["nvidia.com/gpu"] = o.gpus_per_worker
    container = {
        "name": "worker",
        "image": o.image,
        "command": argv[:1],
        "args": argv[1:],
        "env": [
            {"name": "ARCHDSL_STORAGE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": o.secret, "key": "password"}}},
            {"name": "OMP_NUM_THREADS", "value": str(o.cpu)},
        ],
        "resources": {"requests": {"cpu": o.cpu, "memory": o.memory}, "limits": limits},
        "volumeMounts": [
            {"name": "search", "mountPath": MOUNT_SEARCH, "readOnly": True},
            {"name": "runs", "mountPath": MOUNT_RUNS},
        ],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "completionMode": "Indexed",
            "completions": o.workers,
            "parallelism": o.workers,
            "backoffLimit": o.backoff_per_worker * o.workers,
            "template": {
                "metadata": {"labels": dict(meta["labels"])},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": [
                        {"name": "search", "configMap": {"name": f"{name}-search"}},
                        {"name": "runs", "persistentVolumeClaim": {"claimName": o.pvc}},
                    ],
                },
            },
        },
    }
    header = (
        f"# archdsl search '{launch.study}' on Kubernetes: {o.workers} worker pods on one study in {launch.storage}.\n"
        f"# The password comes from Secret '{o.secret}' (key 'password'):\n"
        f"#   kubectl create secret generic {o.secret} --from-literal=password=...\n"
        f"# Trial directories: PersistentVolumeClaim '{o.pvc}' (ReadWriteMany), mounted at {MOUNT_RUNS}.\n"
        "#   kubectl apply -f THIS_FILE\n"
    )
    return header + yaml.dump_all([config, job], Dumper=_Dumper, sort_keys=False, width=120)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the files in the ConfigMap) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def search_texts(search_path: str) -> tuple[str, str]:
    """The search file's text with its ``base:`` line pointing at ``base.yaml`` beside it (comments kept),
    and the base spec's text; both are checked first."""
    from archdsl.search.space import load_search

    space = load_search(search_path)
    lines = Path(search_path).read_text().splitlines(keepends=True)
    row = space.doc.locate("base").line - 1
    if 0 <= row < len(lines) and lines[row].startswith("base:"):
        lines[row] = f"base: base.yaml  # {space.definition.base} in the original\n"
        text = "".join(lines)
    else:  # base written inside a flow mapping: write the definition out again
        text = yaml.safe_dump({**space.doc.data, "base": "base.yaml"}, sort_keys=False, width=120)
    return text, Path(space.base_doc.file).read_text()
