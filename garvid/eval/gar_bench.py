"""GAR-Bench-VQA (the reference repo's ``evaluation/GAR-Bench``) with ``garvid image``'s code path.

Each item: ``image`` (relative to the annotations' folder, where the repo keeps
``images/``), ``mask_rles`` (COCO RLE, region K is ``<PromptK>``), ``question``,
``choices``, ``answer`` (a letter) and ``type``. The question is built exactly as the
reference's ``inference.py --mode vqa`` builds it. The reference's reported runs: GAR-1B
47.9 and GAR-8B 57.8 overall. Items naming more regions than GAR's five slots cannot be
asked; they are recorded with the reason and count as wrong.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from garvid.errors import GarvidError
from garvid.eval.choices import check_unique_ids, choices_question, extract_choice, item_options, load_questions
from garvid.eval.results import ANSWER_TOKENS, ResultLog, published_row
from garvid.options import GenerationOptions, PromptOptions
from garvid.regions.masks import decode_rle

TYPE_ORDER = ("color", "texture/pattern", "mirror", "ordering", "material", "shape", "relation")
#: The reference repo's own runs (evaluation/EVALUATION.md, exact-match accuracy in %), to
#: print beside a run.
PUBLISHED = {
    "GAR-1B (reference)": published_row(TYPE_ORDER, 49.3, 58.6, 59.0, 20.3, 38.9, 50.0, 56.4, 47.9),
    "GAR-8B (reference)": published_row(TYPE_ORDER, 58.0, 75.9, 59.0, 43.8, 52.8, 53.1, 65.4, 57.8),
}
REQUIRED_FIELDS = ("image", "mask_rles", "question", "choices", "answer", "type")


def load_items(path: Path) -> list[dict[str, Any]]:
    """The benchmark's items, checked for the fields garvid reads."""
    items = load_questions(path, "GAR-Bench-VQA", REQUIRED_FIELDS)
    check_unique_ids([item_id(item, position) for position, item in enumerate(items)], path)
    return items


def item_id(item: dict[str, Any], position: int) -> str:
    """Items carry no id: their image name (unique in the benchmark), else their position."""
    return str(item.get("id") or item.get("image") or position)


def run_gar_bench(
    items: list[dict[str, Any]],
    image_root: Path,
    log: ResultLog,
    *,
    model_name: str,
    dtype: str = "auto",
    device: str = "auto",
    generation: GenerationOptions = GenerationOptions(max_new_tokens=ANSWER_TOKENS),
    prompt: PromptOptions = PromptOptions(),
    on_item: Callable[[dict[str, Any]], None] = lambda record: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Answer every item not yet in ``log`` with one GAR, as ``garvid image`` would."""
    from garvid.devices import memory_errors
    from garvid.gar.loading import load_gar
    from garvid.qa.image_answering import answer_image, load_image

    keyed = ((item_id(item, position), item) for position, item in enumerate(items))
    pending = [(key, item) for key, item in keyed if not log.done(key)]
    if not pending:
        return
    model = load_gar(model_name, dtype=dtype, device=device)
    choice_prompt = replace(prompt, multiple_choice=True)
    for key, item in pending:
        if should_stop():
            break
        record: dict[str, Any] = {"id": key, "type": str(item["type"]), "answer": str(item["answer"]).strip().upper()}
        try:
            options = item_options(item, "choices")
            if not isinstance(item["mask_rles"], list):
                raise GarvidError(f"the item's 'mask_rles' must be a list of masks, not {type(item['mask_rles']).__name__}")
            masks = {index + 1: decode_rle(rle) for index, rle in enumerate(item["mask_rles"])}
            question = choices_question(str(item["question"]), options)
            image = load_image(image_root / str(item["image"]))
            output = answer_image(image, masks, question, model, generation=generation, prompt=choice_prompt).answer
        except (GarvidError, *memory_errors()) as error:
            record.update(prediction=None, correct=False, output=None, error=str(error).splitlines()[0])
        else:
            prediction = extract_choice(output, options)
            record.update(prediction=prediction, correct=prediction == record["answer"], output=output)
        log.add(record)
        on_item(record)
