"""GAR-Bench-VQA (the reference repo's ``evaluation/GAR-Bench``) as the reference evaluated it.

Each item: ``image`` (relative to the annotations' folder, where the repo keeps
``images/``), ``mask_rles`` (COCO RLE, region K is ``<PromptK>``), ``question``,
``choices``, ``answer`` (a letter) and ``type``. The question is built exactly as the
reference's ``inference.py --mode vqa`` builds it. The reference's reported runs: GAR-1B
47.9 and GAR-8B 57.8 overall.

Two modes. ``reference_compat`` (the default) shows GAR each item as the reference's
``evaluation/eval_dataset.py`` (``MultiRegionDataset``) did, defects included, since the
published numbers were made that way: regions in the iteration order of a Python set of
the question's ``<PromptK>`` strings (also the mask map's paint order, first wins);
``<Prompt5>`` and above are plain text whose crop tokens (``<|reserved_special_token_{K+2}|>``)
are not replayed and whose pixels get mask value 5 (no region); and every replayed
region's box is the *last* mask's box (a loop variable left over from an earlier loop).
It also scores as the reference's ``inference.py`` did: the whole answer must be the
letter (case aside). Otherwise (``corrected``) items go through ``garvid image``'s code
path: regions in slot order with their own boxes, items naming more than five regions
recorded with the reason and counted wrong, the letter read by
:func:`garvid.eval.choices.extract_choice`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from garvid.errors import GarvidError
from garvid.failures import ends_run, failure_text, item_errors
from garvid.eval.choices import check_item_text, check_unique_ids, choices_question, extract_choice, item_options, load_questions
from garvid.eval.results import ANSWER_TOKENS, ResultLog, published_row, refuse_mixed
from garvid.eval.running import answer_items
from garvid.gar.processor import region_box
from garvid.gar.prompt import region_question_text, with_multiple_choice_suffix
from garvid.gar.tokenizer import NUM_PROMPTS
from garvid.options import PromptsPerPass, GenerationOptions, ModelOptions, PromptOptions
from garvid.qa.steps import Steps
from garvid.qa.image_answering import RegionLayout, layout_steps, load_image, regions_steps
from garvid.qa.planning import GarFiles
from garvid.qa.reporting import Reporter
from garvid.regions.masks import decode_rle

TYPE_ORDER = ("color", "texture/pattern", "mirror", "ordering", "material", "shape", "relation")
#: The reference repo's own runs (evaluation/EVALUATION.md, exact-match accuracy in %), to
#: print beside a run.
PUBLISHED = {
    "GAR-1B (reference)": published_row(TYPE_ORDER, 49.3, 58.6, 59.0, 20.3, 38.9, 50.0, 56.4, 47.9),
    "GAR-8B (reference)": published_row(TYPE_ORDER, 58.0, 75.9, 59.0, 43.8, 52.8, 53.1, 65.4, 57.8),
}
#: How each published row was made, printed beside it.
PUBLISHED_SETUP = {
    name: "the reference's evaluation/GAR-Bench/inference.py --mode vqa (eval_dataset.py layout), exact-match scoring"
    for name in PUBLISHED
}
REQUIRED_FIELDS = ("image", "mask_rles", "question", "choices", "answer", "type")
_PROMPT_TOKEN = re.compile(r"<Prompt\d+>")


def load_items(path: Path) -> list[dict[str, Any]]:
    """The benchmark's items, checked for the fields garvid reads."""
    items = load_questions(path, "GAR-Bench-VQA", REQUIRED_FIELDS)
    check_unique_ids([item_id(item, position) for position, item in enumerate(items)], path)
    return items


def item_id(item: dict[str, Any], position: int) -> str:
    """Items carry no id: their image name (unique in the benchmark), else their position."""
    return str(item.get("id") or item.get("image") or position)


def mode_name(reference_compat: bool) -> str:
    """How a run's results file and summary name its mode."""
    return "reference-compat" if reference_compat else "corrected"


def reference_region_order(question: str) -> list[int]:
    """Prompt indices in the reference's order: iterating ``set(re.findall("<Prompt\\d+>", question))``.

    ``question`` is the whole user question, options and instruction included, as the
    reference searched it. String hashes are randomised per process, so this order varies
    between runs exactly as the reference's did (its scripts set no ``PYTHONHASHSEED``);
    set ``PYTHONHASHSEED`` for a repeatable run.
    """
    return [int(token[len("<Prompt") : -1]) for token in set(_PROMPT_TOKEN.findall(question))]


def reference_layout(masks: Sequence[np.ndarray], question: str, order: Sequence[int]) -> RegionLayout:
    """What the reference's multi-region evaluation shows GAR for ``masks`` (mask K is ``<PromptK>``).

    ``order`` is the regions' iteration order (:func:`reference_region_order`). See the
    module docstring for the three behaviours reproduced.
    """
    if len(order) != len(masks) or set(order) != set(range(len(masks))):
        raise GarvidError(f"the question names regions {sorted(order)} but the item has {len(masks)} masks")
    if len({np.shape(mask) for mask in masks}) != 1:
        raise GarvidError("the item's masks differ in size")
    painted: dict[int, np.ndarray] = {}
    claimed = np.zeros(np.shape(masks[0]), dtype=bool)
    for index in order:  # painted in this order, first wins; <Prompt5>+ paint "no region"
        mask = np.asarray(masks[index], dtype=bool)
        if index < NUM_PROMPTS and (mask & ~claimed).any():
            painted[index] = mask & ~claimed
        claimed |= mask
    last_box = region_box(np.asarray(masks[-1], dtype=bool))
    return RegionLayout(
        text=region_question_text(order, question),
        masks=painted,
        slot_objects={index: index + 1 for index in painted},
        prompt_question=question,
        boxes={index: last_box for index in order if index < NUM_PROMPTS},
    )


def item_steps(
    item: dict[str, Any],
    image_root: Path,
    model,
    files: GarFiles,
    *,
    key: str,
    generation: GenerationOptions,
    prompt: PromptOptions,
    reference_compat: bool,
) -> Steps[dict[str, Any]]:
    """Ask one item (``key`` its id), as steps (see :mod:`garvid.qa.steps`): its record for
    the results file. Bad input and running out of memory are the item's error, in its record.

    ``files`` are ``model``'s checkpoint files (tokenizer, tile limits, chat template), read once
    for the run, not once per item.
    """
    record: dict[str, Any] = {"id": key, "type": str(item["type"]), "answer": str(item["answer"]).strip().upper()}
    try:
        check_item_text(item)
        options = item_options(item, "choices")
        if not isinstance(item["mask_rles"], list):
            raise GarvidError(f"the item's 'mask_rles' must be a list of masks, not {type(item['mask_rles']).__name__}")
        if not item["mask_rles"]:
            raise GarvidError("the item has no masks ('mask_rles' is empty)")
        masks = [decode_rle(rle) for rle in item["mask_rles"]]
        question = choices_question(str(item["question"]), options)
        image = load_image(image_root / str(item["image"]), exif_orientation=False)  # masks fit the stored pixels
        if reference_compat:
            question = with_multiple_choice_suffix(question)
            record["region_order"] = order = reference_region_order(question)
            layout = reference_layout(masks, question, order)
            steps = layout_steps(image, layout, model, question=question, files=files, generation=generation, prompt=prompt)
        else:
            objects = {index + 1: mask for index, mask in enumerate(masks)}
            choice_prompt = replace(prompt, multiple_choice=True)
            steps = regions_steps(image, objects, question, model, files=files, generation=generation, prompt=choice_prompt)
        output = (yield from steps).reference_answer
    except item_errors() as error:
        if ends_run(error):
            raise
        record.update(prediction=None, correct=False, output=None, error=failure_text(error))
    else:
        prediction = extract_choice(output, options)
        # the reference scores by exact match of the whole answer; garvid reads the letter
        correct = output.lower() == record["answer"].lower() if reference_compat else prediction == record["answer"]
        record.update(prediction=prediction, correct=correct, output=output)
    return record


def run_gar_bench(
    items: list[dict[str, Any]],
    image_root: Path,
    log: ResultLog,
    *,
    model: ModelOptions,
    generation: GenerationOptions = GenerationOptions(max_new_tokens=ANSWER_TOKENS),
    prompt: PromptOptions = PromptOptions(),
    reference_compat: bool = True,
    reporter: Reporter | None = None,
    on_item: Callable[[dict[str, Any]], None] = lambda record: None,
    should_stop: Callable[[], bool] = lambda: False,
    per_pass: PromptsPerPass = 1,
) -> int:
    """Answer every item not yet in ``log`` with one GAR, ``per_pass`` prompts per forward pass
    (:mod:`garvid.qa.steps`): as the reference did (``reference_compat``) or as ``garvid
    image`` would. The number of items answered (errors not counted).

    Records are logged as items finish, which with batches is not always their order in ``items``.
    """
    from garvid.gar.loading import load_gar

    keyed = ((item_id(item, position), item) for position, item in enumerate(items))
    mode = mode_name(reference_compat)
    setup = {"mode": mode, "model": model.name, "max_new_tokens": str(generation.max_new_tokens)}  # in every record
    refuse_mixed(log, **setup)
    pending = [(key, item) for key, item in keyed if not log.done(key)]
    if not pending:
        return 0
    loaded = load_gar(model.name, dtype=model.dtype, device=model.device, attn_implementation=model.attn)
    files = GarFiles.read(str(loaded.checkpoint_dir))
    options = {"generation": generation, "prompt": prompt, "reference_compat": reference_compat}

    def start(key: str, item: dict[str, Any]) -> Callable[[], Steps[dict[str, Any]]]:
        return lambda: item_steps(item, image_root, loaded, files, key=key, **options)

    started = ((key, start(key, item)) for key, item in pending)
    reporter = reporter or Reporter()
    return answer_items(started, log, per_pass, setup, reporter=reporter, on_item=on_item, should_stop=should_stop)
