"""The Table VI ablation variants of `ademvl compare`: each switch gives the parameter count and the
behaviour it should (counts from the layer shapes, behaviour by running the tiny model)."""
import pytest
import torch

from ademvl.compare import VARIANTS
from ademvl.methods.ademvl import FusedMLP
from ademvl.model import VLModel
from tiny import HIDDEN, tiny_llm, tiny_vision
from tiny_methods import inputs, liven

D, D_V, H = HIDDEN, 32, 128                     # LLM width, tower width, projector hidden
PROJECTOR = D_V * H + H + H * D + D             # fc1 + bias, fc2 + bias
ADAPTERS = 3 * 2 * D_V * 12                     # a 12-wide adapter beside each of the 3 tower blocks' MLPs
MEMORY = lambda n_v: 2 * n_v * D                # E1 and E2                                   # noqa: E731


class Tower:  # what the variants read of a tower: the tiny CLIP's 4×4 grid and 3 blocks
    grid, num_layers = 4, 3


def build(variant, seed=0):
    settings = VARIANTS[variant].method_config(Tower, {"alpha": 1.0, "beta": 0.01})
    return VLModel.from_backbones(tiny_llm("llama", seed), tiny_vision("clip", seed + 1), method="ademvl",
                                  **settings).eval()


@pytest.mark.parametrize("variant, trainable, n_v, extra", [
    ("ademvl", 2 * PROJECTOR + MEMORY(16 + 4) + ADAPTERS, 20, 1),
    ("ademvl-no-cls", PROJECTOR + MEMORY(20) + ADAPTERS, 20, 0),
    ("ademvl-single-scale", 2 * PROJECTOR + MEMORY(16) + ADAPTERS, 16, 1),   # N_v = grid²
    ("ademvl-no-drop", 2 * PROJECTOR + MEMORY(20) + ADAPTERS, 20, 1),
    ("ademvl-no-fusion", PROJECTOR + ADAPTERS, 20, 1),                        # no memory, no patch projector
    ("ademvl-best-alpha-beta", 2 * PROJECTOR + MEMORY(20) + ADAPTERS, 20, 1),
])
def test_parameter_counts_and_tokens(variant, trainable, n_v, extra):
    model = build(variant)
    assert model.parameter_counts()["trainable"] == trainable
    assert model.method.num_visual == n_v and model.method.extra_input_tokens == extra


def fused_layers(model):
    return [m for m in model.modules() if isinstance(m, FusedMLP)]


def test_no_drop_keeps_every_score_and_the_full_model_drops_some():
    from ademvl.visualize.capture import capture_fusion_scores

    batch = inputs("ademvl", image_rows=(1, 1))
    full, no_drop = liven(build("ademvl")), liven(build("ademvl-no-drop"))
    assert {m.gamma for m in fused_layers(no_drop)} == {0.0} and {m.gamma for m in fused_layers(full)} == {0.1}
    kept_all = capture_fusion_scores(no_drop, batch)["kept"]
    kept_some = capture_fusion_scores(full, batch)["kept"]
    assert kept_all.all()
    assert 0.8 < kept_some.mean() < 1.0  # ⌊0.1·20⌋ = 2 of 20 scores under the threshold per token


def test_no_fusion_leaves_every_decoder_mlp_output_untouched():
    """Each decoder MLP's output is the frozen MLP's own on the same input; in the full model it is not."""
    plain = tiny_llm("llama", 0)  # the same frozen weights the models were built on
    batch = inputs("ademvl")

    def mlp_gaps(model):
        seen = []
        hooks = [block.mlp.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
                 for block in model.llm.model.layers]
        with torch.no_grad():
            model(**batch)
            for hook in hooks:
                hook.remove()
            return [float((out - plain.model.layers[i].mlp(n)).abs().max()) for i, (n, out) in enumerate(seen)]

    no_fusion, full = liven(build("ademvl-no-fusion")), liven(build("ademvl"))
    assert not fused_layers(no_fusion) and len(fused_layers(full)) == 2
    assert mlp_gaps(no_fusion) == [0.0, 0.0]
    assert min(mlp_gaps(full)) > 1e-4
    visual = no_fusion.method.encode(None, torch.ones(2), 2)
    assert visual.keys is None and visual.values is None and visual.tokens.shape == (2, 1, D)


def test_alpha_beta_variant_changes_only_alpha_and_beta():
    full, best = build("ademvl"), build("ademvl-best-alpha-beta")
    assert (full.method.settings.alpha, full.method.settings.beta) == (0.1, 0.01)
    assert (best.method.settings.alpha, best.method.settings.beta) == (1.0, 0.01)
    assert {m.alpha for m in fused_layers(best)} == {1.0}
    assert full.method.settings.scales == best.method.settings.scales


def test_neither_fusion_nor_cls_is_refused():
    with pytest.raises(ValueError, match="fusion=false needs use_cls=true"):
        VLModel.from_backbones(tiny_llm(), tiny_vision(), method="ademvl", scales=(16,), fusion=False, use_cls=False)
