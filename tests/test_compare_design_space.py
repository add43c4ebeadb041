"""`ademvl compare`'s design-space groups (paper Tables VII–IX): names, the paper's rows and numbers, the
paper's prompt sizes on other grids, and a tiny model built from every variant with its settings in place."""
import dataclasses

import pytest
import torch

from ademvl.compare import VARIANTS
from ademvl.compare.report import paper_table
from ademvl.compare.variants import GROUPS, groups_of, paper_scales, parse_variants
from ademvl.methods.ademvl import AdemVLSettings
from ademvl.model import VLModel
from tiny import tiny_llm, tiny_vision
from tiny_methods import inputs, liven

TABLES = {"table7": "Table VII", "table8": "Table VIII", "table9": "Table IX"}
# the paper's averages, row by row (ScienceQA, LLaMA-7B)
PAPER = {"table7": [92.19, 93.18, 92.00, 91.77, 93.85, 92.27],
         "table8": [92.16, 79.42, 91.99, 92.45, 93.85, 38.58],
         "table9": [93.70, 92.82, 91.65, 93.24, 93.65, 93.85, 93.59, 93.55]}
DESIGN = sorted({name for group in TABLES for name in GROUPS[group]})


class Tower:  # what the variants read of a tower: the tiny CLIP's 4×4 grid and 3 blocks
    grid, num_layers = 4, 3


@pytest.mark.parametrize("group", TABLES)
def test_groups_parse_in_the_papers_row_order_with_its_numbers(group):
    names = parse_variants(group)
    assert names == GROUPS[group] and "ademvl" in names  # the paper's default row is the full model
    assert [VARIANTS[n].paper for n in names] == PAPER[group]
    assert all(TABLES[group] in VARIANTS[n].paper_row for n in names if n != "ademvl")
    assert all(TABLES[group] in VARIANTS[n].about for n in names if n != "ademvl")
    assert groups_of(names) == {group: names}
    assert parse_variants(f"{group},methods")[:len(names)] == names


def test_the_papers_prompt_sizes_keep_their_share_of_the_grid():
    assert paper_scales(16, 256, 64, 16) == [256, 64, 16]  # ViT-L/14: the paper's own
    assert paper_scales(8, 256, 64, 16) == [64, 16, 4]     # the demo's tower
    assert paper_scales(4, 256, 64, 16) == [16, 4, 1]
    assert paper_scales(2, 16) == [1]                       # never below one token
    assert VARIANTS["ademvl-avg-64-16"].method_config(Tower)["scales"] == [4, 1]
    assert VARIANTS["ademvl-max-256-64"].method_config(Tower) == {"scales": [16, 4], "pooling": "max"}
    # the default row of Table IX, avg concat(256, 64), is the demo's own ADEM-VL on any grid
    assert paper_scales(Tower.grid, 256, 64) == VARIANTS["ademvl"].method_config(Tower)["scales"]


@pytest.mark.parametrize("variant", DESIGN)
def test_each_variant_builds_a_tiny_model_with_its_settings(variant):
    settings = VARIANTS[variant].method_config(Tower, {"alpha": 1.0, "beta": 0.01})
    placement = {"query_from", "add_to"} & set(settings)
    if placement - {f.name for f in dataclasses.fields(AdemVLSettings)}:
        pytest.skip("query_from/add_to are not settings of ADEM-VL in this tree")
    model = VLModel.from_backbones(tiny_llm("llama"), tiny_vision("clip"), method="ademvl", **settings).eval()
    for key, value in settings.items():
        got = getattr(model.method.settings, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    assert model.method.num_visual == sum(settings["scales"])
    with torch.no_grad():
        logits = liven(model)(**inputs("ademvl")).logits
    assert torch.isfinite(logits).all()


def test_the_report_puts_the_papers_number_beside_the_measured_one():
    points = [{"variant": "ademvl-phi-elu", "size": 500, "overall": (71.25, 1.5)},
              {"variant": "ademvl-phi-elu", "size": 1000, "overall": (80.0, None)}]
    table = paper_table(points, ["ademvl-phi-elu", "bottleneck"], [500, 1000])
    lines = table.splitlines()
    assert len(lines) == 3  # header, rule, one row: the bottleneck has no number in the paper
    assert "| ademvl-phi-elu | Table VIII: ELU (x → elu(x)) | 92.45 | 80.0 |" == lines[2]
    assert paper_table(points, ["bottleneck"], [500]) is None
