"""Turn raw model text into instructions and instances, recording why anything is dropped.

The README's "Fidelity" section lists where these rules differ from the reference scripts.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

from sipipeline.method.prompts import (
    CLASSIFICATION_STOP_SEQUENCES,
    INSTANCE_STOP_SEQUENCES,
    ITEM_SEPARATORS,
    LIST_END,
)
from sipipeline.method.vocabulary import DropReason, RejectReason, collapse_whitespace

# Field markers of the instance prompts (as the reference writes them: any spacing, a number).
_INPUT_MARK = re.compile(r"Input[ \t]*\d*[ \t]*:")
_OUTPUT_MARK = re.compile(r"Output[ \t]*\d*[ \t]*:")
_LABEL_MARK = re.compile(r"Class label[ \t]*:")
#: A field marker at the start of a line: in a list item, the start of an instance the model
#: invented, which is not part of the instruction.
_LINE_START_FIELD = re.compile(r"(?m)^[ \t]*(?:" + _INPUT_MARK.pattern + "|"
                               + _OUTPUT_MARK.pattern + "|" + _LABEL_MARK.pattern + ")")


def _up_to(pattern: re.Pattern[str], text: str) -> str:
    """`text` up to the first match of `pattern` (all of it when there is none)."""
    match = pattern.search(text)
    return text[:match.start()] if match else text


def _before_stops(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """`text` cut at the earliest stop sequence, as a server honouring them would; True if cut.

    Parsing the same text then gives the same result whether or not the server applied them.
    """
    cut = min((i for i in (text.find(stop) for stop in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# ---------------------------------------------------------------------------------------------
# Instructions

#: Words that point at modalities a language model cannot handle (paper + Alpaca's additions).
BLACKLISTED_WORDS = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)
_BLACKLIST_PATTERN = re.compile(
    r"\b(?:" + "|".join(re.escape(word) for word in BLACKLISTED_WORDS) + r")\b", re.IGNORECASE
)
WRITE_A_PROGRAM = "write a program"
MIN_WORDS_EXCLUSIVE = 3
MAX_WORDS = 150

_SEPARATOR_CLASS = "[" + "".join(re.escape(mark) for mark in ITEM_SEPARATORS) + "]"
#: A list number at the start of a line: digits, optional spaces, a separator, then whitespace
#: or the end of the text ("3.5 cups" and "2024.10" are not item numbers).
_ITEM_NUMBER = re.compile(r"\n[ \t]*(\d+)[ \t]*" + _SEPARATOR_CLASS + r"(?=\s|$)")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
#: List numbers at the start of an item ("10. 11. Suggest …" when the model numbered twice).
_LEADING_NUMBERS = re.compile(r"^(?:\d+[ \t]*" + _SEPARATOR_CLASS + r"(?:\s+|$))+")


@dataclass(frozen=True)
class ParsedInstruction:
    position: int  # the item's number minus the number the prompt ended with
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
    if " ".join(words).casefold().startswith(WRITE_A_PROGRAM):
        return RejectReason.STARTS_WITH_WRITE_A_PROGRAM
    if instruction[0] in string.punctuation:
        return RejectReason.STARTS_WITH_PUNCTUATION
    if not instruction[0].isascii():
        return RejectReason.STARTS_WITH_NON_ASCII
    return None


def _longest_numbered_chain(numbers: list[int]) -> int:
    """The start of the longest run n, n+1, n+2 … (in order, gaps allowed); ties: the highest n.

    A nested list inside an item usually restarts at 1, while the continuation's own numbers go
    on from the prompt's, so the longest run (or the larger number) is the list's own.
    """
    best_start, best_length = numbers[0], 0
    for index, start in enumerate(numbers):
        expected, length = start + 1, 1
        for number in numbers[index + 1:]:
            if number == expected:
                expected, length = expected + 1, length + 1
        if length > best_length or (length == best_length and start > best_start):
            best_start, best_length = start, length
    return best_start


def parse_generated_instructions(text: str, finish_reason: str, first_number: int | None = None,
                                 list_end: int = LIST_END) -> list[ParsedInstruction]:
    """Split a continuation of the numbered list into instructions.

    The prompt ends with `first_number` and a separator ("9."), so the text starts inside that
    item (a repeated "9. " at its very start is skipped). A new item begins only at a line that
    starts with the list's next number and a separator ("10. ", "10 . ", "10) "); any other
    number at a line start ("3.5 cups", "1. Mix" in a nested list, "2024. It was") stays in
    the item. The list ends where the stop sequences end it, at a blank line or at a line that
    starts item `list_end` (in sequence or not), whatever the server did with the stops. When
    `first_number` is not given it is inferred from the longest run of consecutive line-start
    numbers (callers that know the prompt should pass it).

    A response cut by the token limit loses only its unfinished last item (Alpaca's rule): the
    text after the last item number, which may be empty. List numbers left at the start of an
    item ("10. 11. Suggest …") are not part of it, nor is anything from a line that starts with
    an `Input:`/`Output:`/`Class label:` field (an instance the model added). Empty items are
    skipped; a response with no item at all yields one `unparseable` record so the funnel
    counts it.
    """
    blank = _BLANK_LINE.search(text)
    ended = blank is not None
    # The text's start counts as a line start, so a chat-style answer that opens with "10. "
    # (or repeats the prompt's "9. ") is numbered like the rest.
    body = "\n" + (text[:blank.start()] if blank is not None else text)
    markers = list(_ITEM_NUMBER.finditer(body))
    if first_number is None:
        numbers = [int(marker.group(1)) for marker in markers]
        first_number = _longest_numbered_chain(numbers) - 1 if numbers else 0
    if first_number < list_end:  # item `list_end` ends the list wherever it appears, as a stop
        end = next((m for m in markers if int(m.group(1)) == list_end), None)
        if end is not None:
            body, ended = body[:end.start()], True
            markers = [marker for marker in markers if marker.start() < end.start()]
    item_start = 0
    if markers and markers[0].start() == 0 and int(markers[0].group(1)) == first_number:
        item_start = markers[0].end()

    pieces: list[tuple[int, str]] = []
    number = first_number
    for marker in markers:
        if marker.start() >= item_start and int(marker.group(1)) == number + 1:
            pieces.append((number, body[item_start:marker.start()]))
            number, item_start = number + 1, marker.end()
    pieces.append((number, body[item_start:]))

    truncated_last = finish_reason == "length" and not ended
    parsed: list[ParsedInstruction] = []
    for index, (item_number, piece) in enumerate(pieces):
        item = _LEADING_NUMBERS.sub("", collapse_whitespace(_up_to(_LINE_START_FIELD, piece)))
        if not item:
            continue
        if truncated_last and index == len(pieces) - 1:
            reason: str | None = RejectReason.TRUNCATED
        else:
            reason = instruction_rejection(item)
        parsed.append(ParsedInstruction(item_number - first_number, item, reason))
    if not parsed:
        raw = _LEADING_NUMBERS.sub("", collapse_whitespace(text))
        parsed.append(ParsedInstruction(0, raw, RejectReason.UNPARSEABLE))
    return parsed


# ---------------------------------------------------------------------------------------------
# Classification answers

_YES = re.compile(r"\s*yes", re.IGNORECASE)


def parse_classification_answer(text: str) -> bool:
    """Yes is the word "yes" in any case, then only punctuation or whitespace ("Yes.", " YES!").

    Anything else is No: "Yesterday", "Yess", "Yes, because …", "No", an empty answer. The
    prompt's examples answer with the bare word, so extra words mean the model did not answer.
    Only the first line counts (the request stops at a newline).
    """
    text, _ = _before_stops(text, CLASSIFICATION_STOP_SEQUENCES)
    match = _YES.match(text)
    if match is None:
        return False
    rest = text[match.end():]
    return all(char.isspace() or unicodedata.category(char).startswith("P") for char in rest)


# ---------------------------------------------------------------------------------------------
# Instances


@dataclass(frozen=True)
class ParsedInstance:
    input: str
    output: str
    drop_reason: str | None


#: Any field marker: where an output (or a class label) ends.
_ANY_FIELD_MARK = re.compile(f"{_INPUT_MARK.pattern}|{_OUTPUT_MARK.pattern}|"
                             f"{_LABEL_MARK.pattern}")
#: The markers of the fields an input is not: where an input ends.
_NOT_INPUT_MARK = re.compile(f"{_OUTPUT_MARK.pattern}|{_LABEL_MARK.pattern}")
#: An `Input:` field marker at the start of a line: where an input field begins. (Mid-line,
#: as in "User Input: hello", it is part of the text.)
_INPUT_FIELD = re.compile(r"(?m)^[ \t]*" + _INPUT_MARK.pattern)
_LEADING_INPUT_MARKS = re.compile(r"^(?:\s*" + _INPUT_MARK.pattern + ")+")
#: `Example k` at the start of a line, any spacing, optional "." or ":" (a block boundary).
_EXAMPLE_MARK = re.compile(r"(?m)^[ \t]*Example[ \t]*\d+[ \t]*[.:]?")


def _input_first_pair(block: str) -> tuple[str, str] | None:
    """(input, output) of one example block, or None when it has no `Output:` marker.

    The output runs from the first `Output:` to the next field marker (another example's
    `Input:`, a second `Output:`). The input is the text before `Output:`; when a line there
    starts a fresh `Input:` field, the output answers the last one, so that one is kept.
    """
    output_mark = _OUTPUT_MARK.search(block)
    if output_mark is None:
        return None
    head = block[:output_mark.start()]
    task_output = _up_to(_ANY_FIELD_MARK, block[output_mark.end():])
    input_fields = list(_INPUT_FIELD.finditer(head))
    task_input = head[input_fields[-1].end():] if input_fields else head
    task_input = _up_to(_NOT_INPUT_MARK, _LEADING_INPUT_MARKS.sub("", task_input))
    return task_input.strip(), task_output.strip()


def _output_first_pair(block: str) -> tuple[str, str]:
    """(input, class label) of the text after one `Class label:` marker.

    The label is the rest of the marker's line; the input is the lines after it, without a
    leading `Input:` marker, up to a line that starts another `Input:` field or any other
    field marker.
    """
    label_line, _, rest = block.partition("\n")
    label = _up_to(_ANY_FIELD_MARK, label_line)
    task_input = _up_to(_INPUT_FIELD, _LEADING_INPUT_MARKS.sub("", rest))
    return _up_to(_NOT_INPUT_MARK, task_input).strip(), label.strip()


def instance_drop_reason(task_input: str, task_output: str) -> str | None:
    """Why a parsed instance is dropped by the paper's filters (None: kept); both parsers use it."""
    if not task_output:
        return DropReason.EMPTY_OUTPUT
    if task_input == task_output:
        return DropReason.INPUT_EQUALS_OUTPUT
    if task_input.endswith(":") or task_output.endswith(":"):
        return DropReason.ENDS_WITH_COLON
    return None


def _instances(pairs: list[tuple[str, str] | None], raw_blocks: list[str],
               truncated: bool) -> list[ParsedInstance]:
    """Apply the instance rules to parsed blocks; the last block is the unfinished one when the
    token limit cut the text, even when it is empty (then nothing is lost)."""
    parsed = []
    for index, (pair, raw) in enumerate(zip(pairs, raw_blocks, strict=True)):
        if not raw.strip():
            continue
        task_input, task_output = pair if pair is not None else ("", raw.strip())
        if truncated and index == len(pairs) - 1:
            reason: str | None = DropReason.TRUNCATED
        elif pair is None:
            reason = DropReason.MISSING_FIELD_MARKER
        else:
            reason = instance_drop_reason(task_input, task_output)
        parsed.append(ParsedInstance(task_input, task_output, reason))
    return parsed


def parse_input_first(text: str, finish_reason: str) -> list[ParsedInstance]:
    """Parse `Example k` blocks (or one bare `Output:`) written after an input-first prompt.

    The prompt shows every instance with an `Output:` marker (a task without input as a lone
    `Output: …`), so a block without one (including text before `Example 1`) is dropped as
    `missing_field_marker`, keeping its text as the output for inspection. The text ends where
    the request's stops end it ("Example 6", "Task:"); a text that ended there is complete.
    """
    text, stopped = _before_stops(text, INSTANCE_STOP_SEQUENCES)
    truncated = finish_reason == "length" and not stopped
    blocks = _EXAMPLE_MARK.split(text)
    return _instances([_input_first_pair(block) for block in blocks], blocks, truncated)


def parse_output_first(text: str, finish_reason: str) -> list[ParsedInstance]:
    """Parse `Class label: X` blocks, each followed by an input for that label.

    Text with no `Class label:` marker at all is one `missing_field_marker` drop; text before
    the first marker is ignored (the prompt puts the marker right after the task). The text
    ends where the request's stops end it, as for input-first.
    """
    text, stopped = _before_stops(text, INSTANCE_STOP_SEQUENCES)
    truncated = finish_reason == "length" and not stopped
    pieces = _LABEL_MARK.split(text)
    if len(pieces) == 1:
        return _instances([None], pieces, truncated)
    blocks = pieces[1:]
    return _instances([_output_first_pair(block) for block in blocks], blocks, truncated)


# ---------------------------------------------------------------------------------------------
# Task-level rules

MAX_INSTANCES_PER_TASK = 5


def select_task_instances(
    instances: list[ParsedInstance],
) -> tuple[list[ParsedInstance], str | None]:
    """Apply the task-level rules to parsed instances.

    Returns the instances with their final drop reasons, and a task-level reason when the whole
    task must go (two instances with the same non-empty input and different outputs).
    Exact duplicates are dropped; at most five are kept, the first five in the model's order.
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
