"""One entry per dataset: everything the library knows about a dataset, in the dataset's own module.

A dataset module (`scienceqa.py`, `coco.py`, ...) ends with `register(DatasetSpec(...))`: its loader,
the recipe options that loader takes (a dataclass, checked as `method_config` is), how a bare question
is wrapped, how predictions are scored, how long answers are, which metric is its headline accuracy and,
where the official ADEM-VL code evaluates it, that protocol. Training (`ademvl.training.data`), recipe
validation, the evaluator, the official protocol and the sweep all read from here, and every module of
this package is imported when the package is, so adding a dataset means adding one file.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class DatasetOptionError(ValueError):
    """A dataset option (a recipe's `data.<key>`) is not one the dataset takes, or has a wrong value."""


def _no_template(options) -> str | None:
    return None


@dataclass(frozen=True)
class OfficialProtocol:
    """How the official evaluation scripts treat a dataset (`ademvl.official.protocol`)."""

    max_new_tokens: int
    prepare: Callable | None = None  # VLExample -> the example with the official evaluation prompt
    postprocess: Callable[[str], str] | None = None  # generated text -> the answer that is scored
    parse: Callable | None = None  # the scorer's `parse` keyword (ScienceQA: the official letter parser)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., list]  # keyword arguments: the fields of `options` that are set
    options: type  # dataclass of the loader's recipe options; a field left None takes the loader's default
    scorer: Callable[..., dict]  # (answers, examples) -> {"metrics", "predictions", ...}
    max_new_tokens: int  # enough for the dataset's usual answer
    question_template: Callable[[Any], str | None] = _no_template  # options -> "{prompt}" template, or None
    accuracy_key: str | None = None  # the metric a sweep plots as "accuracy"
    official: OfficialProtocol | None = None

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.options))


SPECS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    if not dataclasses.is_dataclass(spec.options):
        raise TypeError(f"dataset {spec.name!r}: options must be a dataclass")
    SPECS[spec.name] = spec
    return spec


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(SPECS))}") from None


def flat_option_keys(section) -> tuple[str, ...]:
    """The keys of a recipe's data section (`section`) that are some dataset's option (`data.root`, ...)."""
    names = {name for spec in SPECS.values() for name in spec.option_names}
    return tuple(f.name for f in dataclasses.fields(section) if f.name in names)


def option_values(section, strict: bool = True) -> dict:
    """The options a recipe's data section sets for its dataset: its flat keys (`data.root`) and
    `data.options`. `strict`: a key the dataset does not take is an error (else it is left out);
    `data.split` is ignored by a dataset without splits."""
    spec = dataset_spec(section.dataset)
    accepted = spec.option_names
    values = {}
    for key in flat_option_keys(section):
        value = getattr(section, key)
        if value is None:
            continue
        if key not in accepted:
            if key == "split" or not strict:  # llava_instruct has no splits
                continue
            raise DatasetOptionError(f"data.{key} is not an option of dataset '{spec.name}' "
                                     f"(it takes: {', '.join(sorted(accepted))})")
        values[key] = value
    for key, value in (getattr(section, "options", None) or {}).items():
        if key not in accepted:
            if not strict:
                continue
            raise DatasetOptionError(f"data.options.{key} is not an option of dataset '{spec.name}' "
                                     f"(it takes: {', '.join(sorted(accepted))})")
        if key in values:
            raise DatasetOptionError(f"data.{key} and data.options.{key} are both set; set one")
        _check_type(spec, key, value)
        values[key] = value
    return values


def _check_type(spec: DatasetSpec, key: str, value) -> None:
    """A `data.options` value of the type its field declares (flat keys are checked with the recipe)."""
    from ..recipes import _type_problem
    from ..safeyaml import shown

    field = next(f for f in dataclasses.fields(spec.options) if f.name == key)
    problem = _type_problem(str(field.type), value)
    if problem:
        raise DatasetOptionError(f"data options of dataset '{spec.name}': '{key}' must be {problem}, got {shown(value)}")


def dataset_options(section, strict: bool = True):
    """(spec, options dataclass) of a recipe's data section, type-checked and validated."""
    from ..config import ConfigError, settings_from_dict

    spec = dataset_spec(section.dataset)
    try:
        return spec, settings_from_dict(spec.options, option_values(section, strict),
                                        where=f"data options of dataset '{spec.name}'")
    except ConfigError as error:
        raise DatasetOptionError(str(error)) from None


def loader_kwargs(options) -> dict:
    """The loader's keyword arguments: the options that are set."""
    return {key: value for key, value in dataclasses.asdict(options).items() if value is not None}
