"""``archdsl cluster slurm|kubernetes SEARCH.yaml --storage URL ...``: launch files for a cluster's scheduler."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archdsl.cli._command import at_least, command


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("search", metavar="SEARCH.yaml", help="search definition")
    p.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="the study's database, reachable from every node (no password: workers read ARCHDSL_STORAGE_PASSWORD)",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: the search file's stem)")
    p.add_argument(
        "--trials", type=at_least(1), metavar="N", help="finished trials of the whole study (default: budget.trials)"
    )
    p.add_argument("--out", metavar="FILE", help="write the launch file here (default: standard output)")
    p.add_argument(
        "--allow-import", action="store_true", help="let the workers import train.data.name=custom data modules"
    )


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="scheduler", metavar="SCHEDULER", required=True)
    s = sub.add_parser(
        "slurm",
        help="a job-array script: one worker per GPU, requeued on preemption",
        description="Writes an sbatch script: an array of --nodes tasks, each running one "
        "`archdsl worker` per GPU (per train.devices GPUs for multi-GPU trials).",
    )
    _common(s)
    s.add_argument("--nodes", type=at_least(1), required=True, metavar="N", help="array tasks, one node each")
    s.add_argument("--gpus-per-node", type=at_least(0), required=True, metavar="G", help="0: CPU nodes")
    s.add_argument("--cpus-per-gpu", type=at_least(1), default=4, metavar="C")
    s.add_argument(
        "--cpus-per-worker", type=at_least(1), metavar="C", help="CPUs of each worker (default: --cpus-per-gpu x GPUs)"
    )
    s.add_argument(
        "--workers-per-node", type=at_least(1), default=1, metavar="N", help="workers per CPU node (--gpus-per-node 0)"
    )
    s.add_argument(
        "--dir",
        metavar="DIR",
        help="the workers' --out, on a filesystem every node reads (default: runs/search/NAME, made absolute)",
    )
    s.add_argument("--time", metavar="HH:MM:SS", help="time limit per array task (requeued before it runs out)")
    s.add_argument("--partition", metavar="NAME")
    s.add_argument("--account", metavar="NAME")
    s.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="LINE",
        help="a shell line to run before the workers (repeatable), e.g. 'source venv/bin/activate'",
    )
    k = sub.add_parser(
        "kubernetes",
        help="an Indexed Job manifest with GPU limits and the password from a Secret",
        description="Writes a ConfigMap (the search definition and base spec) and an Indexed Job "
        "of --workers pods running `archdsl worker`.",
    )
    _common(k)
    k.add_argument("--workers", type=at_least(1), required=True, metavar="N", help="worker pods")
    k.add_argument(
        "--gpus-per-worker",
        type=at_least(0),
        required=True,
        metavar="G",
        help="nvidia.com/gpu limit per pod: train.devices when that is a number (auto: the trials use all G); "
        "0: CPU pods",
    )
    k.add_argument("--image", required=True, metavar="IMAGE", help="container image with archdsl installed")
    k.add_argument("--secret", default="archdsl-storage", metavar="NAME", help="Secret with key 'password'")
    k.add_argument("--pvc", default="archdsl-runs", metavar="NAME", help="ReadWriteMany claim for trial directories")
    k.add_argument("--namespace", metavar="NAME")
    k.add_argument("--cpu", default="4", metavar="N", help="CPU request and limit per pod")
    k.add_argument("--memory", default="16Gi", metavar="SIZE", help="memory request and limit per pod")
    k.add_argument(
        "--shm-size",
        default="8Gi",
        metavar="SIZE",
        help="memory-backed /dev/shm per pod, for DataLoader workers and NCCL (counts against --memory)",
    )
    k.add_argument(
        "--data-pvc",
        metavar="NAME[:MOUNT]",
        help="mount this PersistentVolumeClaim (a dataset) read-only at MOUNT (default /data)",
    )


@command("cluster", "write launch files for SLURM or Kubernetes (archdsl never schedules by itself)", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.atomic import atomic_write_text
    from archdsl.launch.common import launch_for
    from archdsl.search.storages import check_launch_budget, parse_storage_url, server_url

    # The study's server is asked only for its connection budget (no study is made), after every other check.
    ref = parse_storage_url(args.storage)
    if ref.kind in ("postgresql", "mysql"):
        server_url(ref)  # a URL that cannot be read is refused before anything else
    if args.scheduler == "slurm":
        from archdsl.launch.slurm import SlurmOptions, slurm_script, workers_per_task

        launch = launch_for(
            args.search, args.storage, args.study, args.dir, args.trials, allow_import=args.allow_import
        )
        options = SlurmOptions(
            args.nodes,
            args.gpus_per_node,
            args.cpus_per_gpu,
            args.cpus_per_worker,
            args.workers_per_node,
            args.time,
            args.partition,
            args.account,
            tuple(args.setup),
        )
        text = slurm_script(launch, options)
        workers = args.nodes * workers_per_task(launch, options)
        check_launch_budget(ref, workers, option="--nodes", trial_processes=launch.gpus_per_worker)
        Path(launch.out, "logs").mkdir(parents=True, exist_ok=True)  # SLURM opens --output before the script runs
    else:
        from archdsl.launch.kubernetes import (
            DataVolume,
            KubernetesOptions,
            kubernetes_manifest,
            search_files,
            trial_processes,
        )

        launch = launch_for(args.search, args.storage, args.study, None, args.trials, allow_import=args.allow_import)
        files = search_files(args.search)
        text = kubernetes_manifest(
            launch,
            files,
            KubernetesOptions(
                args.workers,
                args.gpus_per_worker,
                args.image,
                args.secret,
                args.pvc,
                args.namespace,
                args.cpu,
                args.memory,
                shm_size=args.shm_size,
                data=DataVolume.parse(args.data_pvc) if args.data_pvc is not None else None,
            ),
        )
        processes = trial_processes(files, args.gpus_per_worker)
        check_launch_budget(ref, args.workers, option="--workers", trial_processes=processes)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
