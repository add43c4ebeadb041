"""What transformers' generate promises, for every method: beam search (cached = uncached,
batched = one row at a time, the best beam's score = its recomputed log-probability), two
threads sharing one model, and an LLM-side forward Dynamo traces as one graph."""
import threading

import pytest
import torch
import torch.nn.functional as F

from tiny_methods import ALL_METHODS, PAD, build, inputs, liven, trace_llm_side

GEN = dict(max_new_tokens=5, pad_token_id=PAD, eos_token_id=None)


def left_padded(method, pad=2):
    """Two image rows, the second starting `pad` columns later (its modality placeholder too)."""
    x = inputs(method, image_rows=(1, 1))
    ids, mask = x["input_ids"].clone(), torch.ones_like(x["input_ids"])
    ids[1, :pad], mask[1, :pad] = PAD, 0
    return dict(x, input_ids=ids, attention_mask=mask), pad


def row(x, index, start):
    return dict(input_ids=x["input_ids"][index:index + 1, start:], attention_mask=x["attention_mask"][index:index + 1, start:],
                pixel_values=x["pixel_values"][index:index + 1], has_image=x["has_image"][index:index + 1],
                image_slot=x["image_slot"][index:index + 1] - start)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_beam_search_batched_equals_one_row_at_a_time_and_uncached(method):
    model = liven(build(method))
    x, pad = left_padded(method)
    length = x["input_ids"].shape[1]
    batched = model.generate(**x, num_beams=3, do_sample=False, **GEN)
    uncached = model.generate(**x, num_beams=3, do_sample=False, use_cache=False, **GEN)
    assert torch.equal(batched, uncached)
    for index, start in ((0, 0), (1, pad)):
        single = model.generate(**row(x, index, start), num_beams=3, do_sample=False, **GEN)
        assert torch.equal(batched[index, length:], single[0, length - start:])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_best_beam_score_is_its_recomputed_log_probability(method):
    """With the cache reordered between beams, the score generate reports must still be the
    sum of log-probabilities a plain forward gives that sequence."""
    model = liven(build(method))
    x = inputs(method, image_rows=(1, 0))
    out = model.generate(**x, num_beams=3, do_sample=False, length_penalty=0.0, output_scores=True,
                         return_dict_in_generate=True, **GEN)
    prompt = x["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**dict(x, input_ids=out.sequences), use_cache=False).logits
    logprobs = F.log_softmax(logits[:, prompt - 1:-1].float(), dim=-1)
    recomputed = logprobs.gather(-1, out.sequences[:, prompt:, None]).squeeze(-1).sum(-1)
    assert torch.allclose(out.sequences_scores, recomputed, atol=1e-4)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_one_beam_equals_greedy(method):
    model = liven(build(method))
    x = inputs(method, image_rows=(1, 0))
    greedy = model.generate(**x, do_sample=False, **GEN)
    assert torch.equal(model.generate(**x, num_beams=1, do_sample=False, **GEN), greedy)
    wide = model.generate(**x, num_beams=3, num_return_sequences=3, do_sample=False, **GEN)
    assert wide.shape[0] == 6  # every beam of every row returned, visual inputs expanded with them


@pytest.mark.parametrize("method", ["ademvl", "lavin", "memvp"])
def test_two_threads_share_one_model(method):
    """Each thread generates on its own image as many times as it can while the other does too."""
    torch.set_num_threads(1)
    model = liven(build(method))
    x = inputs(method, image_rows=(1, 1))
    jobs = [row(dict(x, attention_mask=torch.ones_like(x["input_ids"])), i, 0) for i in (0, 1)]
    jobs[1]["pixel_values"] = -jobs[1]["pixel_values"]  # a different image
    alone = [model.generate(**job, do_sample=False, **GEN) for job in jobs]
    assert not torch.equal(alone[0], alone[1])
    start = threading.Barrier(2)
    results = [[], []]

    def work(index):
        start.wait()
        for _ in range(12):
            results[index].append(model.generate(**jobs[index], do_sample=False, **GEN))

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for index in (0, 1):
        assert len(results[index]) == 12
        assert all(torch.equal(out, alone[index]) for out in results[index])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_llm_side_forward_is_one_graph(method):
    """Visual inputs already encoded: Dynamo traces the whole forward without a break."""
    model = liven(build(method))
    x = inputs(method, image_rows=(1, 0))
    explained, eager, compiled = trace_llm_side(model, x["input_ids"], x["pixel_values"], x["has_image"],
                                                x["image_slot"])
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    assert torch.allclose(compiled, eager, atol=1e-5)
