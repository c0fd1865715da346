"""Minimal reproducer: inductor (CPU) fusing ``F.fold`` with stride 2 into the ops before it.

Outlook attention's fold step alone: a softmax-weighted window product folded back with ``F.fold``
(kernel 3, padding 1, stride 2), compiled with the default inductor backend and compared with eager. On
torch 2.13.0 (CPU) the process aborts (glibc: ``malloc_consolidate(): invalid chunk size``), which is why
``archdsl.nn.outlook`` folds with ``index_add`` while compiling. Exit code 0: compiled == eager on this
torch; 1: they differ. A crash shows as a non-zero exit of the process itself.

Run: python -m benchmarks.fold_repro
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F


def fold_step(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    b, heads, length, k2, d = v.shape
    y = (a.softmax(-1) @ v).permute(0, 1, 4, 3, 2).reshape(b, heads * d * k2, length)
    return F.fold(y, output_size=(28, 28), kernel_size=3, padding=1, stride=2)


def main() -> int:
    torch.manual_seed(0)
    a = torch.randn(2, 6, 196, 9, 9)
    v = torch.randn(2, 6, 196, 9, 32)
    eager = fold_step(a, v)
    compiled = torch.compile(fold_step, fullgraph=True)(a, v)
    err = (compiled - eager).abs().max().item()
    print(f"torch {torch.__version__}: max |compiled - eager| = {err:.3g}")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
