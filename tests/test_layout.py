"""The house's layout: a torch-free front half, and no import cycles between modules or packages; and the
memory layout models are built in, per device (archdsl.plan.layout)."""

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
from archdsl.search.space.resolution import resolve
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


SEARCH = PACKAGE / "search"
STORAGES = SEARCH / "storages"
RECORD = SEARCH / "record.py"
FACES = (
    "archdsl.search",
    "archdsl.search.space",
    "archdsl.search.storages",
    "archdsl.search.report",
    "archdsl.search.proxies",
)
DRIVERS = ("sqlalchemy", "sqlite3", "psycopg", "pymysql")


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported_names(tree: ast.AST) -> set[str]:
    """Every module an import statement names, lazy ones and ``TYPE_CHECKING`` ones included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _private_optuna(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "optuna" and any(p.startswith("_") for p in parts[1:])


def _sql(tree: ast.AST) -> list[int]:
    """Lines that run SQL: a database driver's ``execute`` or SQLAlchemy's ``text``/``select``."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("execute", "executescript", "text", "select")
    ]


def test_private_optuna_modules_and_sql_live_in_the_storages_package_alone() -> None:
    offenders = []
    for name, path in _modules().items():
        if path.is_relative_to(STORAGES):
            continue
        tree = ast.parse(path.read_text())
        imported = _imported_names(tree)
        offenders += [f"{name}: imports {i}" for i in sorted(imported) if _private_optuna(i)]
        offenders += [f"{name}: imports {i}" for i in sorted(imported) if i.split(".")[0] in DRIVERS]
        offenders += [f"{name}:{line}: runs SQL" for line in _sql(tree)]
    assert offenders == []
    inside = [n for n, p in _modules().items() if p.is_relative_to(STORAGES) and _sql(ast.parse(p.read_text()))]
    assert inside, "the check must see the SQL the storages package does run"


ATTRS = ("user_attrs", "system_attrs")
SETTERS = ("set_user_attr", "set_system_attr")


def _attribute_access(tree: ast.AST) -> list[int]:
    """Lines that read or write a trial's or study's attributes by key: ``x.user_attrs[k]``,
    ``x.user_attrs.get(k)``, ``k in x.user_attrs``, ``x.set_user_attr(k, v)`` (and the system ones)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr in ATTRS:
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if func.attr in SETTERS or (isinstance(func.value, ast.Attribute) and func.value.attr in ATTRS):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(
            isinstance(c, ast.Attribute) and c.attr in ATTRS for c in node.comparators
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_record_reads_or_writes_trial_and_study_attributes() -> None:
    offenders = {
        name: lines
        for name, path in _modules().items()
        if path != RECORD and (lines := _attribute_access(ast.parse(path.read_text())))
    }
    assert offenders == {}
    assert len(_attribute_access(ast.parse(RECORD.read_text()))) >= 5  # the check sees the record's own


def test_fit_takes_a_planned_spec_and_keywords_it_names() -> None:
    tree = ast.parse((PACKAGE / "train" / "fit.py").read_text())
    fit = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.args.kwarg is None and fit.args.vararg is None
    assert [a.arg for a in fit.args.args] == ["planned", "out"]
    assert ast.unparse(fit.args.args[0].annotation) == "PlannedSpec"  # type: ignore[arg-type]
    assert len(fit.args.kwonlyargs) >= 5


def _type_checking_names(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module:
                    found.update({a.asname or a.name: imp.module for a in imp.names})
    return found


@pytest.mark.parametrize("face", FACES)
def test_each_search_package_has_a_face_that_loads_lazily(face: str) -> None:
    """``__all__`` is the face's table; each name resolves to what type checkers are told it is; importing the
    face imports none of its modules (Optuna and torch stay unloaded until a name is used)."""
    import importlib

    module = importlib.import_module(face)
    path = Path(module.__file__ or "")
    table = {name: mod for mod, names in module._EXPORTS.items() for name in names}
    assert sorted(table) == module.__all__
    assert _type_checking_names(ast.parse(path.read_text())) == table
    for name, mod in table.items():
        assert getattr(module, name) is getattr(importlib.import_module(mod), name)
    check = f"import sys, {face}\nassert not [m for m in sys.modules if m.startswith(('optuna', 'torch'))]\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_code_outside_the_search_package_uses_its_faces() -> None:
    """The rest of archdsl (CLI, launchers, export) imports ``archdsl.search`` and its subpackages through their
    faces, so moving a module inside the search package changes no other package."""
    offenders = []
    for name, path in _modules().items():
        if path.is_relative_to(SEARCH):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("archdsl.search") and module not in FACES:
                offenders.append(f"{name}: from {module} import ...")
    assert offenders == []


def test_every_launcher_lives_in_launch_and_the_search_never_imports_it() -> None:
    launch = {p.stem for p in (PACKAGE / "launch").glob("*.py")}
    assert {"local", "ray_tasks", "run", "slurm", "kubernetes"} <= launch
    graph = _graph(top_level_only=False)
    upward = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m.startswith("archdsl.search")
        for d in deps
        if d.startswith("archdsl.launch")
    )
    assert upward == []


def test_train_refuses_an_unplannable_spec_before_it_imports_torch(tmp_path: Path) -> None:
    """``archdsl train`` of a spec the planner refuses answers like ``validate``: the located line, exit 2, and
    neither torch nor Lightning loaded."""
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "name: huge\ninput: {channels: 3, size: 32}\nstem: {type: conv, channels: 16, kernel_size: 3}\n"
        "stages:\n  - {channels: 64, stride: 1, blocks: [{type: bottleneck, mixer: {type: halo, block_size: 5, "
        "halo_size: 1, num_heads: 2}}]}\nhead: {type: classifier, num_classes: 10}\n"
    )
    args = ["train", str(spec), "--out", str(tmp_path / "o")]
    check = (
        "import sys, contextlib, io\nfrom archdsl.cli import main\nerr = io.StringIO()\n"
        f"with contextlib.redirect_stderr(err):\n    code = main({args!r})\n"
        "print(err.getvalue())\nassert code == 2, code\n"
        "assert not [m for m in sys.modules if m.startswith(('torch', 'lightning'))]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{spec}:5:" in proc.stdout and "block_size" in proc.stdout
    assert not (tmp_path / "o").exists()


def test_memory_layout_is_chosen_per_device() -> None:
    """archdsl.plan.layout.channels_last is the plan's layout on the CPU for every zoo spec (HaloNet NCHW, its
    halo kernels reshape NCHW memory there) and channels-last for all of them on CUDA, where halo and global
    attention declare that either format serves (their fused path copies its operands into the kernel's layout)."""
    import archdsl
    from archdsl.kinds import load_kinds
    from archdsl.plan.layout import channels_last, layout_of

    load_kinds()  # the kinds declare their layouts when they register
    assert layout_of("mixer", "halo") == layout_of("mixer", "halo", "cpu") == "nchw"
    assert layout_of("mixer", "global_attention", "cuda") == layout_of("mixer", "halo", "cuda") == "any"
    assert layout_of("mixer", "conv", "cuda") == layout_of("pos_embed", "pos_embed", "cuda") == "any"
    nchw_on_cpu = set()
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        plan = archdsl.plan_model(archdsl.load_spec(path))
        assert channels_last(plan.nodes(), "cpu") == plan.channels_last, path.stem
        assert channels_last(plan.nodes(), "cuda"), path.stem
        if not plan.channels_last:
            nchw_on_cpu.add(path.stem)
    assert {f"halonet_h{i}" for i in range(8)} <= nchw_on_cpu


def test_a_built_model_moves_to_the_layout_of_its_device_with_the_same_outputs(tmp_path: Path) -> None:
    """fit builds the plan's (CPU) layout, then ``use_layout`` the training device's: a halo/global-attention
    hybrid (NCHW on the CPU) goes NHWC, as on CUDA, and back, computing the same logits."""
    import torch

    import archdsl
    from archdsl.compiler.build import build_from_plan
    from archdsl.plan.layout import channels_last
    from tests.test_search import BASE

    (tmp_path / "hybrid.yaml").write_text(BASE.replace("input: {channels: 1,", "input: {channels: 3,"))
    plan = archdsl.plan_model(archdsl.load_spec(tmp_path / "hybrid.yaml"))
    model = build_from_plan(plan).eval()
    assert not plan.channels_last and not model.channels_last and channels_last(plan.nodes(), "cuda")
    x = torch.randn(4, 3, 8, 8)

    def weight() -> torch.Tensor:  # the stem's 3x3 convolution of 3 channels: the two layouts differ in memory
        return next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1)

    with torch.no_grad():
        before = model(x)
        model.use_layout(True)
        assert model.channels_last and weight().is_contiguous(memory_format=torch.channels_last)
        assert not weight().is_contiguous()
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)
        model.use_layout(False)
        assert weight().is_contiguous() and not model.channels_last
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)


def test_a_device_declaration_holds_on_that_device_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from archdsl.plan import layout

    monkeypatch.setattr(layout, "_DECLARED", dict(layout._DECLARED))
    monkeypatch.setattr(layout, "_ON_DEVICE", dict(layout._ON_DEVICE))
    layout.declare_layout("block", "layout_probe", "nchw")
    layout.declare_layout("block", "layout_probe", "any", device="cuda")
    assert [layout.layout_of("block", "layout_probe", d) for d in ("cpu", "cuda", "mps")] == ["nchw", "any", "nchw"]
