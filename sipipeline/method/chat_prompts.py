"""Chat-native prompts of the Self-Instruct method, for instruction-following (chat) models.

A chat model answers a request instead of continuing a document, so each stage says what it
wants in a system message and shows the paper's few-shot content (the same examples as the
completion prompts in `prompts.py`) as earlier turns of the conversation: the model sees the
answer shape it should copy. With structured output (`structured=True`) the example answers
are JSON in the shape of the stage's schema, which the request also sends as
`response_format`. The completion prompts stay the default for base models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sipipeline.method.prompts import NEW_ITEMS_PER_PROMPT, FewShotExamples
from sipipeline.method.vocabulary import collapse_whitespace

#: (role, content) pairs, in order: what a chat request carries.
ChatMessages = tuple[tuple[str, str], ...]

SYSTEM = "system"
USER = "user"
ASSISTANT = "assistant"

GENERATION_SYSTEM = (
    "You help build a dataset of instructions for training language models. You write new task "
    "instructions in the style of the examples you are shown. Every instruction must be "
    "something a language model can do with text alone.")
CLASSIFICATION_SYSTEM = (
    "You decide whether a task is a classification task: a task whose output is one of a "
    "finite, small set of labels. Answer Yes or No.")
INPUT_FIRST_SYSTEM = (
    "You write examples for tasks. When a task needs an input, write up to five examples, each "
    "as a line `Example k`, then `Input:` and `Output:`. When a task needs no input, write "
    "`Output:` and the output directly. Write nothing else.")
OUTPUT_FIRST_SYSTEM = (
    "Each task you get is a classification task. For each possible class label, write "
    "`Class label:` and the label, then `Input:` and an input that belongs to that label. "
    "Write nothing else.")
JSON_NOTE = " Answer with a JSON object in the shape of the examples."

CLASSIFICATION_QUESTION = "Is it a classification task?"


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


_STRING = {"type": "string"}

#: The JSON schema of each stage's answer (sent as `response_format` in structured mode).
GENERATION_SCHEMA = _object({"tasks": {"type": "array", "items": _STRING}})
CLASSIFICATION_SCHEMA = _object({"is_classification": {"type": "boolean"}})
INPUT_FIRST_SCHEMA = _object(
    {"instances": {"type": "array", "items": _object({"input": _STRING, "output": _STRING})}})
OUTPUT_FIRST_SCHEMA = _object(
    {"instances": {"type": "array",
                   "items": _object({"class_label": _STRING, "input": _STRING})}})


@dataclass(frozen=True)
class StagePrompt:
    """One stage's request: the text stored and hashed, the chat messages, the answer schema.

    `text` is the completion prompt, or the rendered messages of a chat prompt. `messages` is
    empty for a completion prompt. `response_format` is the JSON `response_format` object
    (canonical JSON text, so the prompt stays hashable), empty when the answer is free text.
    """

    text: str
    messages: ChatMessages = ()
    response_format: str = ""


def response_format(name: str, schema: dict[str, Any]) -> str:
    """The `response_format` object asking for `schema`, as canonical JSON text."""
    return json.dumps({"type": "json_schema",
                       "json_schema": {"name": name, "strict": True, "schema": schema}},
                      sort_keys=True)


def render_messages(messages: ChatMessages) -> str:
    """A chat prompt as one text: stored in the `prompt` column and hashed into request ids."""
    return "\n\n".join(f"[{role}]\n{content}" for role, content in messages)


def _stage(messages: list[tuple[str, str]], name: str, schema: dict[str, Any],
           structured: bool) -> StagePrompt:
    frozen = tuple(messages)
    return StagePrompt(render_messages(frozen), frozen,
                       response_format(name, schema) if structured else "")


def _system(text: str, structured: bool) -> tuple[str, str]:
    return SYSTEM, text + (JSON_NOTE if structured else "")


def generation_messages(instructions: Sequence[str], structured: bool = False,
                        new_items: int = NEW_ITEMS_PER_PROMPT) -> StagePrompt:
    """Ask for `new_items` new instructions after the in-context ones, as a numbered list."""
    shown = [collapse_whitespace(text).rstrip(":") for text in instructions]
    listing = "\n".join(f"{number}. {text}" for number, text in enumerate(shown, start=1))
    first, last = len(shown) + 1, len(shown) + new_items
    if structured:
        answer_shape = ('Answer with a JSON object {"tasks": [...]} holding the new tasks, one '
                        "string each.")
    else:
        answer_shape = (f"Answer with a numbered list from {first} to {last}, one task per "
                        "item, and nothing else.")
    request = (
        f"Here are {len(shown)} tasks from the dataset:\n\n{listing}\n\n"
        f"Write {new_items} new tasks that differ from these and from each other: vary the "
        "topic, the kind of task (questions, classification, editing, writing, reasoning) and "
        f"the length. {answer_shape}")
    messages = [_system(GENERATION_SYSTEM, structured), (USER, request)]
    return _stage(messages, "generated_tasks", GENERATION_SCHEMA, structured)


def classification_messages(examples: FewShotExamples, instruction: str,
                            structured: bool = False) -> StagePrompt:
    """The labelled seed tasks as earlier turns, then the question about `instruction`."""
    messages = [_system(CLASSIFICATION_SYSTEM, structured)]
    for text, is_classification in examples.classification:
        messages.append((USER, f"Task: {text}\n{CLASSIFICATION_QUESTION}"))
        answer = (json.dumps({"is_classification": is_classification}) if structured
                  else ("Yes" if is_classification else "No"))
        messages.append((ASSISTANT, answer))
    messages.append((USER, f"Task: {collapse_whitespace(instruction)}\n"
                           f"{CLASSIFICATION_QUESTION}"))
    return _stage(messages, "classification", CLASSIFICATION_SCHEMA, structured)


def _input_first_answer(task_input: str, task_output: str, structured: bool) -> str:
    if structured:
        return json.dumps({"instances": [{"input": task_input, "output": task_output}]},
                          ensure_ascii=False)
    if task_input:
        return f"Example 1\nInput: {task_input}\nOutput: {task_output}"
    return f"Output: {task_output}"


def input_first_messages(examples: FewShotExamples, instruction: str,
                         structured: bool = False) -> StagePrompt:
    """Input-first instance generation: seed tasks and their instances as earlier turns."""
    messages = [_system(INPUT_FIRST_SYSTEM, structured)]
    for text, task_input, task_output in examples.input_first:
        messages.append((USER, f"Task: {text}"))
        messages.append((ASSISTANT, _input_first_answer(task_input, task_output, structured)))
    messages.append((USER, f"Task: {collapse_whitespace(instruction)}"))
    return _stage(messages, "instances", INPUT_FIRST_SCHEMA, structured)


def _output_first_answer(label: str, task_input: str, structured: bool) -> str:
    if structured:
        return json.dumps({"instances": [{"class_label": label, "input": task_input}]},
                          ensure_ascii=False)
    return f"Class label: {label}\nInput: {task_input}" if task_input else f"Class label: {label}"


def output_first_messages(examples: FewShotExamples, instruction: str,
                          structured: bool = False) -> StagePrompt:
    """Output-first instance generation (classification tasks): a label, then its input."""
    messages = [_system(OUTPUT_FIRST_SYSTEM, structured)]
    for text, label, task_input in examples.output_first:
        messages.append((USER, f"Task: {text}"))
        messages.append((ASSISTANT, _output_first_answer(label, task_input, structured)))
    messages.append((USER, f"Task: {collapse_whitespace(instruction)}"))
    return _stage(messages, "class_instances", OUTPUT_FIRST_SCHEMA, structured)
