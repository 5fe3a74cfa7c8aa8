"""Completion-style prompts of the Self-Instruct method, in sipipeline's own wording.

The prompts are written for a base (non-chat) model, as in the paper: the model continues a
document. Few-shot examples are built from the human seed tasks, chosen once with a fixed seed
so that every round and every re-run sees the same prompt text (which keeps responses journaled
under the same key).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sipipeline.method.vocabulary import collapse_whitespace

GENERATION_HEADER = "Write a numbered list of diverse tasks, one instruction per item:\n"
CLASSIFICATION_HEADER = (
    "For each task, answer whether it can be regarded as a classification task, "
    "one whose output is one of a finite, small set of labels.\n\n"
)
CLASSIFICATION_QUESTION = "Is it a classification task?"
INPUT_FIRST_HEADER = (
    "Write examples for each task. Give several examples when you can. When a task needs no "
    "extra input, write the output directly.\n\n"
)
OUTPUT_FIRST_HEADER = (
    "Each task below is a classification task. For each possible class label, write the label "
    "and then an input that belongs to that label.\n\n"
)

#: The paper's few-shot counts (12 Yes / 19 No for classification, about 12 and 17 tasks for
#: the two instance-generation prompts).
CLASSIFICATION_SHOTS = (12, 19)
INPUT_FIRST_SHOTS = 12
OUTPUT_FIRST_SHOTS = 17
FEW_SHOT_SEED = 2212_10560  # the paper's arXiv number: a fixed, documented choice
MAX_SHOT_CHARS = 600  # keep few-shot examples short so prompts fit small local models


def generation_prompt(instructions: Sequence[str]) -> str:
    """The instruction-generation prompt: numbered in-context instructions, then the next number."""
    lines = [GENERATION_HEADER]
    for number, instruction in enumerate(instructions, start=1):
        lines.append(f"{number}. {collapse_whitespace(instruction).rstrip(':')}\n")
    lines.append(f"{len(instructions) + 1}.")
    return "".join(lines)


#: The paper's list ends before item 16: the model stops when it starts that item.
LIST_END = 16
#: New items a prompt may yield: the paper's 8 in-context tasks leave room for items 9 to 15.
NEW_ITEMS_PER_PROMPT = LIST_END - 9


def list_end(num_in_context: int) -> int:
    """The item number that ends a list shown `num_in_context` tasks (16 for the paper's 8).

    The number of new items per prompt stays the paper's, whatever the number of examples.
    """
    return num_in_context + NEW_ITEMS_PER_PROMPT + 1

#: Item separators the model writes after a list number ("10. ", "10 . ", "10) ").
ITEM_SEPARATORS = (".", ")")


def generation_stop_sequences(last_item: int = LIST_END) -> tuple[str, ...]:
    """Stop at a blank line or when the model starts item `last_item` (four sequences at most).

    Each number stop needs the space after its separator, so "\n160 people", "\n16th century"
    and "\n16.5 cups" never stop a list. Shapes the four cannot cover ("\n16.\n", "\n16:")
    are cut by the parser, which ends the list at item `last_item` in any form it accepts.
    """
    return ("\n\n", f"\n{last_item}. ", f"\n{last_item} . ", f"\n{last_item}) ")


def _short(text: str) -> bool:
    return len(text) <= MAX_SHOT_CHARS


@dataclass(frozen=True)
class FewShotExamples:
    """The seed tasks shown in the classification and instance-generation prompts."""

    classification: tuple[tuple[str, bool], ...]
    input_first: tuple[tuple[str, str, str], ...]  # instruction, input, output
    output_first: tuple[tuple[str, str, str], ...]  # instruction, label, input

    @classmethod
    def from_seeds(cls, seeds: pd.DataFrame) -> FewShotExamples:
        rng = random.Random(FEW_SHOT_SEED)
        rows = [
            (r.task_id, collapse_whitespace(r.instruction), bool(r.is_classification),
             r.instances[0]["input"].strip(), r.instances[0]["output"].strip())
            for r in seeds.sort_values("task_id", kind="stable").itertuples()
            if len(r.instances) > 0
        ]
        yes = [row for row in rows if row[2]]
        no = [row for row in rows if not row[2]]
        n_yes, n_no = CLASSIFICATION_SHOTS
        labelled = rng.sample(yes, min(n_yes, len(yes))) + rng.sample(no, min(n_no, len(no)))
        rng.shuffle(labelled)
        classification = tuple((row[1], row[2]) for row in labelled)

        usable_no = [row for row in no if _short(row[3]) and _short(row[4])]
        with_input = [row for row in usable_no if row[3]]
        without_input = [row for row in usable_no if not row[3]]
        half = INPUT_FIRST_SHOTS // 2
        picked = (rng.sample(with_input, min(half, len(with_input)))
                  + rng.sample(without_input, min(INPUT_FIRST_SHOTS - half, len(without_input))))
        rng.shuffle(picked)
        input_first = tuple((row[1], row[3], row[4]) for row in picked)

        usable_yes = [row for row in yes if _short(row[3]) and _short(row[4])]
        picked_yes = rng.sample(usable_yes, min(OUTPUT_FIRST_SHOTS, len(usable_yes)))
        output_first = tuple((row[1], row[4], row[3]) for row in picked_yes)
        return cls(classification, input_first, output_first)


def classification_prompt(examples: FewShotExamples, instruction: str) -> str:
    parts = [CLASSIFICATION_HEADER]
    for text, is_classification in examples.classification:
        answer = "Yes" if is_classification else "No"
        parts.append(f"Task: {text}\n{CLASSIFICATION_QUESTION} {answer}\n\n")
    parts.append(f"Task: {collapse_whitespace(instruction)}\n{CLASSIFICATION_QUESTION}")
    return "".join(parts)


def input_first_prompt(examples: FewShotExamples, instruction: str) -> str:
    """Input-first instance generation: a task, then `Example k` blocks or a bare output."""
    parts = [INPUT_FIRST_HEADER]
    for text, task_input, task_output in examples.input_first:
        parts.append(f"Task: {text}\n")
        if task_input:
            parts.append(f"Example 1\nInput: {task_input}\nOutput: {task_output}\n\n")
        else:
            parts.append(f"Output: {task_output}\n\n")
    parts.append(f"Task: {collapse_whitespace(instruction)}\n")
    return "".join(parts)


def output_first_prompt(examples: FewShotExamples, instruction: str) -> str:
    """Output-first generation for classification tasks: a class label, then a matching input."""
    parts = [OUTPUT_FIRST_HEADER]
    for text, label, task_input in examples.output_first:
        parts.append(f"Task: {text}\nClass label: {label}\n")
        parts.append(f"Input: {task_input}\n\n" if task_input else "\n")
    parts.append(f"Task: {collapse_whitespace(instruction)}\n")
    return "".join(parts)


INSTANCE_STOP_SEQUENCES = ("Example 6", "Task:")
CLASSIFICATION_STOP_SEQUENCES = ("\n",)
