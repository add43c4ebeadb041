"""Batched generation equals one-by-one generation; only new tokens are decoded; the chat
wrapper and the harness adapters give the same answers as the core loop."""
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from ademvl.data import ImageError, load_dataset
from ademvl.evaluation import generate_answers, generate_batch, load_for_eval
from ademvl.evaluation.generation import GenerationCollator, generation_kwargs
from ademvl.integrations import AdemVLChat
from ademvl.integrations.lmms_eval_model import _stop_at
from tiny_eval import make_checkpoint, make_scienceqa


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_gen")
    adapter = make_checkpoint(root)
    sqa = make_scienceqa(root / "sqa")
    model, tok, proc = load_for_eval(adapter, device="cpu")
    examples = load_dataset("scienceqa", root=sqa, split="test")
    return SimpleNamespace(model=model, tok=tok, proc=proc, examples=examples, sqa=sqa)


def test_batched_equals_one_by_one(setup):
    s = setup
    assert {ex.has_image for ex in s.examples} == {True, False}  # mixed batch, different prompt lengths
    batched = generate_answers(s.model, s.tok, s.proc, s.examples, batch_size=5, max_new_tokens=6, progress=False)
    single = generate_answers(s.model, s.tok, s.proc, s.examples, batch_size=1, max_new_tokens=6, progress=False)
    assert list(batched) == [ex.id for ex in s.examples]
    assert batched == single
    assert any(batched.values())  # something was generated


def test_only_new_tokens_are_decoded(setup):
    s = setup
    ex = s.examples[0]
    batch = GenerationCollator(s.tok, s.proc, s.model.method.num_input_tokens)([ex])
    out = s.model.generate(**batch, **generation_kwargs(s.tok, 6))
    expected = s.tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert generate_batch(s.model, s.tok, s.proc, [ex], max_new_tokens=6) == [expected]


def test_duplicate_ids_and_bad_sizes_are_refused(setup):
    s = setup
    with pytest.raises(ValueError, match="'10' repeats"):
        generate_answers(s.model, s.tok, s.proc, [s.examples[0]] * 2, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        generate_answers(s.model, s.tok, s.proc, s.examples, batch_size=0, progress=False)


def test_chat_answers_like_the_evaluation_loop(setup):
    s = setup
    chat = AdemVLChat(s.model, s.tok, s.proc, max_new_tokens=4)
    image_ex = next(ex for ex in s.examples if ex.has_image)
    text_ex = next(ex for ex in s.examples if not ex.has_image)
    expected = generate_answers(s.model, s.tok, s.proc, [image_ex, text_ex], max_new_tokens=4, progress=False)
    # path + text-only in one batch, then an in-memory PIL image alone
    assert chat.answer_batch([image_ex.image, None], [image_ex.prompt, text_ex.prompt]) == \
        [expected[image_ex.id], expected[text_ex.id]]
    assert chat.answer(Image.open(image_ex.image), image_ex.prompt) == expected[image_ex.id]


def test_chat_bad_image_names_the_file(setup, tmp_path):
    chat = AdemVLChat(setup.model, setup.tok, setup.proc)
    with pytest.raises(ImageError, match="image not found: .*nope.png"):
        chat.answer(tmp_path / "nope.png", "Question: hi\nAnswer:")
    with pytest.raises(ValueError, match="prompt_template must contain"):
        AdemVLChat(setup.model, setup.tok, setup.proc, prompt_template="no placeholder")


def test_loglikelihood_matches_the_model_loss(setup):
    s = setup
    chat = AdemVLChat(s.model, s.tok, s.proc)
    ex = s.examples[0]
    logprob, greedy = chat.loglikelihood(ex.image, ex.prompt, " The answer is B.")
    # Independent path: the model's own answer-only loss (mean CE) on the same tokens.
    from ademvl.prompting import encode_sample

    enc = encode_sample(s.tok, ex.prompt, None, True, s.model.method.num_input_tokens)
    target = s.tok(" The answer is B.", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([enc.input_ids + target])
    labels = torch.tensor([[-100] * len(enc.input_ids) + target])
    pixels = GenerationCollator(s.tok, s.proc, s.model.method.num_input_tokens).pixels([ex])
    with torch.no_grad():
        loss = s.model(input_ids=ids, labels=labels, pixel_values=pixels, has_image=torch.tensor([1]),
                       image_slot=torch.tensor([enc.image_slot])).loss
    assert logprob == pytest.approx(-loss.item() * len(target), rel=1e-4)
    assert isinstance(greedy, bool)


def test_stop_strings_cut_the_answer():
    assert _stop_at("yes\n\nmore", ["\n\n"]) == "yes"
    assert _stop_at("no stop here", None) == "no stop here"
