"""Evaluation of a trained model: batched generation, per-dataset scores, checkpoint loading.

    from ademvl.evaluation import load_for_eval, evaluate
    model, tokenizer, image_processor = load_for_eval("runs/sqa/adapter")
    result = evaluate(model, tokenizer, image_processor, "scienceqa", examples, output="sqa.json")
    print(result["table"])
"""
from .evaluators import DEFAULT_MAX_NEW_TOKENS, SCORERS, evaluate, scienceqa_records
from .generation import GenerationCollator, generate_answers, generate_batch, pad_token_id
from .loading import load_for_eval, load_image_processor, load_tokenizer

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "SCORERS",
    "evaluate",
    "scienceqa_records",
    "GenerationCollator",
    "generate_answers",
    "generate_batch",
    "pad_token_id",
    "load_for_eval",
    "load_image_processor",
    "load_tokenizer",
]
