"""The house's layout: a torch-free front half, and no import cycles between modules or packages."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "archdsl"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """archdsl modules imported by ``path`` (``if TYPE_CHECKING:`` blocks excluded)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt], inside_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, inside_function)
                continue
            if isinstance(node, ast.Import) and not (inside_function and top_level_only):
                found.update(a.name for a in node.names if a.name.startswith("archdsl"))
            elif isinstance(node, ast.ImportFrom) and not (inside_function and top_level_only):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
                if base.startswith("archdsl"):
                    found.add(base)
                    found.update(f"{base}.{a.name}" for a in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                    nested = inside_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    visit(
                        [c for c in children if isinstance(c, ast.stmt)]
                        or [s for h in children for s in getattr(h, "body", [])],
                        nested,
                    )

    visit(ast.parse(path.read_text()).body, False)
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in _imports(p, top_level_only) if i in files and i != m} for m, p in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


@pytest.mark.parametrize("lazy", [False, True], ids=["top-level imports", "lazy imports too"])
def test_no_module_imports_itself_through_others(lazy: bool) -> None:
    assert _cycle(_graph(top_level_only=not lazy)) is None


def test_no_import_cycles_between_packages() -> None:
    """Packages (``archdsl.spec``, ``archdsl.plan``, ``archdsl.blocks``, ...) import each other in one direction
    only, lazy imports inside functions included; the lazily loaded ``archdsl`` root is the API, not a layer."""
    modules = _graph(top_level_only=False)

    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for m, deps in modules.items():
        if m == "archdsl":
            continue
        outside = {package(d) for d in deps} - {package(m), "archdsl"}
        graph.setdefault(package(m), set()).update(outside)
    assert _cycle(graph) is None


FRONT_HALF = {
    "import the spec and plan packages": "import archdsl, archdsl.plan, archdsl.spec, archdsl.planner",
    "validate, summary, schema and --help": """
from archdsl.cli import main
import glob, contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["validate", *sorted(glob.glob("specs/*.yaml")), *sorted(glob.glob("search/*.yaml"))]) == 0
    assert main(["summary", "specs/volo_d1.yaml", "--blocks"]) == 0
    assert main(["summary", "specs/halonet_h1.yaml", "--json", "--tree"]) == 0
    assert main(["schema"]) == 0
    try:
        main(["--help"])
    except SystemExit:
        pass
""",
    "resolve, plan and reject 100 trials of the digits search": """
import optuna
from archdsl.planner import plan_model
from archdsl.search.space.resolve import resolve
from archdsl.search.space.load import load_search
optuna.logging.set_verbosity(optuna.logging.ERROR)
space = load_search("search/digits.yaml")
rejected = 0
def objective(trial):
    global rejected
    plan = plan_model(resolve(space, trial))
    if plan.params > 72_000:  # about half of the digits space (54k to 167k parameters)
        rejected += 1
        raise optuna.TrialPruned()
    return plan.params
study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(objective, n_trials=100)
assert len(study.trials) == 100 and 0 < rejected < 100
""",
}


@pytest.mark.parametrize("code", list(FRONT_HALF.values()), ids=list(FRONT_HALF))
def test_the_front_half_never_imports_torch(code: str) -> None:
    check = code + "\nimport sys\nassert 'torch' not in sys.modules, [m for m in sys.modules if 'torch' in m][:5]\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
