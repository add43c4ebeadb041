"""An official ADEM-VL checkpoint → a library adapter directory (`ademvl convert official`).

Every official key has exactly one library parameter (none needs a transpose or a
permutation: no adapter weight touches the attention projections that the LLaMA
conversion permutes for rotary, and the vision adapters act on the block's
`ln_2`/`layer_norm2` output in both codes):

    adapter_emb1 (1, N, d)                          → method.pos_keys (N, d)      (E1)
    adapter_emb2 (1, N, d)                          → method.pos_values (N, d)    (E2)
    adapter_proj.fc{1,2}.{weight,bias}              → method.patch_projector.…
    adapter_proj_cls.fc{1,2}.{weight,bias}          → method.cls_projector.…      (not with --no_cls)
    backbone.visual.transformer.resblocks.{i}.adapter_mlp.fc{1,2}.weight
                                                    → vision block i: mlp.adapter.fc{1,2}.weight

α, β, γ, scales, adapter_dim, the projector width and [cls] come from the command line, else
from the checkpoint's `args`, else from the official evaluation scripts' defaults (those scripts
never read `args`, so a file holding only `model` is a released checkpoint too). The backbones
are built on the meta device (only their configs are read), so a 7B conversion needs no memory
for the LLM.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import replace_dir, staging_dir
from .profiles import OFFICIAL_TASKS, check_task, task_for_official_dataset
from .pth import OfficialCheckpointError, read_official_checkpoint

# library setting ← official args attribute
ARG_NAMES = {"alpha": "alpha", "beta": "beta", "gamma": "drop_ratio", "scales": "down_sample_num",
             "adapter_dim": "adapter_dim", "projector_hidden": "hidden_proj", "use_cls": "no_cls"}
# What eval_sqa.py / eval_caption.py / eval_mme.py run with when given no options: their argparse
# defaults (--alpha, --beta, --drop_ratio, --down_sample_num, --no_cls) and their fixed ModelArgs
# (adapter_dim 12, hidden_proj 128). They build the model from these, never from the file's `args`.
OFFICIAL_EVAL_DEFAULTS = {"alpha": 0.1, "beta": 0.01, "drop_ratio": 0.1, "down_sample_num": [256, 64],
                          "adapter_dim": 12, "hidden_proj": 128, "no_cls": False}
SOURCES = ("command line", "checkpoint args", "official evaluation defaults")
VISION_ADAPTER = "backbone.visual.transformer.resblocks.{index}.adapter_mlp.{layer}.weight"


def resolve_official_args(args: dict, given: dict | None = None,
                          defaults: dict = OFFICIAL_EVAL_DEFAULTS) -> tuple[dict, dict]:
    """`(values, source)` for every official setting: `given` (the command line) > `args` (the
    file's) > `defaults`; `source[name]` says which. One line naming those none of them has."""
    given = {name: value for name, value in (given or {}).items() if value is not None}
    values, source = {}, {}
    for name in ARG_NAMES.values():
        for where, table in zip(SOURCES, (given, args, defaults)):
            if name in table:
                values[name], source[name] = table[name], where
                break
    missing = [name for name in ARG_NAMES.values() if name not in values]
    if missing:
        raise OfficialCheckpointError(f"no value for {', '.join(missing)}: neither the checkpoint's args nor the "
                                      f"command line give one (--{', --'.join(n.replace('_', '-') for n in missing)})")
    return values, source


def describe_sources(values: dict, source: dict) -> str:
    """One line: which settings came from where (`settings: alpha 0.3 (command line); ...`)."""
    groups = []
    for where in SOURCES:
        names = [name for name in ARG_NAMES.values() if source.get(name) == where]
        if names:
            groups.append(", ".join(f"{name} {values[name]}" for name in names) + f" ({where})")
    return "settings: " + "; ".join(groups)


def settings_from_args(args: dict, given: dict | None = None, defaults: dict = OFFICIAL_EVAL_DEFAULTS) -> dict:
    """The library's ADEM-VL settings for an official run (see `resolve_official_args` for the order)."""
    return library_settings(resolve_official_args(args, given, defaults)[0])


def library_settings(values: dict) -> dict:
    """Every official setting (by its `args` name) → the library's `AdemVLSettings` keys."""
    settings = {ours: values[official] for ours, official in ARG_NAMES.items()}
    scales = settings["scales"]
    settings["scales"] = [scales] if isinstance(scales, int) else list(scales)
    settings["use_cls"] = not bool(values["no_cls"])
    # Fixed in the official code: the penultimate block with ln_post, adapters at scale 0.1, dropout 0.1.
    settings.update(feature_layer=-2, adapter_scale=0.1, adapter_dropout=0.1, fusion=True)
    return settings


def _meta_backbones(llm: str, vision: str):
    """The two backbones from their configs alone, with no storage."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from ..loading import _VISION_ONLY

    configs = {}
    for kind, path in (("LLM", llm), ("vision tower", vision)):
        try:
            configs[kind] = AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"cannot read the {kind} config at '{path}': {first}") from None
    vision_config = configs["vision tower"]
    with torch.device("meta"):
        llm_module = AutoModelForCausalLM.from_config(configs["LLM"])
        if vision_config.model_type in _VISION_ONLY:
            vision_module = getattr(transformers, _VISION_ONLY[vision_config.model_type])(vision_config.vision_config)
        else:
            vision_module = AutoModel.from_config(vision_config)
    return llm_module, vision_module


def official_names(model) -> dict[str, str]:
    """Official key → library parameter name, for `model` (an ADEM-VL `VLModel`)."""
    names = {id(p): name for name, p in model.trainable_parameters().items()}
    method = model.method
    table = {"adapter_emb1": names[id(method.pos_keys)], "adapter_emb2": names[id(method.pos_values)]}
    for official, projector in (("adapter_proj", method.patch_projector), ("adapter_proj_cls", method.cls_projector)):
        if projector is None:
            continue
        for layer in ("fc1", "fc2"):
            for kind in ("weight", "bias"):
                table[f"{official}.{layer}.{kind}"] = names[id(getattr(getattr(projector, layer), kind))]
    for index, block in enumerate(model.vision.blocks):
        for layer in ("fc1", "fc2"):
            table[VISION_ADAPTER.format(index=index, layer=layer)] = names[id(getattr(block.mlp.adapter, layer).weight)]
    return table


def _official_shape(key: str, shape: torch.Size) -> tuple[int, ...]:
    return (1, *shape) if key in ("adapter_emb1", "adapter_emb2") else tuple(shape)


def match_state(state: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """Library name → tensor, or one line naming every missing, unexpected and mis-shaped key."""
    table = official_names(model)
    params = model.trainable_parameters()
    missing = sorted(set(table) - set(state))
    unexpected = sorted(set(state) - set(table))
    wrong = [f"{key} {tuple(state[key].shape)} (expected {_official_shape(key, params[table[key]].shape)})"
             for key in sorted(set(table) & set(state))
             if tuple(state[key].shape) != _official_shape(key, params[table[key]].shape)]
    problems = [f"{label}: {', '.join(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise OfficialCheckpointError("checkpoint does not match these backbones and settings; " + "; ".join(problems))
    return {table[key]: state[key].reshape(params[table[key]].shape) for key in table}


def _recorded_path(path) -> str:
    """An existing local directory as an absolute path (the adapter may be used from elsewhere); a hub id as is."""
    return str(Path(path).resolve()) if Path(path).is_dir() else str(path)


def convert_official(checkpoint, llm, vision, output, task: str | None = None, given: dict | None = None,
                     report=None) -> Path:
    """Write the adapter directory `output` for official `checkpoint` on backbones `llm` + `vision`.

    `task` (scienceqa / caption / instruction): the official layout to record; by default the
    one of the checkpoint's `args.dataset`. `given`: official settings by their `args` names
    (alpha, beta, drop_ratio, down_sample_num, adapter_dim, hidden_proj, no_cls; None = not given),
    ahead of the file's `args` and the official evaluation defaults. `report` (e.g. `print`) gets
    one line saying which setting came from where. Nothing is written unless every key matches.
    """
    from ..checkpoint import save_adapter
    from ..model import VLModel
    from ..prompting import PromptSpec

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ValueError(f"output '{output}' already exists and is not an empty directory")
    state, args = read_official_checkpoint(checkpoint)
    values, source = resolve_official_args(args, given)
    settings = library_settings(values)
    if report is not None:
        report(describe_sources(values, source))
    if task is None:
        task = task_for_official_dataset(args.get("dataset"))
        if task is None:
            raise OfficialCheckpointError(
                f"the checkpoint's args.dataset is {args.get('dataset')!r}: pass --task ({', '.join(OFFICIAL_TASKS)})")
    check_task(task)
    llm_module, vision_module = _meta_backbones(llm, vision)
    model = VLModel.from_backbones(llm_module, vision_module, method="ademvl", method_config=settings,
                                   prompt=PromptSpec(OFFICIAL_TASKS[task].prompt_template, official=task))
    weights = match_state(state, model)
    params = model.trainable_parameters()
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].dtype))
    model.config.llm_name_or_path = _recorded_path(llm)
    model.config.vision_name_or_path = _recorded_path(vision)
    with staging_dir(output) as staging:
        save_adapter(model, staging)
        replace_dir(staging, output)  # an empty `output` (checked above) is replaced
    return output
