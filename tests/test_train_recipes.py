"""Recipes carry the paper's hyperparameters, overrides reach any key, bad keys are named; the lr rule."""
import math

import pytest
import torch

from ademvl.recipes import RecipeError, load_recipe, resolve_recipe_path
from ademvl.data.example import VLExample
from ademvl.training.data import balanced_sample, epoch_batches, loader_kwargs
from ademvl.training.schedule import WarmupCosine, lr_at, param_groups, scaled_lr

SHIPPED = ["scienceqa-7b", "scienceqa-13b", "coco-caption", "instruction", "easyvqa-demo"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_load_by_name(name):
    recipe = load_recipe(name)
    assert resolve_recipe_path(name).name == f"{name}.yaml"
    assert recipe.train.blr == 9e-3 and recipe.train.weight_decay == 0.02
    assert recipe.train.betas == [0.9, 0.95] and recipe.train.grad_clip is None


def test_paper_schedules():
    sqa = load_recipe("scienceqa-7b")
    assert (sqa.train.epochs, sqa.train.warmup_epochs, sqa.train.max_length) == (20, 2, 512)
    assert sqa.effective_batch * 8 == 32  # per device × accumulation × 8 GPUs
    assert scaled_lr(sqa.train.blr, 32) == pytest.approx(1.125e-3)
    assert "13b" in load_recipe("scienceqa-13b").model.llm
    coco = load_recipe("coco-caption")
    assert (coco.train.epochs, coco.train.warmup_epochs, coco.data.dataset) == (5, 0.1, "coco")
    assert "13b" in coco.model.llm
    inst = load_recipe("instruction")
    assert (inst.train.epochs, inst.train.warmup_epochs, inst.data.dataset) == (15, 0.2, "llava_instruct")
    demo = load_recipe("easyvqa-demo")
    assert (demo.model.llm, demo.model.vision) == ("smollm2", "easyvqa-clip")


def test_dotted_overrides_reach_nested_keys():
    recipe = load_recipe("scienceqa-7b", ["train.epochs=1", "model.method_config.alpha=0.2",
                                          "data.limit=10", "train.betas=[0.8,0.9]"])
    assert recipe.train.epochs == 1 and recipe.data.limit == 10 and recipe.train.betas == [0.8, 0.9]
    assert recipe.model.method_config["alpha"] == 0.2 and recipe.model.method_config["gamma"] == 0.1


@pytest.mark.parametrize("override, named", [("train.epoch=3", "train.epoch"), ("optim.lr=1", "optim.lr"),
                                             ("data.limit.x=1", "data.limit.x")])
def test_unknown_key_is_named(override, named):
    with pytest.raises(RecipeError, match=f"unknown recipe key '{named}'"):
        load_recipe("scienceqa-7b", [override])


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: {llm: a, vision: b}\ntrain: {epochs: 1, warmup: 2}\n")
    with pytest.raises(RecipeError, match="train.warmup"):
        load_recipe(path)


def test_missing_recipe_lists_available():
    with pytest.raises(FileNotFoundError, match="scienceqa-7b"):
        load_recipe("no-such-recipe")


def test_data_key_the_loader_does_not_take_is_refused():
    recipe = load_recipe("scienceqa-7b", ["data.karpathy_json=x.json"])
    with pytest.raises(RecipeError, match="data.karpathy_json is not an option of dataset 'scienceqa'"):
        loader_kwargs(recipe.data)
    assert loader_kwargs(load_recipe("scienceqa-7b").data) == {"split": "train", "root": "data/scienceqa",
                                                                "prompt_format": "CQM-A"}


def test_warmup_then_half_cosine_per_iteration():
    lr, spe = 1e-3, 10  # 10 steps per epoch, 2 warm-up epochs of 4
    assert lr_at(0, spe, 4, 2, lr) == 0.0
    assert lr_at(5, spe, 4, 2, lr) == pytest.approx(lr * 0.25)  # linear, per step
    assert lr_at(20, spe, 4, 2, lr) == pytest.approx(lr)
    assert lr_at(30, spe, 4, 2, lr) == pytest.approx(lr * 0.5)  # half-way down the cosine
    assert lr_at(40, spe, 4, 2, lr) == pytest.approx(0.0, abs=1e-15)
    sched = WarmupCosine(spe, 4, 2, lr)
    assert sched(25) * lr == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 0.25)))


def test_weight_decay_on_matrices_only():
    params = {"fc.weight": torch.nn.Parameter(torch.ones(3, 3)), "fc.bias": torch.nn.Parameter(torch.ones(3)),
              "norm.weight": torch.nn.Parameter(torch.ones(3)), "pos_keys": torch.nn.Parameter(torch.ones(4, 3)),
              "frozen.weight": torch.nn.Parameter(torch.ones(3, 3), requires_grad=False)}
    decay, no_decay = param_groups(params, 0.02)
    assert decay["weight_decay"] == 0.02 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(params["fc.weight"]), id(params["pos_keys"])}
    assert {id(p) for p in no_decay["params"]} == {id(params["fc.bias"]), id(params["norm.weight"])}


def test_epoch_order_is_seeded_and_split_evenly_across_ranks():
    a = epoch_batches(10, 2, seed=0, epoch=0, rank=0, world=3)
    b = epoch_batches(10, 2, seed=0, epoch=0, rank=1, world=3)
    assert len(a) == len(b) == 2 and sum(map(len, a)) == 4  # 10 records padded to 12, 4 per rank
    assert epoch_batches(10, 2, 0, 0) == epoch_batches(10, 2, 0, 0) != epoch_batches(10, 2, 0, 1)
    everyone = [i for r in range(3) for b in epoch_batches(10, 2, 0, 0, r, 3) for i in b]
    assert set(everyone) == set(range(10))


def test_demo_backbone_aliases_resolve_to_cached_dirs(monkeypatch):
    import ademvl.backbones as backbones
    from ademvl.training.trainer import resolve_backbones

    monkeypatch.setattr(backbones, "smollm2_path", lambda: "/cache/smollm2")
    monkeypatch.setattr(backbones, "tiny_clip_path", lambda: "/cache/clip")
    recipe = resolve_backbones(load_recipe("easyvqa-demo"))
    assert (recipe.model.llm, recipe.model.vision) == ("/cache/smollm2", "/cache/clip")
    untouched = load_recipe("scienceqa-7b")
    assert resolve_backbones(untouched) is untouched


def _records(counts: dict) -> list:
    return [VLExample(id=f"{kind}{i}", prompt="q", answer="a", image=None, meta={"qtype": kind})
            for kind, n in counts.items() for i in range(n)]


def _kinds(picked) -> dict:
    out = {}
    for ex in picked:
        out[ex.meta["qtype"]] = out.get(ex.meta["qtype"], 0) + 1
    return out


def test_balanced_draw_is_even_by_default_and_follows_weights():
    records = _records({"yes/no": 700, "color": 200, "shape": 200})
    assert _kinds(balanced_sample(records, "qtype", 300, seed=0)) == {"yes/no": 100, "color": 100, "shape": 100}
    weighted = balanced_sample(records, "qtype", 400, seed=0, weights={"yes/no": 2})
    assert _kinds(weighted) == {"yes/no": 200, "color": 100, "shape": 100}
    assert len({ex.id for ex in weighted}) == 400
    assert [ex.id for ex in weighted] == [ex.id for ex in balanced_sample(records, "qtype", 400, 0, {"yes/no": 2})]


def test_balanced_draw_gives_an_exhausted_share_to_the_others():
    records = _records({"yes/no": 700, "color": 50, "shape": 200})
    assert _kinds(balanced_sample(records, "qtype", 450, seed=1)) == {"yes/no": 200, "color": 50, "shape": 200}


def test_balance_weights_reach_the_recipe_and_must_be_positive():
    with pytest.raises(ValueError, match="every share must be positive"):
        balanced_sample(_records({"color": 3, "shape": 3}), "qtype", 4, seed=0, weights={"color": 0})
    recipe = load_recipe("easyvqa-demo", {"data.balance_by": "qtype", "data.balance_weights": {"yes/no": 2.0}})
    assert recipe.data.balance_weights == {"yes/no": 2.0}
    assert load_recipe("easyvqa-demo", ["data.balance_weights.shape=3"]).data.balance_weights == {"shape": 3}


def _faceted(counts: dict) -> list:
    """yes/no records keyed (asks_about, negated, answer) → how many, in the skewed shares easy-VQA has."""
    return [VLExample(id=f"{about}-{negated}-{answer}-{i}", prompt="q", answer=answer, image=None,
                      meta={"qtype": "yes/no", "asks_about": about, "negated": negated})
            for (about, negated, answer), n in counts.items() for i in range(n)]


def test_a_draw_balanced_within_spreads_every_stratum_evenly_and_the_default_draw_is_unchanged():
    skewed = {("color", False, "no"): 880, ("color", False, "yes"): 120, ("color", True, "yes"): 880,
              ("color", True, "no"): 120, ("shape", False, "no"): 660, ("shape", False, "yes"): 340,
              ("shape", True, "yes"): 660, ("shape", True, "no"): 340}
    records = _faceted(skewed)
    picked = balanced_sample(records, "qtype", 800, seed=3, within=["asks_about", "negated", "answer"])
    strata = {}
    for ex in picked:
        key = (ex.meta["asks_about"], ex.meta["negated"], ex.answer)
        strata[key] = strata.get(key, 0) + 1
    assert strata == {key: 100 for key in skewed}  # 8 strata × 100, whatever the source's shares
    assert len({ex.id for ex in picked}) == 800
    again = balanced_sample(records, "qtype", 800, seed=3, within=["asks_about", "negated", "answer"])
    assert [ex.id for ex in again] == [ex.id for ex in picked]
    plain = balanced_sample(records, "qtype", 800, seed=3)
    yes_share = sum(ex.answer == "yes" for ex in plain if not ex.meta["negated"] and ex.meta["asks_about"] == "color")
    assert yes_share < 0.3 * sum(not ex.meta["negated"] and ex.meta["asks_about"] == "color" for ex in plain)


def test_a_stratum_that_runs_out_leaves_its_share_to_the_others_and_missing_keys_are_named():
    records = _faceted({("color", False, "no"): 50, ("color", False, "yes"): 5})
    picked = balanced_sample(records, "qtype", 30, seed=0, within=["answer"])
    assert sum(ex.answer == "yes" for ex in picked) == 5 and len(picked) == 30
    with pytest.raises(ValueError, match="balance_within: record .* no meta key 'colour'"):
        balanced_sample(records, "qtype", 10, seed=0, within=["colour"])
    recipe = load_recipe("easyvqa-demo", {"data.balance_within": ["asks_about", "answer"]})
    assert recipe.data.balance_within == ["asks_about", "answer"]
