"""Hostile YAML is refused with one located line, in bounded memory, before the work it would cost is done.

Each case is a reproducer that once took gigabytes, minutes, or crashed with a traceback. Memory is measured
with ``tracemalloc`` (the peak of Python allocations while reading), not time: a refusal must not allocate
anything proportional to what the file asks for.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from archdsl.cli import main
from archdsl.errors import SpecError
from archdsl.spec.source import read_yaml, read_yaml_text

ROOT = Path(__file__).resolve().parent.parent
PEAK_MB = 50.0


def _refused(read: Callable[[], object]) -> tuple[str, float]:
    """The one error line of ``read()`` and the peak MB it allocated."""
    line, peak = _refused_by(SpecError, read)
    assert "\n" not in line
    return line, peak


def _merge_bomb(levels: int) -> str:
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "]}")
    return "\n".join(lines) + "\n"


def test_merge_key_bomb_is_counted_before_it_is_expanded() -> None:
    text = _merge_bomb(9)  # 10^9 mappings once merged; eight levels took 38 s and 2.8 GB before
    assert len(text) < 700
    line, peak = _refused(lambda: read_yaml_text(text, "m.yaml"))
    assert line.startswith("m.yaml:") and "YAML nodes, over the ceiling of 200,000" in line
    assert "ARCHDSL_MAX_YAML_NODES=N" in line
    assert peak < PEAK_MB


def test_merge_keys_within_the_ceiling_still_merge() -> None:
    doc = read_yaml_text("base: &b {a: 1, b: 2}\nx: {<<: *b, b: 3}\n")
    assert doc.data["x"] == {"a": 1, "b": 3}


def test_the_ceiling_is_raised_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _merge_bomb(4)  # about 20,000 nodes
    monkeypatch.setenv("ARCHDSL_MAX_YAML_NODES", "1000")
    with pytest.raises(SpecError, match="over the ceiling of 1,000 "):
        read_yaml_text(text)
    monkeypatch.setenv("ARCHDSL_MAX_YAML_NODES", "100000")
    assert len(read_yaml_text(text).data) == 5


def test_deep_nesting_is_located_not_a_recursion_error() -> None:
    line, peak = _refused(lambda: read_yaml_text("x: " + "[" * 500 + "]" * 500 + "\n", "n.yaml"))
    assert (
        line == "n.yaml:1:67: mappings and lists nest 65 levels, over the ceiling of 64 "
        "(raise it with ARCHDSL_MAX_YAML_DEPTH=N)"
    )
    assert peak < PEAK_MB
    assert read_yaml_text("x: " + "[" * 60 + "]" * 60 + "\n").data["x"] is not None


@pytest.mark.parametrize("text", ["x: &r [*r]\n", "x: &r {a: *r}\n", "x: &r [1, [2, *r]]\n"])
def test_recursive_alias_is_refused(text: str) -> None:
    line, _ = _refused(lambda: read_yaml_text(text, "r.yaml"))
    assert line.startswith("r.yaml:1:") and "recursive alias" in line


@pytest.mark.parametrize(("byte", "code"), [(b"\x00", "U+0000"), (b"\x07", "U+0007"), (b"\x1b", "U+001B")])
def test_control_bytes_are_located(tmp_path: Path, byte: bytes, code: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: ok\nstem: a" + byte + b"b\n")
    line, _ = _refused(lambda: read_yaml(path))
    assert line.startswith(f"{path}:2:8: invalid YAML: the control character {code} is not allowed")


def test_huge_integer_is_refused_by_its_digits() -> None:
    line, peak = _refused(lambda: read_yaml_text("name: x\nsize: " + "9" * 5000 + "\n", "i.yaml"))
    assert (
        line == "i.yaml:2:7: size: an integer of 5,000 digits, over the ceiling of 24 "
        "(raise it with ARCHDSL_MAX_INT_DIGITS=N)"
    )
    assert peak < PEAK_MB


def test_large_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as f:
        f.write("name: ")
        f.write("x" * (20 * 2**20))
    line, peak = _refused(lambda: read_yaml(path))
    assert (
        line == f"{path}: the file has {20 * 2**20 + 6:,} bytes, over the ceiling of 1,048,576 "
        "(raise it with ARCHDSL_MAX_FILE_BYTES=N)"
    )
    assert peak < 1.0  # nothing of it was read


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "directory"])
def test_devices_fifos_and_directories_are_not_read(tmp_path: Path, special: str) -> None:
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "f.yaml"
        os.mkfifo(path)  # nothing ever writes to it: opening it would block forever
    elif special == "directory":
        path = tmp_path
    line, _ = _refused(lambda: read_yaml(path))
    assert line == f"{path}: is not a regular file (a directory, FIFO or device); give a YAML file"


def test_a_search_whose_base_is_a_device_is_refused(tmp_path: Path) -> None:
    from archdsl.errors import ArchDSLError
    from archdsl.search.space.load import load_search

    path = tmp_path / "s.yaml"
    path.write_text("base: /dev/zero\nparams:\n  train.optimizer.lr: {float: [1.0e-3, 2.0e-3]}\n")
    with pytest.raises(ArchDSLError, match="/dev/zero: is not a regular file"):
        load_search(path)


def test_validate_goes_on_past_a_hostile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \x00\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 500 + "]" * 500 + "\n")
    good = ROOT / "specs" / "hybrid_tiny.yaml"
    assert main(["validate", str(bad), str(deep), str(good)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 2 and "Traceback" not in captured.err
    assert f"ok  {good}" in captured.out


BASE = (ROOT / "specs" / "digits_search_base.yaml").read_text()


@pytest.mark.parametrize(
    ("line", "path", "says"),
    [
        ("  optimizer: {name: adamw, lr: .inf}", "train.optimizer.lr", "must be a finite number"),
        ("  optimizer: {name: adamw, weight_decay: .nan}", "train.optimizer.weight_decay", "must be a finite number"),
        ("  optimizer: {name: adamw, betas: [2.0, -1.0]}", "train.optimizer.betas.0", "must be less than 1"),
        ("  schedule: {warmup_epochs: .inf}", "train.schedule.warmup_epochs", "must be a finite number"),
        ("  grad_clip: .inf", "train.grad_clip", "must be a finite number"),
        ("  seed: 4294967296", "train.seed", "must be less than or equal to 4294967295"),
        ("  devices: 0", "train.devices", "must be greater than or equal to 1"),
        ("  data: {name: synthetic, num_samples: 1e12}", "train.data.num_samples", "must be a valid integer"),
    ],
)
def test_values_that_would_fail_at_run_time_fail_at_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, path: str, says: str
) -> None:
    lines = [row for row in BASE.splitlines() if not row.startswith(f"  {line.split(':')[0].strip()}:")]
    text = "\n".join(lines) + "\n" + line + "\n"
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{spec}:{len(lines) + 1}:") and f": {path}: {says}" in err, err


def test_sampler_seed_must_fit_32_bits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = tmp_path / "s.yaml"
    search.write_text(
        f"base: {ROOT / 'specs' / 'digits_search_base.yaml'}\nsampler: {{seed: 4294967296}}\n"
        "params:\n  train.optimizer.lr: {float: [1.0e-3, 2.0e-3]}\n"
    )
    assert main(["validate", str(search)]) == 2
    assert f"{search}:2:" in capsys.readouterr().err


def test_a_model_too_large_to_allocate_is_refused_where_its_weights_are(tmp_path: Path) -> None:
    import archdsl

    text = BASE.replace("channels: 64", "channels: 1000000000000", 1)
    row = next(i for i, r in enumerate(text.splitlines(), 1) if "1000000000000" in r)
    path = tmp_path / "huge.yaml"
    path.write_text(text)
    tracemalloc.start()
    try:
        with pytest.raises(Exception) as err:
            archdsl.plan_model(archdsl.load_spec(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert (
        message.startswith(f"{path}:")
        and "over the ceiling of 5,000,000,000 (raise it with ARCHDSL_MAX_PARAMS=N)" in message
    )
    assert int(message.split(":")[1]) >= row - 1 and peak / 2**20 < PEAK_MB


@pytest.mark.parametrize(
    ("params", "sampler", "says"),
    [
        (
            "  conv_stages: {int: [0, 10000000]}",
            "tpe",
            "params.conv_stages: must lie in 0..4 (the base's stages), got [0, 10000000]",
        ),
        (
            "  stages.2.channels: {int: [1, 30000000]}",
            "grid",
            "params: the grid has 30,000,000 grid points, over the ceiling of 1,000,000",
        ),
        ("  stages.2.channels: {int: [1, 1000000000000]}", "grid", "params: the grid has 1,000,000,000,000 grid"),
        ('  "": {choice: [1]}', "tpe", "a parameter is named by a dotted spec path such as stages.0.channels, got ''"),
    ],
)
def test_search_ranges_are_counted_not_listed(tmp_path: Path, params: str, sampler: str, says: str) -> None:
    from archdsl.errors import ArchDSLError
    from archdsl.search.space.load import load_search

    search = tmp_path / "s.yaml"
    search.write_text(
        f"base: {ROOT / 'specs' / 'digits_search_base.yaml'}\nsampler: {{name: {sampler}}}\nparams:\n{params}\n"
    )
    line, peak = _refused_by(ArchDSLError, lambda: load_search(search))
    assert line.startswith(f"{search}:") and says in line, line
    assert peak < PEAK_MB


def _refused_by(kind: type[Exception], read: Callable[[], object]) -> tuple[str, float]:
    tracemalloc.start()
    try:
        with pytest.raises(kind) as err:
            read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return str(err.value), peak / 2**20


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["search", "S", "--trials", "0"], "argument --trials: must be at least 1, got 0"),
        (["search", "S", "--timeout", "-1"], "argument --timeout: must be a finite number of minutes > 0, got -1"),
        (["search", "S", "--timeout", "inf"], "argument --timeout: must be a finite number of minutes > 0"),
        (["worker", "S", "--storage", "sqlite:///x.db", "--threads", "0"], "argument --threads: must be at least 1"),
        (["predict", "D", "I", "--top", "-3"], "argument --top: must be at least 1, got -3"),
        (["train", "S", "--epochs", "many"], "argument --epochs: must be an integer, got 'many'"),
    ],
)
def test_numbers_on_the_command_line_are_checked(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and says in capsys.readouterr().err


def test_an_input_too_large_to_train_is_refused_at_its_largest_output(tmp_path: Path) -> None:
    import archdsl

    path = tmp_path / "big.yaml"
    path.write_text((ROOT / "specs" / "digits_se.yaml").read_text().replace("size: 16", "size: 1000000"))
    line, peak = _refused_by(Exception, lambda: archdsl.plan_model(archdsl.load_spec(path)))
    assert line.startswith(f"{path}:") and ": stages.0.blocks.0: one training step at batch 64 keeps" in line
    assert "(raise it with ARCHDSL_MAX_ACTIVATION_BYTES=N); this part's output is 48x1000000x1000000" in line
    assert peak < PEAK_MB
