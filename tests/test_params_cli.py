"""`ademvl params` prints the paper's trainable counts, built on the meta device."""
import pytest

from ademvl.cli import main


@pytest.mark.parametrize("args, expected", [
    (["--llm", "llama-7b"], "4,530,432"),
    (["--llm", "llama-13b"], "5,449,984"),
    (["--llm", "llama2-7b"], "4,530,432"),
    (["--llm", "llama-7b", "--set", "use_cls=false", "--set", "scales=[256]"], "3,346,560"),
    (["--llm", "llama-7b", "--set", "use_cls=false", "--set", "scales=256"], "3,346,560"),  # a bare scale
    (["--llm", "llama-7b", "--set", "scales=[256]"], "4,006,144"),  # the ablation row with [cls]
])
def test_paper_counts(capsys, args, expected):
    assert main(["params", *args, "--vision", "clip-vit-l-14"]) == 0
    out = capsys.readouterr().out
    assert f"trainable: {expected}" in out


def test_bad_setting_is_one_line(capsys):
    assert main(["params", "--set", "alpah=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['alpah']" in err and err.count("\n") == 1


@pytest.mark.parametrize("setting, named", [
    ("use_cls=maybe", "'use_cls' must be true or false"),
    ("scales=[256,big]", "'scales' must be an integer or a list of integers"),
    ("alpha=high", "'alpha' must be a number"),
    ("projector_hidden=1.5", "'projector_hidden' must be an integer"),
])
def test_wrongly_typed_setting_is_one_line(capsys, setting, named):
    assert main(["params", "--set", setting]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1


def meta_count(config) -> int:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    with torch.device("meta"):
        model = (AutoModelForCausalLM if hasattr(config, "vocab_size") else AutoModel).from_config(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, total, non_embedding_m", [
    # Published: Qwen3-30B-A3B 30.5B total; Gemma 3 (technical report, Table 1) non-embedding
    # 3,209M / 10,759M / 25,600M beside 262,208 x width tied embeddings.
    ("qwen3-30b-a3b", 30_532_122_624, None),
    ("gemma-3-4b", 3_880_263_168, 3_209),
    ("gemma-3-12b", 11_766_034_176, 10_759),
    ("gemma-3-27b", 27_009_346_304, 25_600),
])
def test_new_llm_presets_match_published_sizes(name, total, non_embedding_m):
    from ademvl.presets import LLM_PRESETS

    config = LLM_PRESETS[name]()
    assert meta_count(config) == total
    if non_embedding_m is not None:
        assert round((total - config.vocab_size * config.hidden_size) / 1e6) == non_embedding_m
    else:
        assert round(total / 1e8) == 305


@pytest.mark.parametrize("name, total", [
    ("siglip-so400m-14-384", 428_225_600),  # with its attention-pooling head
    ("siglip-so400m-14-896", 416_866_032),  # Gemma 3's tower: 417M in its technical report
])
def test_siglip_so400m_presets(name, total):
    from ademvl.presets import VISION_PRESETS

    assert meta_count(VISION_PRESETS[name]()) == total


def test_moe_llm_reports_its_active_parameters(capsys):
    """Qwen3-30B-A3B: 8 of 128 experts per token, 3.3B active as published.
    ADEM-VL: 2 projectors 1152→128→2048 (823,552) + 2·320·2048 positional (1,310,720)
    + 27 vision adapters 2·1152·12 (746,496)."""
    assert main(["params", "--llm", "qwen3-30b-a3b", "--vision", "siglip-so400m-14-384"]) == 0
    out = capsys.readouterr().out
    assert "trainable: 2,880,768" in out
    assert "frozen LLM: 30,532,122,624 (3,353,032,704 active per token: 8 of 128 experts)" in out
    assert "vision tower: 428,225,600" in out


def test_dense_llm_has_no_active_count(capsys):
    assert main(["params", "--llm", "llama-7b", "--vision", "clip-vit-l-14"]) == 0
    out = capsys.readouterr().out
    assert "frozen LLM: 6,738,415,616; vision tower: 303,179,776" in out and "active" not in out


@pytest.mark.parametrize("llm, expected", [
    # 2 projectors 1152→128→d + 2·320·d positional + 27 vision adapters (746,496)
    ("gemma-3-4b", "3,340,544"),
    ("gemma-3-12b", "4,489,984"),
    ("gemma-3-27b", "5,869,312"),
])
def test_gemma3_with_siglip_so400m(capsys, llm, expected):
    import torch
    from transformers import AutoModelForCausalLM

    from ademvl.architectures import UnsupportedArchitecture, decoder_layout
    from ademvl.presets import LLM_PRESETS

    config = LLM_PRESETS[llm]()
    config.num_hidden_layers, config.layer_types = 1, config.layer_types[:1]
    with torch.device("meta"):
        try:
            decoder_layout(AutoModelForCausalLM.from_config(config))
        except UnsupportedArchitecture as error:
            pytest.skip(f"gemma3_text decoder blocks are not supported yet: {error}")
    assert main(["params", "--llm", llm, "--vision", "siglip-so400m-14-896"]) == 0
    out = capsys.readouterr().out
    assert f"trainable: {expected}" in out and "vision tower: 416,866,032" in out


@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral"])
def test_active_parameters_equal_a_model_with_only_the_routed_experts(family):
    """Independent reference: the same model built with k experts in all holds the weights a token
    runs through, except that its routers score k experts instead of E."""
    import torch
    from transformers import AutoModelForCausalLM, MixtralConfig, Qwen3MoeConfig

    from ademvl.commands.params import llm_parameters

    layers, hidden, experts, routed = 2, 32, 6, 2
    common = dict(vocab_size=50, hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, num_experts_per_tok=routed)
    key = "num_experts" if family == "qwen3_moe" else "num_local_experts"
    make = Qwen3MoeConfig if family == "qwen3_moe" else MixtralConfig
    extra = dict(moe_intermediate_size=24) if family == "qwen3_moe" else {}
    with torch.device("meta"):
        full = AutoModelForCausalLM.from_config(make(**common, **extra, **{key: experts})).requires_grad_(False)
        only = AutoModelForCausalLM.from_config(make(**common, **extra, **{key: routed}))
    total = sum(p.numel() for p in full.parameters())
    active = sum(p.numel() for p in only.parameters()) + layers * hidden * (experts - routed)
    assert llm_parameters(full) == f"{total:,} ({active:,} active per token: {routed} of {experts} experts)"
