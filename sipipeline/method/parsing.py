"""Turn raw model text into instructions and instances, recording why anything is dropped."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from sipipeline.method.vocabulary import DropReason, RejectReason, collapse_whitespace

#: Words that point at modalities a language model cannot handle (paper + Alpaca's additions).
BLACKLISTED_WORDS = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)
_BLACKLIST_PATTERN = re.compile(
    r"\b(?:" + "|".join(re.escape(word) for word in BLACKLISTED_WORDS) + r")\b", re.IGNORECASE
)
_ITEM_SPLIT = re.compile(r"\n\s*\d+\s?\.\s*")
MIN_WORDS_EXCLUSIVE = 3
MAX_WORDS = 150


@dataclass(frozen=True)
class ParsedInstruction:
    position: int
    instruction: str
    reject_reason: str | None  # None when the heuristics accept it


def instruction_rejection(instruction: str) -> str | None:
    """The heuristic filter of the paper: the first reason to reject, or None to keep."""
    words = instruction.split()
    if len(words) <= MIN_WORDS_EXCLUSIVE:
        return RejectReason.TOO_SHORT
    if len(words) > MAX_WORDS:
        return RejectReason.TOO_LONG
    if _BLACKLIST_PATTERN.search(instruction):
        return RejectReason.BLACKLISTED_WORD
    if instruction.startswith("Write a program"):
        return RejectReason.STARTS_WITH_WRITE_A_PROGRAM
    if instruction[0] in string.punctuation:
        return RejectReason.STARTS_WITH_PUNCTUATION
    if not instruction[0].isascii():
        return RejectReason.STARTS_WITH_NON_ASCII
    return None


def parse_generated_instructions(text: str, finish_reason: str) -> list[ParsedInstruction]:
    """Split a continuation of the numbered list into instructions.

    The prompt ends with the number of the first new item, so the text starts mid-item. A
    response cut by the token limit loses only its last (incomplete) item, as Alpaca does.
    Empty items are skipped; a response with no item at all yields one `unparseable` record so the
    funnel counts it.
    """
    pieces = _ITEM_SPLIT.split("\n" + text)
    items = [collapse_whitespace(piece) for piece in pieces]
    parsed: list[ParsedInstruction] = []
    last_nonempty = max((i for i, item in enumerate(items) if item), default=-1)
    for position, item in enumerate(items):
        if not item:
            continue
        if finish_reason == "length" and position == last_nonempty:
            parsed.append(ParsedInstruction(position, item, RejectReason.TRUNCATED))
            continue
        parsed.append(ParsedInstruction(position, item, instruction_rejection(item)))
    if not parsed:
        parsed.append(ParsedInstruction(0, collapse_whitespace(text),
                                         RejectReason.UNPARSEABLE))
    return parsed


def parse_classification_answer(text: str) -> bool:
    """'Yes' (any case, surrounding space ignored) means classification."""
    return text.strip().lower().startswith("yes")


@dataclass(frozen=True)
class ParsedInstance:
    input: str
    output: str
    drop_reason: str | None


_OUTPUT_MARK = re.compile(r"Output\s*\d*\s*:")
_INPUT_MARK = re.compile(r"Input\s*\d*\s*:")
_EXAMPLE_MARK = re.compile(r"Example\s?\d+\s?\.?\s*")


def _split_input_output(block: str) -> tuple[str, str]:
    if _OUTPUT_MARK.search(block):
        before, after = _OUTPUT_MARK.split(block, maxsplit=1)
        task_input, task_output = before.strip(), after.strip()
    else:
        task_input, task_output = "", block.strip()
    # A second Input: inside the output means the model ran on into another example.
    task_output = _INPUT_MARK.split(task_output, maxsplit=1)[0].strip()
    task_input = _INPUT_MARK.sub("", task_input, count=1).strip()
    return task_input, task_output


def _instance_drop_reason(task_input: str, task_output: str) -> str | None:
    if not task_output:
        return DropReason.EMPTY_OUTPUT
    if task_input == task_output:
        return DropReason.INPUT_EQUALS_OUTPUT
    if task_input.endswith(":") or task_output.endswith(":"):
        return DropReason.ENDS_WITH_COLON
    return None


def parse_input_first(text: str, finish_reason: str) -> list[ParsedInstance]:
    """Parse `Example k` blocks (or a bare output) written after an input-first prompt."""
    blocks = [block for block in _EXAMPLE_MARK.split(text) if block.strip()]
    return _instances_from_pairs([_split_input_output(b) for b in blocks], finish_reason)


def parse_output_first(text: str, finish_reason: str) -> list[ParsedInstance]:
    """Parse `Class label: X` blocks, each followed by an input for that label."""
    blocks = [block for block in re.split(r"Class label\s*:", text)[1:] if block.strip()]
    pairs = []
    for block in blocks:
        label, _, rest = block.strip().partition("\n")
        task_input = _INPUT_MARK.sub("", rest.strip(), count=1).strip()
        pairs.append((task_input, label.strip()))
    if not blocks and text.strip():
        pairs.append(("", ""))  # counted as an empty-output drop, never a crash
    return _instances_from_pairs(pairs, finish_reason)


def _instances_from_pairs(pairs: list[tuple[str, str]], finish_reason: str) -> list[ParsedInstance]:
    parsed = []
    for index, (task_input, task_output) in enumerate(pairs):
        if finish_reason == "length" and index == len(pairs) - 1:
            reason: str | None = DropReason.TRUNCATED
        else:
            reason = _instance_drop_reason(task_input, task_output)
        parsed.append(ParsedInstance(task_input, task_output, reason))
    return parsed


MAX_INSTANCES_PER_TASK = 5


def select_task_instances(
    instances: list[ParsedInstance],
) -> tuple[list[ParsedInstance], str | None]:
    """Apply the task-level rules to parsed instances.

    Returns the instances with their final drop reasons, and a task-level reason when the whole
    task must go (two instances with the same non-empty input and different outputs).
    Exact duplicates are dropped; at most five are kept.
    """
    outputs_by_input: dict[str, set[str]] = {}
    for instance in instances:
        if instance.drop_reason is None and instance.input:
            outputs_by_input.setdefault(instance.input, set()).add(instance.output)
    if any(len(outputs) > 1 for outputs in outputs_by_input.values()):
        return (
            [ParsedInstance(i.input, i.output, i.drop_reason or DropReason.CONFLICTING_OUTPUTS)
             for i in instances],
            DropReason.CONFLICTING_OUTPUTS,
        )
    seen: set[tuple[str, str]] = set()
    result = []
    kept = 0
    for instance in instances:
        reason = instance.drop_reason
        if reason is None and (instance.input, instance.output) in seen:
            reason = DropReason.DUPLICATE
        if reason is None and kept >= MAX_INSTANCES_PER_TASK:
            reason = DropReason.OVER_LIMIT
        if reason is None:
            seen.add((instance.input, instance.output))
            kept += 1
        result.append(ParsedInstance(instance.input, instance.output, reason))
    return result, None if kept else DropReason.NO_VALID_INSTANCE
