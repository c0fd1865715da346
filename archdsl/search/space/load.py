"""Load a search definition with its base spec, and check every parameter path at load time."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from archdsl.errors import Problem, SearchError, SpecError, brief
from archdsl.limits import GRID_POINTS
from archdsl.registry import suggest
from archdsl.search.space.components import COMPONENT_ROWS, apply_components
from archdsl.search.space.conv_stages import apply_conv_stages
from archdsl.search.space.definition import (
    COMPONENTS,
    CONV_STAGES,
    PROXY_METRIC,
    BlockChoiceParam,
    ChoiceParam,
    IntParam,
    SearchDefinition,
)
from archdsl.search.space.identity import fingerprint, identity
from archdsl.search.space.paths import assign, expand, is_valid_path, parse_pattern, suggest_path
from archdsl.spec.errors import problems_from_validation
from archdsl.spec.load import parse_spec
from archdsl.spec.source import SourceDoc, read_yaml, read_yaml_text

__all__ = ["SearchSpace", "load_search", "search_from_text"]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search definition and the base spec it modifies."""

    definition: SearchDefinition
    doc: SourceDoc
    """The search file as read (for locating errors)."""
    base_doc: SourceDoc
    """The base spec as read; trials start from a copy of its data."""
    name: str
    """Default study name: the search file's stem."""

    @property
    def objective_names(self) -> list[str]:
        return [o.metric for o in self.definition.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.resolved_direction for o in self.definition.objectives]

    def fingerprint(self) -> str:
        """Hash of what is searched (:mod:`archdsl.search.space.identity`): a study must not mix two searches.

        Where the base file lies (``base``), how workers keep in touch (``workers``) and how much to run
        (``budget.trials``, ``budget.timeout_minutes``) do not change what is searched, so moving the files,
        tuning heartbeats or raising the budget keeps the study.
        """
        return fingerprint(self.identity())

    def identity(self) -> dict[str, Any]:
        """The data another run must agree on to join this search's study."""
        return identity(self.doc.data, self.base_doc.data)

    def to_data(self) -> dict[str, Any]:
        """Everything needed to resolve trials without the files (stored in the study)."""
        return {
            "definition": self.doc.data,
            "base": self.base_doc.data,
            "base_file": self.base_doc.file,
            "name": self.name,
        }


def load_search(path: str | Path) -> SearchSpace:
    """Read and check a search definition and its base spec; every problem is located."""
    return _build(read_yaml(path), Path(path))


def search_from_text(text: str, file: str = "<string>", base_dir: str | Path = ".") -> SearchSpace:
    return _build(read_yaml_text(text, file), Path(base_dir) / "search.yaml")


def _build(doc: SourceDoc, path: Path) -> SearchSpace:
    if not isinstance(doc.data, dict):
        raise SearchError.at(
            "", f"a search definition must be a mapping, got {type(doc.data).__name__}", doc.locate(())
        )
    try:
        definition = SearchDefinition.model_validate(doc.data)
    except ValidationError as err:
        problems = problems_from_validation(err, doc, SearchDefinition)
        raise SearchError([_kind_hint(e, p) for e, p in zip(err.errors(), problems, strict=True)]) from None
    base_path = (path.parent / definition.base).resolve()
    try:
        base_doc = read_yaml(base_path)
    except SpecError as err:
        if err.problems[0].message == "file not found":
            raise SearchError.at(
                "base", f"base spec '{definition.base}' not found (looked at {base_path})", doc.locate("base")
            ) from None
        raise
    base_doc, problems = _apply_fixed(definition, doc, base_doc)
    if problems:
        raise SearchError(problems)
    parse_spec(base_doc)  # the base itself must be a valid spec (errors located in its file, or at `set:`)
    problems = list(_check_params(definition, doc, base_doc))
    if definition.sampler.name == "grid":
        problems += _check_grid(definition, doc)
    if definition.sampler.name == "cmaes":
        problems += _check_numeric(definition, doc)
    if definition.prescreen is not None:
        problems += _check_prescreen(definition, doc)
    problems += _check_latency(definition, doc)
    if problems:
        raise SearchError(problems)
    return SearchSpace(definition, doc, base_doc, path.stem)


def _apply_fixed(definition: SearchDefinition, doc: SourceDoc, base: SourceDoc) -> tuple[SourceDoc, list[Problem]]:
    """The base spec with the search file's ``set:`` values in place; a problem of a set value is located at
    its line in the search file."""
    if not definition.fixed:
        return base, []
    data = copy.deepcopy(base.data)
    overrides = dict(base.overrides)
    problems = []
    for key, value in definition.fixed.items():
        pattern = parse_pattern(key) if key and "" not in key.split(".") else ()
        paths = [p for p in expand(data, pattern) if is_valid_path(data, p)] if pattern else []
        if not paths:
            hint = suggest_path(data, pattern) if pattern else ""
            where = doc.locate_key(("set", key))
            problems.append(Problem(f"set.{key}", f"no such path in the base spec {base.file}{hint}", where))
            continue
        for path in paths:
            assign(data, path, copy.deepcopy(value))
            overrides[path] = doc.locate(("set", key))
    return replace(base, data=data, overrides=overrides), problems


PARAM_KINDS = ("int", "float", "choice")
LABEL_SMOOTHING_PATH = "train.label_smoothing"
RANDAUGMENT_PATH = "train.augment.randaugment"
"""The paths the ``components`` parameter writes in every trial."""


def _kind_hint(error: Any, problem: Problem) -> Problem:
    """A parameter of no known kind names the key it was most likely meant to have: ``{flot: [..]}``."""
    given = error.get("input")
    if error["type"] != "invalid_param" or not isinstance(given, dict):
        return problem
    for key in given:
        if isinstance(key, str) and key not in PARAM_KINDS and (hint := suggest(key, PARAM_KINDS)):
            return replace(problem, message=f"{problem.message}; got the unknown kind '{key}'{hint}")
    return problem


def _check_params(definition: SearchDefinition, doc: SourceDoc, base: SourceDoc) -> list[Problem]:
    problems: list[Problem] = []
    data = base.data
    variants = [data]  # paths may exist in the base or only once conv_stages has made conv stages
    if CONV_STAGES in definition.params:
        converted = copy.deepcopy(data)
        apply_conv_stages(converted, len(data.get("stages", [])))
        variants.append(converted)
    if COMPONENTS in definition.params:  # ... or once a components row has added SE, RandAugment
        variants += [apply_components(d, "ls_se_silu_ra") for d in variants]
    for key, param in definition.params.items():
        where = doc.locate_key(("params", key))
        if not key or "" in key.split("."):
            problems.append(
                Problem(
                    f"params.{key}",
                    f"a parameter is named by a dotted spec path such as stages.0.channels, got {brief(key)}",
                    where,
                )
            )
            continue
        if key == CONV_STAGES:
            problems += _check_conv_stages(param, data, where, base.file)
            continue
        if key == COMPONENTS:
            problems += _check_components(param, doc, base) + _components_overridden(definition, doc)
            continue
        pattern = parse_pattern(key)
        matches = [p for d in variants for p in expand(d, pattern) if is_valid_path(d, p)]
        if not matches:
            hint = max((suggest_path(d, pattern) for d in variants), key=len)
            problems.append(Problem(f"params.{key}", f"no such path in the base spec {base.file}{hint}", where))
            continue
        if isinstance(param, BlockChoiceParam):
            for branch, sub in param.params.items():
                for rel in sub:
                    rel_pattern = parse_pattern(rel)
                    branch_data = param.choice[branch]
                    ok = any(
                        is_valid_path(_wrap(data, matches[0], branch_data), (*matches[0], *p))
                        for p in expand(branch_data, rel_pattern)
                    )
                    if not ok:
                        wrapped = _wrap(data, matches[0], branch_data)
                        hint = suggest_path(wrapped, (*matches[0], *rel_pattern), shown_from=len(matches[0]))
                        problems.append(
                            Problem(
                                f"params.{key}.params.{branch}.{rel}",
                                f"no such path in branch '{branch}' ({json.dumps(branch_data)}){hint}",
                                doc.locate_key(("params", key, "params", branch, rel)),
                            )
                        )
    return problems


def _wrap(data: Any, at: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``data`` with ``value`` placed at ``at`` (to check branch paths in context)."""
    out = copy.deepcopy(data)
    assign(out, at, copy.deepcopy(value))
    return out


def _check_conv_stages(param: Any, data: dict[str, Any], where: Any, base_file: str) -> list[Problem]:
    path = f"params.{CONV_STAGES}"
    if not isinstance(param, IntParam | ChoiceParam):
        return [Problem(path, "conv_stages is an int parameter ({int: [lo, hi]} or {choice: [...]})", where)]
    stages = data.get("stages", [])
    if isinstance(param, IntParam):  # the range's ends decide, without listing what lies between them
        lo, hi = param.int_range
        if not 0 <= lo <= hi <= len(stages):
            return [Problem(path, f"must lie in 0..{len(stages)} (the base's stages), got [{lo}, {hi}]", where)]
        top = lo + (hi - lo) // param.step * param.step
    else:
        values: list[Any] = list(param.choice)
        bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= len(stages)]
        if bad:
            return [Problem(path, f"must lie in 0..{len(stages)} (the base's stages), got {brief(bad)}", where)]
        top = max(values)
    for i in range(top):
        types = [b.get("type") for b in stages[i].get("blocks", [])]
        if "bottleneck" not in types:
            return [
                Problem(
                    path,
                    f"conv_stages={top} makes stage {i} a conv stage, but stage {i} of {base_file} has no "
                    f"mixer to replace (blocks: {', '.join(map(str, types))})",
                    where,
                )
            ]
    return []


def _check_components(param: Any, doc: SourceDoc, base: SourceDoc) -> list[Problem]:
    """Row names only, each known, and each making a valid spec of the base (located at the row's name)."""
    path, rows = f"params.{COMPONENTS}", ", ".join(COMPONENT_ROWS)
    if not isinstance(param, ChoiceParam):
        given = "an int range" if isinstance(param, IntParam) else "a float range"
        given = "block alternatives" if isinstance(param, BlockChoiceParam) else given
        message = f"components is a choice of rows of HaloNet's training-component table ({{choice: [{rows}]}}), "
        return [Problem(path, message + f"not {given}", doc.locate_key(("params", COMPONENTS)))]
    problems, checked = [], set()
    for i, value in enumerate(param.choice):
        where = doc.locate(("params", COMPONENTS, "choice", i))
        if not isinstance(value, str) or value not in COMPONENT_ROWS:
            hint = suggest(value, list(COMPONENT_ROWS)) if isinstance(value, str) else ""
            problems.append(Problem(f"{path}.choice.{i}", f"unknown row {brief(value)}{hint}; rows: {rows}", where))
        elif value not in checked:
            checked.add(value)
            try:
                parse_spec(replace(base, data=apply_components(base.data, value), overrides={}))
            except SpecError as err:
                first = err.problems[0]
                message = f"row '{value}' makes an invalid spec of {base.file}: {first.path}: {first.message}"
                problems.append(Problem(f"{path}.choice.{i}", message, where))
    return problems


def _components_overridden(definition: SearchDefinition, doc: SourceDoc) -> list[Problem]:
    """``set:`` values the components row would overwrite, and parameters that would overwrite the row's."""
    problems = []
    for key in definition.fixed:  # a set RandAugment is what the rows with RA use
        if key == LABEL_SMOOTHING_PATH:
            message = "the components parameter sets this in every trial; leave it to the rows"
            problems.append(Problem(f"set.{key}", message, doc.locate_key(("set", key))))
    for key in definition.params:
        if key in (LABEL_SMOOTHING_PATH, RANDAUGMENT_PATH):
            message = "would overwrite what the components row sets; tune the row's values instead"
            problems.append(Problem(f"params.{key}", message, doc.locate_key(("params", key))))
    return problems


def _check_grid(definition: SearchDefinition, doc: SourceDoc) -> list[Problem]:
    problems = []
    points = 1
    for key, param in definition.params.items():
        if isinstance(param, BlockChoiceParam) and param.params:
            problems.append(
                Problem(
                    f"params.{key}",
                    "the grid sampler cannot take conditional parameters",
                    doc.locate_key(("params", key)),
                )
            )
        elif not isinstance(param, IntParam | ChoiceParam | BlockChoiceParam):
            problems.append(
                Problem(
                    f"params.{key}",
                    "the grid sampler takes int and choice parameters only",
                    doc.locate_key(("params", key)),
                )
            )
        else:
            points *= grid_size(param)
    if not problems and points > GRID_POINTS.value:  # counted, never listed
        problems.append(Problem("params", f"the grid has {GRID_POINTS.over(points)}", doc.locate_key(("params",))))
    return problems


def _check_prescreen(definition: SearchDefinition, doc: SourceDoc) -> list[Problem]:
    """A prescreen chooses among the sampler's proposals which to train: it needs both."""
    where = doc.locate_key(("prescreen",))
    if definition.sampler.name == "grid":
        message = "the grid sampler trains every point of its grid; a prescreen needs a sampler that proposes"
        return [Problem("prescreen", message, where)]
    untrained = {"params", "flops", "latency_ms"}
    if all(o.metric in untrained or o.metric.startswith(PROXY_METRIC) for o in definition.objectives):
        names = ", ".join(o.metric for o in definition.objectives)
        return [Problem("prescreen", f"nothing is trained for the objectives ({names}); drop prescreen", where)]
    return []


def _check_latency(definition: SearchDefinition, doc: SourceDoc) -> list[Problem]:
    """``budget.latency`` says how ``latency_ms`` is measured: written where nothing measures it, it is a mistake.
    (Whether the runtime and device exist where the trials run is checked by each worker:
    :func:`archdsl.search.latency.require_latency`.)"""
    budget = definition.budget
    if "latency" not in budget.model_fields_set:
        return []
    if budget.max_latency_ms is not None or any(o.metric == "latency_ms" for o in definition.objectives):
        return []
    message = (
        "says how latency_ms is measured, but nothing measures it: add budget.max_latency_ms or the objective "
        "{metric: latency_ms}, or drop budget.latency"
    )
    return [Problem("budget.latency", message, doc.locate_key(("budget", "latency")))]


def _check_numeric(definition: SearchDefinition, doc: SourceDoc) -> list[Problem]:
    """CMA-ES models a continuous space: int and float parameters only."""
    return [
        Problem(
            f"params.{key}",
            "sampler cmaes models int and float parameters only; use tpe, gp or nsga2 for a space with choices",
            doc.locate_key(("params", key)),
        )
        for key, param in definition.params.items()
        if isinstance(param, ChoiceParam | BlockChoiceParam)
    ]


def grid_size(param: IntParam | ChoiceParam | BlockChoiceParam) -> int:
    """How many values a grid parameter takes, without listing them."""
    if isinstance(param, IntParam):
        return (param.int_range[1] - param.int_range[0]) // param.step + 1
    return len(param.choice)
