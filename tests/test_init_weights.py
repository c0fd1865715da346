"""``train.init``: timm's and torchvision's ResNet-50 names (from the manifests of ``benchmarks.timm_manifests``, CI
has no timm), head dropped, the first stages of a hybrid, located problems with nothing half-loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from archdsl.cli import main
from archdsl.compiler.build import build_from_plan
from archdsl.errors import SpecError
from archdsl.plan.shapes import ModelPlan
from archdsl.planner import plan_model, plan_spec
from archdsl.spec.load import load_spec, spec_from_text
from archdsl.spec.train import InitSpec
from archdsl.train.fit import fit
from archdsl.weights import init_weights, match_init

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tests" / "data" / "timm" / "resnet50.json"
RESNET50 = ROOT / "specs" / "resnet50.yaml"

try:
    from safetensors.torch import save_file
except ImportError:  # pragma: no cover - safetensors is a dependency; the torch.save path is tested either way
    save_file = None


def manifest() -> dict[str, tuple[int, ...]]:
    return {key: tuple(shape) for key, shape in json.loads(MANIFEST.read_text()).items()}


def fake_checkpoint(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the manifest's keys and shapes (integer step counters for ``num_batches_tracked``)."""
    g = torch.Generator().manual_seed(seed)
    return {
        key: torch.randint(0, 100, shape, generator=g)
        if key.endswith("num_batches_tracked")
        else torch.randn(shape, generator=g)
        for key, shape in shapes.items()
    }


def save(state: dict[str, torch.Tensor], path: Path, fmt: str) -> Path:
    if fmt == "safetensors":
        if save_file is None:
            pytest.skip("safetensors is not installed")
        save_file(state, str(path))
    else:  # a training script's checkpoint: the state dict nested under "state_dict"
        torch.save({"state_dict": state, "epoch": 3}, path)
    return path


def init(path: Path | str, **fields: object) -> InitSpec:
    return InitSpec.model_validate({"from": str(path), **fields})


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("map_name", ["timm", "torchvision"])
def test_every_resnet50_tensor_of_the_manifest_is_named_with_its_shape(map_name: str) -> None:
    plan = plan_model(load_spec(RESNET50))
    model = shapes(build_from_plan(plan, "meta"))
    file = manifest()
    match = match_init(plan, init("x", map=map_name), model, file)
    assert len(match.pairs) == len(model) == len(file) and match.ignored == 0
    assert {ours for ours, _ in match.pairs} == set(model) and {key for _, key in match.pairs} == set(file)
    pairs = dict(match.pairs)
    assert pairs["stem.0.0.weight"] == "conv1.weight" and pairs["head.fc.bias"] == "fc.bias"
    assert pairs["stages.2.0.shortcut.0.weight"] == "layer3.0.downsample.0.weight"
    assert pairs["stages.3.2.mixer_norm.running_var"] == "layer4.2.bn2.running_var"


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_a_timm_resnet50_file_loads_every_tensor(tmp_path: Path, fmt: str) -> None:
    plan = plan_model(load_spec(RESNET50))
    model = build_from_plan(plan)
    state = fake_checkpoint(manifest())
    path = save(state, tmp_path / f"resnet50.{fmt}", fmt)
    assert init_weights(model, plan, init(path, map="timm")) == len(state)
    got = model.state_dict()
    assert torch.equal(got["stem.0.0.weight"], state["conv1.weight"])
    assert torch.equal(got["stages.1.3.expand.1.running_mean"], state["layer2.3.bn3.running_mean"])
    assert torch.equal(got["head.fc.weight"], state["fc.weight"])
    assert all(torch.equal(got[ours], state[key]) for ours, key in match_pairs(plan, state, "timm"))


def match_pairs(
    plan: ModelPlan, state: dict[str, torch.Tensor], map_name: str, **fields: object
) -> tuple[tuple[str, str], ...]:
    model = shapes(build_from_plan(plan, "meta"))
    file = {k: tuple(v.shape) for k, v in state.items()}
    return match_init(plan, init("x", map=map_name, **fields), model, file).pairs


def test_head_drop_keeps_the_fresh_classifier_of_another_class_count(tmp_path: Path) -> None:
    spec = load_spec(RESNET50, ["head.num_classes=10"])
    plan = plan_model(spec)
    model = build_from_plan(plan)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = fake_checkpoint(manifest())
    path = save(state, tmp_path / "resnet50.safetensors", "safetensors")
    with pytest.raises(
        SpecError, match=r"^head: checkpoint key fc.weight has \(1000, 2048\), the spec plans \(10, 2048\)"
    ):
        init_weights(model, plan, init(path, map="timm"))  # head: keep
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-loaded
    assert init_weights(model, plan, init(path, map="timm", head="drop")) == len(state) - 2
    got = model.state_dict()
    assert torch.equal(got["head.fc.weight"], before["head.fc.weight"])
    assert torch.equal(got["head.fc.bias"], before["head.fc.bias"])
    assert torch.equal(got["stages.3.2.expand.0.weight"], state["layer4.2.conv3.weight"])


HYBRID = """\
# ResNet-50's stem and first two stages, then a HaloNet stage: 64 px RGB
name: resnet50_halo_hybrid
input: {{channels: 3, size: 64}}
stem: {{type: conv, channels: 64, kernel_size: 7, stride: 2, pool: max}}
stages:
  - {{channels: 256, stride: 1, blocks: [{{type: bottleneck, repeat: 3}}]}}
  - {{channels: 512, stride: 2, blocks: [{{type: bottleneck, repeat: 4}}]}}
  - channels: 1024
    stride: 2
    blocks: [{{type: bottleneck, width: 128, mixer: {{type: halo, block_size: 2, halo_size: 1, num_heads: 4}}}}]
head: {{type: classifier, num_classes: 4}}
train:
  epochs: 1
  batch_size: 8
  accelerator: cpu
  data: {{name: synthetic, num_samples: 16}}
  init: {{from: {path}, map: timm, stages: {stages}, head: drop}}
"""


class FirstStep(Callback):
    """The backbone's tensors as the first training step finds them."""

    def on_train_start(self, trainer, module) -> None:  # type: ignore[no-untyped-def]
        self.state = {k: v.detach().clone() for k, v in module.backbone.state_dict().items()}


def test_stages_0_and_1_of_a_resnet50_start_a_hybrid_that_trains(tmp_path: Path) -> None:
    state = fake_checkpoint(manifest())
    path = save(state, tmp_path / "resnet50.safetensors", "safetensors")
    spec_path = tmp_path / "hybrid.yaml"
    spec_path.write_text(HYBRID.format(path=path, stages="[0, 1]"))
    first = FirstStep()
    result = fit(plan_spec(load_spec(spec_path)), tmp_path / "run", progress=False, callbacks=[first])
    assert result.epochs == 1
    got = first.state
    assert torch.equal(got["stem.0.0.weight"], state["conv1.weight"])
    assert torch.equal(got["stages.0.2.mixer.weight"], state["layer1.2.conv2.weight"])
    assert torch.equal(got["stages.1.3.expand.1.running_var"], state["layer2.3.bn3.running_var"])
    pairs = match_pairs(plan_model(load_spec(spec_path)), state, "timm", stages=[0, 1], head="drop")
    assert len(pairs) == sum(1 for k in state if k.startswith(("conv1.", "bn1.", "layer1.", "layer2.")))
    assert all(torch.equal(got[ours], state[key]) for ours, key in pairs)
    # stage 2's halo bottleneck has no ResNet names: asking for it is a located refusal, before any run
    spec_path.write_text(HYBRID.format(path=path, stages="[0, 1, 2]"))
    with pytest.raises(SpecError) as err:
        fit(plan_spec(load_spec(spec_path)), tmp_path / "run2", progress=False)
    assert str(err.value) == (
        f"{spec_path}:10:14: stages.2.blocks.0: the timm map cannot name this bottleneck block: a ResNet block's "
        "mixer is a 3x3 conv; this one's is halo (module stages.2.0); leave stage 2 out of train.init.stages"
    )
    assert not (tmp_path / "run2").exists()


TINY = """\
name: tiny
input: {{channels: 1, size: 8}}
stem: {{type: conv, channels: 8}}
stages:
  - {{channels: 16, stride: 2, blocks: [{{type: bottleneck, width: 8}}]}}
head: {{type: classifier, num_classes: 10}}
train:
  epochs: 1
  init: {{from: {path}, strict: {strict}}}
"""


def tiny(tmp_path: Path, state: dict[str, torch.Tensor], strict: bool = True) -> tuple[Path, Path]:
    """A tiny spec whose ``train.init`` reads ``state`` (archdsl's own names) from a torch.save file."""
    ckpt = tmp_path / "tiny.pt"
    torch.save(state, ckpt)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(path=ckpt, strict=str(strict).lower()))
    return spec, ckpt


def own_state(spec_text: str) -> dict[str, torch.Tensor]:
    model = build_from_plan(plan_model(spec_from_text(spec_text)))
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def mismatching_state(extra: str, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """The tiny spec's own state with a tensor missing, one of another shape, one unknown to its block and
    ``extra`` (of ``shape``) besides."""
    state = own_state(TINY.format(path="x", strict="true"))
    del state["stages.0.0.reduce.0.weight"]
    state["stages.0.0.mixer.weight"] = torch.zeros(8, 8, 5, 5)
    state["stages.0.0.extra"] = torch.zeros(3)
    state[extra] = torch.zeros(shape)
    return state


def test_problems_are_located_listed_together_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = mismatching_state("stem.0.0.bias", (8,))
    spec, _ = tiny(tmp_path, state)
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{spec}:5:40: stages.0.blocks.0: checkpoint key stages.0.0.reduce.0.weight is missing from 'tiny.pt'; "
        "the spec plans (8, 8, 1, 1) for stages.0.0.reduce.0.weight (strict: false keeps its fresh initialisation)",
        f"{spec}:5:40: stages.0.blocks.0: checkpoint key stages.0.0.mixer.weight has (8, 8, 5, 5), the spec plans "
        "(8, 8, 3, 3) for stages.0.0.mixer.weight",
        f"{spec}:5:40: stages.0.blocks.0: checkpoint key stages.0.0.extra (3,) in 'tiny.pt' names no tensor of "
        "module stages.0.0 (strict: false ignores it)",
        f"{spec}:3:1: stem: checkpoint key stem.0.0.bias (8,) in 'tiny.pt' names no tensor of module stem "
        "(strict: false ignores it)",
    ]
    assert not (tmp_path / "run").exists()  # refused before the run's directory was made


def test_exact_messages_of_a_mismatching_file(tmp_path: Path) -> None:
    state = mismatching_state("unknown.weight", (2,))
    spec_path, _ = tiny(tmp_path, state)
    spec = load_spec(spec_path)
    plan = plan_model(spec)
    model = build_from_plan(plan)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert spec.train is not None and spec.train.init is not None
    with pytest.raises(SpecError) as err:
        init_weights(model, plan, spec.train.init, spec.source.locate if spec.source else None)
    assert str(err.value).splitlines() == [
        f"{spec_path}:5:40: stages.0.blocks.0: checkpoint key stages.0.0.reduce.0.weight is missing from "
        "'tiny.pt'; the spec plans (8, 8, 1, 1) for stages.0.0.reduce.0.weight (strict: false keeps its fresh "
        "initialisation)",
        f"{spec_path}:5:40: stages.0.blocks.0: checkpoint key stages.0.0.mixer.weight has (8, 8, 5, 5), the spec "
        "plans (8, 8, 3, 3) for stages.0.0.mixer.weight",
        f"{spec_path}:5:40: stages.0.blocks.0: checkpoint key stages.0.0.extra (3,) in 'tiny.pt' names no tensor of "
        "module stages.0.0 (strict: false ignores it)",
        f"{spec_path}:9:16: train.init.from: checkpoint key unknown.weight (2,) in 'tiny.pt' names no tensor of the "
        "spec (strict: false ignores it)",
    ]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-loaded
    # strict: false tolerates the missing and the unknown tensors, never a shape
    with pytest.raises(SpecError, match=r"stages.0.0.mixer.weight has \(8, 8, 5, 5\)"):
        init_weights(model, plan, init(tmp_path / "tiny.pt", strict=False))
    del state["stages.0.0.mixer.weight"]
    torch.save(state, tmp_path / "tiny.pt")
    loaded = init_weights(model, plan, init(tmp_path / "tiny.pt", strict=False))
    assert loaded == len(before) - 2
    assert torch.equal(model.state_dict()["stem.0.0.weight"], state["stem.0.0.weight"])
    assert torch.equal(model.state_dict()["stages.0.0.mixer.weight"], before["stages.0.0.mixer.weight"])


def test_validate_checks_the_file_exists_and_the_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(path=tmp_path / "absent.pt", strict="true").replace("strict: true", "stages: [0, 3]"))
    assert main(["validate", str(spec)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{spec}:9:16: train.init.from: the checkpoint file must exist, '{tmp_path / 'absent.pt'}' does not exist",
        f"{spec}:9:{spec.read_text().splitlines()[8].index('3]') + 1}: train.init.stages.1: must name a stage of "
        "the spec (0 to 0), got 3",
    ]
    torch.save({"a": torch.zeros(1)}, tmp_path / "absent.pt")
    spec.write_text(TINY.format(path=tmp_path / "absent.pt", strict="true"))
    assert main(["validate", "-q", str(spec)]) == 0  # the file is not read: its tensors are training's concern


# timm's other families: ByobNet (BoTNet-50 as benchmarks.models.bot50_timm composes it, HaloNet-H0/H1) and VOLO.
# The halo mixers need compat: timm (timm's weights compute timm's function only there).
HALO_TIMM = [f"stages.{i}.blocks.0.mixer.compat=timm" for i in range(4)]
ZOO = {
    "botnet50": [],
    "halonet_h0": HALO_TIMM,
    "halonet_h1": HALO_TIMM,
    **{f"volo_d{k}": [] for k in range(1, 6)},
}


def timm_manifest(name: str) -> dict[str, tuple[int, ...]]:
    path = ROOT / "tests" / "data" / "timm" / f"{name}.json"
    return {key: tuple(shape) for key, shape in json.loads(path.read_text()).items()}


def zoo_plan(name: str, overrides: list[str] | None = None) -> ModelPlan:
    return plan_model(load_spec(ROOT / "specs" / f"{name}.yaml", ZOO[name] if overrides is None else overrides))


@pytest.mark.parametrize("name", list(ZOO))
def test_every_tensor_of_a_timm_zoo_manifest_is_named_with_its_shape(name: str) -> None:
    plan = zoo_plan(name)
    model = shapes(build_from_plan(plan, "meta"))
    file = timm_manifest(name)
    match = match_init(plan, init("x", map="timm"), model, file)
    assert len(match.pairs) == len(model) == len(file) and match.ignored == 0
    assert {ours for ours, _ in match.pairs} == set(model) and {key for _, key in match.pairs} == set(file)
    pairs, transformed = dict(match.pairs), dict(match.transforms)
    if name.startswith("volo"):
        assert (
            pairs["stem.3.weight"] == "patch_embed.proj.weight"
            and pairs["stages.1.0.weight"] == "network.1.proj.weight"
        )
        assert pairs["stages.1.1.pos"] == "pos_embed" and set(transformed) == {"stages.1.1.pos"}
        assert pairs["head.blocks.1.attn.kv.weight"] == "post_network.1.attn.kv.weight"
        assert pairs["head.aux_head.bias"] == "aux_head.bias" and pairs["head.head.weight"] == "head.weight"
    else:
        assert pairs["stem.0.0.weight"] == "stem.conv1.conv.weight" and pairs["head.fc.bias"] == "head.fc.bias"
        assert pairs["stages.3.0.shortcut.1.running_var"] == "stages.3.0.shortcut.bn.running_var"
        assert pairs["stages.3.2.mixer_norm.weight"] == "stages.3.2.post_attn.weight"
        tables = "stages.3.1.mixer.relpos.table_w"
        assert pairs[tables] == "stages.3.1.self_attn.pos_embed.width_rel" and tables not in transformed
        kv = [ours for ours in model if ours.endswith("mixer.kv.weight")]
        assert set(transformed) == set(kv) and (len(kv) > 0) == name.startswith("halonet")


def test_volo_d1_transformer_groups_are_numbered_through_the_stage() -> None:
    plan = zoo_plan("volo_d1")
    match = match_init(plan, init("x", map="timm"), shapes(build_from_plan(plan, "meta")), timm_manifest("volo_d1"))
    pairs = dict(match.pairs)  # timm's D1 groups its 14 transformer blocks 4, 8, 2 (network.2 to network.4)
    assert pairs["stages.1.2.attn.qkv.weight"] == "network.2.0.attn.qkv.weight"  # stages.1.0, .1: merge, pos embed
    assert pairs["stages.1.7.mlp.fc1.bias"] == "network.3.1.mlp.fc1.bias"
    assert pairs["stages.1.15.norm2.weight"] == "network.4.1.norm2.weight"
    assert pairs["stages.0.3.attn.attn.weight"] == "network.0.3.attn.attn.weight"


def test_a_timm_halonet_kv_is_reordered_from_per_head_to_all_keys_then_all_values(tmp_path: Path) -> None:
    plan = zoo_plan("halonet_h0")
    model = build_from_plan(plan)
    state = fake_checkpoint(timm_manifest("halonet_h0"))
    path = save(state, tmp_path / "halonet_h0.safetensors", "safetensors")
    assert init_weights(model, plan, init(path, map="timm")) == len(state)
    got = model.state_dict()
    theirs, ours = state["stages.1.2.self_attn.kv.weight"], got["stages.1.2.mixer.kv.weight"]
    n, dq, dv = 8, 16, 16  # stage 1: width 128, 8 heads, value_ratio 1
    assert theirs.shape == ours.shape == (n * (dq + dv), 128, 1, 1)
    for h in range(n):  # timm: rows [k_h; v_h] per head; archdsl: every head's keys, then every head's values
        start = h * (dq + dv)
        assert torch.equal(ours[h * dq : (h + 1) * dq], theirs[start : start + dq])
        assert torch.equal(ours[n * dq + h * dv : n * dq + (h + 1) * dv], theirs[start + dq : start + dq + dv])
    assert not torch.equal(ours, theirs)
    assert torch.equal(got["stages.1.2.mixer.q.weight"], state["stages.1.2.self_attn.q.weight"])
    assert torch.equal(got["stages.3.0.mixer.relpos.table_h"], state["stages.3.0.self_attn.pos_embed.height_rel"])


def test_a_timm_volo_pos_embed_goes_channels_first(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "specs" / "volo_d1.yaml")
    plan = plan_model(spec)
    model = shapes(build_from_plan(plan, "meta"))
    file = timm_manifest("volo_d1")
    match = match_init(plan, init("x", map="timm"), model, file)
    pos = torch.randn(file["pos_embed"])
    (transform,) = (t for ours, t in match.transforms if ours == "stages.1.1.pos")
    assert file["pos_embed"] == (1, 14, 14, 384) and model["stages.1.1.pos"] == (1, 384, 14, 14)
    assert torch.equal(transform.tensor(pos), pos.permute(0, 3, 1, 2))
    file["pos_embed"] = (1, 12, 12, 384)  # a checkpoint of another size: the shape after the transform is shown
    with pytest.raises(SpecError) as err:
        match_init(plan, init("x", map="timm"), model, file)
    assert str(err.value) == (
        "stages.1.pos_embed: checkpoint key pos_embed has (1, 12, 12, 384) ((1, 384, 12, 12) after "
        "channels-last (1, H, W, C) -> channels-first (1, C, H, W)), the spec plans (1, 384, 14, 14) for "
        "stages.1.1.pos"
    )


def test_halo_mixers_outside_timm_mode_and_files_of_no_timm_family_are_refused() -> None:
    plan = zoo_plan("halonet_h1", HALO_TIMM[1:])  # stage 0 keeps the paper's arithmetic
    model = shapes(build_from_plan(plan, "meta"))
    with pytest.raises(SpecError) as err:
        match_init(plan, init("x", map="timm"), model, timm_manifest("halonet_h1"))
    lines = str(err.value).splitlines()
    assert len(lines) == 3  # the three blocks of stage 0, nothing else (their keys are not unexpected)
    assert lines[0] == (
        "stages.0.blocks.0: the timm ByobNet map cannot name this bottleneck block: timm's HaloAttn weights compute "
        "timm's function only in the halo mixer's timm mode; set compat: timm (module stages.0.0); leave stage 0 "
        "out of train.init.stages"
    )
    with pytest.raises(SpecError) as err:
        match_init(plan, init("x", map="timm"), model, {"blocks.0.weight": (3,), "fc.weight": (2, 3)})
    assert str(err.value) == (
        "train.init.from: the timm map reads the checkpoints of ResNet (keys layer1.*); ByobNet: BoTNet, HaloNet "
        "(keys stages.0.0.conv1_1x1.*); VOLO (keys network.*); this file's keys are none of these (it starts "
        "blocks.0.weight, fc.weight) (the file)"
    )


def test_a_resumed_run_takes_its_own_checkpoint_not_the_init_file(tmp_path: Path) -> None:
    """``--resume`` continues from the run's checkpoint: the init file is not read again (here it is gone), and
    the weights go on from where the first run left them."""
    state = own_state(TINY.format(path="x", strict="true"))
    spec, ckpt = tiny(tmp_path, state)
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run)]) == 0
    trained = torch.load(run / "last.ckpt", weights_only=True)["state_dict"]["backbone.stem.0.0.weight"]
    assert not torch.equal(trained, state["stem.0.0.weight"])  # it trained from the file's weights
    ckpt.unlink()
    assert main(["train", str(spec), "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert json.loads((run / "result.json").read_text())["epochs"] == 2
