"""Training recipes: YAML files with `model`, `data` and `train` sections, overridable by dotted keys.

A recipe names everything a run needs, so `ademvl train scienceqa-7b train.epochs=1`
is reproducible from the file plus the overrides (both are saved in the run dir).
A bare name (`scienceqa-7b`) resolves to `recipes/<name>.yaml`, searched in
`$ADEMVL_RECIPES`, then `./recipes`, then the `recipes/` folder next to the
installed package (the repository root for a source/editable install).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .safeyaml import parse_overrides, shown


class RecipeError(ValueError):
    """A recipe file or override is invalid; the message names the key or file."""


@dataclass
class ModelSection:
    llm: str = ""  # local dir or hub id (passed to VLModel.from_backbones)
    vision: str = ""
    method: str = "ademvl"
    method_config: dict = field(default_factory=dict)  # the method's settings (free-form, checked by the method)
    dtype: str | None = None  # dtype of the frozen backbones (float32/bfloat16/float16); adapters stay fp32
    quantization: str | None = None  # frozen LLM linears in 4bit (NF4) / 8bit via bitsandbytes (GPU or CPU): QLoRA-style
    tokenizer: str | None = None  # default: the llm path
    image_processor: str | None = None  # default: the vision path
    prompt_layout: str = "plain"  # plain (the paper's layout) | chat (the LLM's chat template, for instruct LLMs)
    official: bool = False  # the official ADEM-VL code's preprocessing + prompt layout (ademvl.official), recorded


@dataclass
class DataSection:
    dataset: str = "easyvqa"  # scienceqa | coco | llava_instruct | easyvqa
    split: str | None = "train"
    limit: int | None = None
    skip_bad: bool = False  # drop (and count) records whose image is missing/corrupt instead of failing
    decode_check: bool = False  # decode every image in the pre-check (slower, catches more)
    # dataset options, as flat keys: only the ones the dataset takes may be set (each dataset's options
    # dataclass in ademvl/data/<dataset>.py says which, and checks them)
    root: str | None = None  # scienceqa
    image_root: str | None = None  # scienceqa, coco, llava_instruct
    karpathy_json: str | None = None  # coco
    json_path: str | None = None  # llava_instruct
    data_dir: str | None = None  # easyvqa (default: the installed easy-vqa package)
    prompt_format: str | None = None  # scienceqa (e.g. CQM-A)
    prompt: str | None = None  # coco, easyvqa prompt template
    val_fraction: float | None = None  # easyvqa
    answer_style: str | None = None  # easyvqa: word (default) | rationale ("triangle, so no" for yes/no)
    balance_by: str | None = None  # meta key (e.g. qtype): `limit` records drawn evenly across its values
    sample_seed: int = 0  # which records `balance_by` draws
    balance_weights: dict | None = None  # relative shares per value of `balance_by` (default: equal)
    balance_within: list | None = None  # meta keys each `balance_by` share is spread evenly over, in turn
    options: dict | None = None  # further options of the dataset (those without a flat key above), checked by it


@dataclass
class TrainSection:
    epochs: int = 20
    batch_size: int = 4  # per device
    grad_accum: int = 1
    blr: float = 9e-3  # base lr; lr = blr * effective_batch / 256
    lr: float | None = None  # absolute lr, overrides the blr rule when set
    warmup_epochs: float = 2.0
    min_lr: float = 0.0
    weight_decay: float = 0.02
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float | None = None  # none by default (the paper's recipe)
    seed: int = 0
    max_length: int = 512
    mixed_precision: str = "auto"  # auto (GPU: bf16 if supported, else fp16; CPU: bf16 for bf16 backbones, else no) | no | bf16 | fp16 (CUDA)
    num_workers: int = 0
    save_every: int = 0  # optimizer steps between checkpoints; 0 = at the end of each epoch
    keep_last: int = 2  # checkpoints kept (older ones are deleted)
    output_dir: str | None = None  # default: runs/<recipe name>
    log_every: int = 1  # optimizer steps between metric lines
    max_steps: int | None = None  # cap on optimizer steps (the lr schedule still spans all epochs)
    report_to: list = field(default_factory=list)  # extra trackers: tensorboard, wandb (when installed)
    save_rank_weights: bool = False  # every rank writes its trainable weights + LLM bytes it stores (DDP/FSDP checks)
    find_unused_parameters: bool = True  # DDP: SPEC's last vision adapter never gets a gradient
    gradient_checkpointing: bool = False  # recompute each LLM block in the backward pass: less activation memory
    sharding: str = "none"  # none (DDP: every process holds the whole model) | fsdp (FSDP2: sharded over processes)


@dataclass
class Recipe:
    name: str = "recipe"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    source: str | None = None  # the file it was read from

    @property
    def effective_batch(self) -> int:
        """Per-device batch × accumulation (× devices, applied by the trainer)."""
        return self.train.batch_size * self.train.grad_accum

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BACKBONE_DTYPES = ("float32", "bfloat16", "float16")
SECTIONS = {"model": ModelSection, "data": DataSection, "train": TrainSection}
FREE_FORM = {("model", "method_config"), ("data", "balance_weights"), ("data", "options")}  # dict-valued keys whose sub-keys are not checked here


def recipe_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("ADEMVL_RECIPES"):
        dirs.append(Path(os.environ["ADEMVL_RECIPES"]))
    dirs.append(Path.cwd() / "recipes")
    dirs.append(Path(__file__).resolve().parent.parent / "recipes")
    unique = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def available_recipes() -> list[str]:
    names = set()
    for d in recipe_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def resolve_recipe_path(path_or_name: str | os.PathLike) -> Path:
    """A path to an existing file, or a bare name looked up as `recipes/<name>.yaml`."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise FileNotFoundError(f"recipe file '{path}' does not exist")
    for d in recipe_dirs():
        candidate = d / f"{path.name}.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no recipe named '{path_or_name}'; available: {', '.join(available_recipes()) or 'none'} "
        f"(searched {', '.join(str(d) for d in recipe_dirs())})"
    )


def _section(cls, values: Any, where: str):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"recipe section '{where}' must be a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RecipeError(f"unknown recipe key '{where}.{unknown[0]}'; valid keys in '{where}': {', '.join(sorted(known))}")
    return cls(**{k: _coerce(cls, k, v, where) for k, v in values.items()})


def _coerce(cls, key: str, value: Any, where: str) -> Any:
    """YAML reads `1e-3` (no dot) as a string: turn numeric strings into the field's number type."""
    annotation = str({f.name: f.type for f in dataclasses.fields(cls)}[key])
    if not isinstance(value, str) or annotation.startswith("str"):
        return value
    for kind, convert in (("float", float), ("int", int)):
        if annotation.startswith(kind):
            try:
                return convert(value)
            except ValueError:
                raise RecipeError(f"recipe key '{where}.{key}' must be a number, got {shown(value)}") from None
    return value


def recipe_from_dict(data: dict, name: str = "recipe", source: str | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {source or name} must be a YAML mapping with model/data/train sections")
    data = dict(data)
    name = data.pop("name", name)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise RecipeError(f"unknown recipe key '{unknown[0]}'; valid top-level keys: name, {', '.join(SECTIONS)}")
    sections = {key: _section(cls, data.get(key), key) for key, cls in SECTIONS.items()}
    recipe = Recipe(name=str(name), source=source, **sections)
    validate(recipe)
    return recipe


def apply_override(data: dict, key: str, value: Any) -> None:
    """Set `data[a][b][c] = value` for `key = "a.b.c"`, refusing keys the recipe does not have."""
    parts = key.split(".")
    if parts[0] == "name" and len(parts) == 1:
        data["name"] = value
        return
    if parts[0] not in SECTIONS:
        raise RecipeError(f"unknown recipe key '{key}'; keys start with name, {', '.join(SECTIONS)}")
    if len(parts) < 2:
        raise RecipeError(f"override '{key}' names a whole section; set one key, e.g. '{key}.<key>=value'")
    section, sub = parts[0], parts[1]
    known = {f.name for f in dataclasses.fields(SECTIONS[section])}
    if sub not in known:
        raise RecipeError(f"unknown recipe key '{key}'; valid keys in '{section}': {', '.join(sorted(known))}")
    if len(parts) > 2 and (section, sub) not in FREE_FORM:
        raise RecipeError(f"unknown recipe key '{key}': '{section}.{sub}' has no sub-keys")
    node = data.setdefault(section, {}) or {}
    data[section] = node
    for part in parts[1:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"override '{key}': '{part}' is not a mapping")
        node = child
    node[parts[-1]] = value


def load_recipe(path_or_name: str | os.PathLike, overrides: list[str] | dict | None = None) -> Recipe:
    """Read a recipe file (or `recipes/<name>.yaml`) and apply `key=value` overrides (values parsed as YAML)."""
    from .safeyaml import MAX_BYTES, load_yaml, yaml_problem

    path = resolve_recipe_path(path_or_name)
    if path.stat().st_size > MAX_BYTES:
        raise RecipeError(f"recipe '{path}' is {path.stat().st_size} bytes, more than a recipe can hold ({MAX_BYTES})")
    try:
        data = load_yaml(path.read_text(), f"recipe '{path}'") or {}
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe '{path}' is not valid YAML: {yaml_problem(error)}") from error
    except UnicodeDecodeError as error:
        raise RecipeError(f"recipe '{path}' is not UTF-8 text: {error.reason} at byte {error.start}") from error
    if not isinstance(data, dict):
        raise RecipeError(f"recipe '{path}' must be a YAML mapping with model/data/train sections")
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides or []:  # keep order and allow repeated keys (last wins)
            items.extend(parse_overrides([item]).items())
    for key, value in items:
        apply_override(data, key, value)
    return recipe_from_dict(data, name=path.stem, source=str(path))


MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
SHARDINGS = ("none", "fsdp")  # train.sharding (ademvl.training.sharding)
_KINDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "list": "a list",
          "dict": "a mapping"}


def _type_problem(annotation: str, value: Any) -> str | None:
    """What `value` should have been for a field annotated `annotation` ("int | None", ...), or None if it fits.

    YAML turns `maybe` into a string and `1.5` into a float; a bool field must get a bool and an
    int field an int, or a recipe would run with a setting that means something else than it says."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None:
        return None if "None" in kinds else "a value"
    for kind in kinds:
        if kind == "bool" and isinstance(value, bool):
            return None
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return None
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if math.isfinite(value) else "a finite number"
        if kind in ("str", "list", "dict") and isinstance(value, {"str": str, "list": list, "dict": dict}[kind]):
            return None
    return " or ".join(_KINDS.get(k, k) for k in kinds if k != "None") + (" (or null)" if "None" in kinds else "")


def _check_types(recipe: Recipe) -> None:
    for section, cls in SECTIONS.items():
        values = getattr(recipe, section)
        for f in dataclasses.fields(cls):
            value = getattr(values, f.name)
            problem = _type_problem(str(f.type), value)
            if problem:
                raise RecipeError(f"recipe key '{section}.{f.name}' must be {problem}, got {shown(value)}")


def _at_least(section: str, key: str, value, low, strict: bool = False) -> None:
    if value is not None and (value <= low if strict else value < low):
        raise RecipeError(f"recipe key '{section}.{key}' must be {'>' if strict else '≥'} {low}, got {shown(value)}")


def _check_dataset_options(d: DataSection) -> None:
    """The options the dataset takes, checked by its options dataclass (`ademvl.data.registry`); a key it
    does not take and an unknown dataset are reported when the data is loaded (`loader_kwargs`)."""
    from .data import SPECS, DatasetOptionError
    from .data.registry import dataset_options

    if d.dataset not in SPECS:
        return
    try:
        dataset_options(d, strict=False)
    except DatasetOptionError as error:
        raise RecipeError(str(error)) from None


def validate(recipe: Recipe) -> None:
    t, d = recipe.train, recipe.data
    _check_types(recipe)
    if not recipe.model.llm or not recipe.model.vision:
        raise RecipeError("recipe must set model.llm and model.vision")
    for key in ("epochs", "batch_size", "grad_accum", "max_length", "log_every", "keep_last"):
        _at_least("train", key, getattr(t, key), 1)
    for key in ("save_every", "num_workers", "warmup_epochs", "min_lr", "weight_decay"):  # warm-up may outlast the run
        _at_least("train", key, getattr(t, key), 0)
    for key in ("lr", "blr", "grad_clip"):
        _at_least("train", key, getattr(t, key), 0, strict=True)
    _at_least("train", "max_steps", t.max_steps, 1)
    _at_least("data", "limit", d.limit, 1)
    _check_dataset_options(d)
    if recipe.model.prompt_layout not in ("plain", "chat"):
        raise RecipeError(f"model.prompt_layout must be plain or chat, got {shown(recipe.model.prompt_layout)}")
    if recipe.model.quantization not in (None, "4bit", "8bit"):
        raise RecipeError(f"model.quantization must be 4bit or 8bit (or unset), got {shown(recipe.model.quantization)}")
    if recipe.model.dtype not in (None, *BACKBONE_DTYPES):
        raise RecipeError(f"model.dtype must be one of {', '.join(BACKBONE_DTYPES)}, got {shown(recipe.model.dtype)}")
    if t.mixed_precision not in MIXED_PRECISION:
        raise RecipeError(f"train.mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                          f"got {shown(t.mixed_precision)}")
    if t.sharding not in SHARDINGS:
        raise RecipeError(f"train.sharding must be one of {', '.join(SHARDINGS)}, got {shown(t.sharding)}")
    if t.sharding == "fsdp" and recipe.model.quantization:
        raise RecipeError(f"train.sharding=fsdp cannot shard the {recipe.model.quantization} bitsandbytes weights of "
                          "model.quantization (FSDP2 turns them into plain tensors and drops their quantization "
                          "state): use one or the other")
    if t.sharding == "fsdp" and t.mixed_precision == "fp16":
        raise RecipeError("train.sharding=fsdp trains with mixed_precision bf16 or no: fp16's loss scaler is "
                          "not set up for sharded gradients")
    if not (len(t.betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                      for b in t.betas)):
        raise RecipeError(f"recipe key 'train.betas' must be two numbers in [0, 1), got {shown(t.betas)}")
    if not all(isinstance(name, str) for name in t.report_to):
        raise RecipeError(f"recipe key 'train.report_to' must be a list of tracker names, got {shown(t.report_to)}")
