"""Read chat models' answers: the shapes they write around the content the method needs.

A chat model does not continue the prompt: it answers. Before reading fields and list items
the parsers remove what answers carry around them: `<think>…</think>` reasoning, a code fence
around the whole answer, Markdown headings and emphasis, bullets and numbers (which restart
at 1 or follow any scheme), preambles ("Sure! Here are seven more tasks:") and closing remarks.
What still cannot be read is recorded with its reason, never guessed. In structured mode the
answer is first read as the stage's JSON object; when it is not one, the text parser reads it,
and each result says which parser it came from (`ParsedAs`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sipipeline.method.parsing import (
    ParsedInstance,
    ParsedInstruction,
    instance_drop_reason,
    instruction_rejection,
)
from sipipeline.method.vocabulary import (
    DropReason,
    LabelProblem,
    ParsedAs,
    RejectReason,
    collapse_whitespace,
)

# ---------------------------------------------------------------------------------------------
# The wrapping every stage removes

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*$")
_WHOLE_FENCE = re.compile(r"^\s*(```|~~~)[^\n]*\n(?P<body>.*?)\n?[ \t]*\1[ \t]*\s*$", re.DOTALL)
_FENCED_BLOCK = re.compile(r"(?m)^[ \t]*(```|~~~)[^\n]*\n(?P<body>.*?)\n?^[ \t]*\1[ \t]*$",
                           re.DOTALL)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(?P<title>.*?)[ \t#]*$")
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STAR_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Unwrapped:
    """An answer without its reasoning; `unfinished` when a `<think>` block never closed."""

    text: str
    unfinished: bool


def strip_thinking(text: str) -> Unwrapped:
    """Remove `<think>…</think>` blocks; a lone `</think>` ends reasoning whose start the server
    already removed. An opened block that never closes leaves only the text before it."""
    text = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opened = _THINK_OPEN.search(text)
    if opened is not None:
        return Unwrapped(text[:opened.start()].strip(), True)
    return Unwrapped(text.strip(), False)


def unwrap_fence(text: str) -> str:
    """The body of a code fence that wraps the whole answer; other text as it is."""
    match = _WHOLE_FENCE.match(text)
    return match.group("body") if match else text


def only_fenced_block(text: str, holds_content: Callable[[str], bool]) -> tuple[str, bool]:
    """The body of the answer's one code fence when the content is inside it and the text
    around it is not content (a preamble, a closing remark); otherwise `text` unchanged.
    True when the fence was taken and text follows it (the answer went on past the content).
    """
    blocks = list(_FENCED_BLOCK.finditer(text))
    if len(blocks) != 1:
        return text, False
    block = blocks[0]
    outside = text[:block.start()] + "\n" + text[block.end():]
    if holds_content(block.group("body")) and not holds_content(outside):
        return block.group("body"), bool(text[block.end():].strip())
    return text, False


def strip_emphasis(text: str) -> str:
    """Markdown bold and italics removed, their words kept ("2*3*4" and snake_case stay)."""
    for pattern in (_STRONG, _STAR_EMPHASIS, _UNDERSCORE_EMPHASIS):
        text = pattern.sub(lambda match: match.group(match.lastindex or 1), text)
    return text


_QUOTES = {'"': '"', "'": "'", "“": "”", "`": "`"}


def _unquote(text: str) -> str:
    """Text wrapped whole in one pair of quotes, without them."""
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text[0] not in text[1:-1]:
        return text[1:-1].strip()
    return text


#: Opening words of a closing remark after the content ("I hope these help!"): phrases that
#: speak about the answer or the conversation, not ones an output could start with.
_CLOSING = re.compile(
    r"^(?:i hope (?:this|these|that|you)|hope (?:this|these|that) helps?|let me know|"
    r"feel free to|these (?:examples|instances|inputs|outputs) (?:should|show|cover|illustrate)|"
    r"note: (?:these|this|the examples)|please note that (?:these|this|the examples)|"
    r"(?:i can|i'd be happy to|i would be happy to) (?:provide|give|write|generate) more|"
    r"would you like (?:me to|more))", re.IGNORECASE)


def _drop_closing_remarks(text: str) -> tuple[str, bool]:
    """`text` without trailing paragraphs that are closing remarks; True if one was removed."""
    removed = False
    while True:
        paragraphs = _BLANK_LINE.split(text)
        if len(paragraphs) < 2 or not _CLOSING.match(strip_emphasis(paragraphs[-1]).strip()):
            return text, removed
        cut = list(_BLANK_LINE.finditer(text))[-1].start()
        text, removed = text[:cut], True


_JSON_START = re.compile(r"^\s*\{")


def _json_object(text: str) -> dict[str, Any] | None:
    """The answer as a JSON object (a fence around it, with text around the fence, allowed)."""
    try:
        value = json.loads(only_fenced_block(unwrap_fence(text.strip()),
                                             lambda part: bool(_JSON_START.match(part)))[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------
# Instructions

_ITEM_START = re.compile(
    r"^(?P<indent>[ \t]*)(?:\d+[ \t]*[.):]|[-*+•‣◦]|\(\d+\))[ \t]+(?P<rest>\S.*)$")
_LABELLED_ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?:new[ \t]+)?(?:task|instruction)[ \t]*\d+[ \t]*[:.)][ \t]*"
    r"(?P<rest>\S.*)$", re.IGNORECASE)
_ITEM_LABEL = re.compile(r"^(?:new\s+)?(?:task|instruction)(?:\s*\d+)?\s*[:.)-]\s+",
                         re.IGNORECASE)


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _list_items(text: str) -> tuple[list[str], bool]:
    """The top-level list items of an answer, and whether text follows the last one.

    An item starts at a numbered or bulleted line (any numbers, restarting or not, "**9.**",
    "Task 9:"); lines right after it, and lines indented deeper after a blank line (a nested
    list), continue it. Other text - a preamble, a heading, a closing remark - is not an item.
    """
    items: list[list[str]] = []
    current: list[str] | None = None
    current_indent = 0
    after_blank = False
    text_after_last = False
    for raw_line in text.split("\n"):
        if _FENCE_LINE.match(raw_line):
            continue
        if not raw_line.strip() or _RULE.match(raw_line):
            after_blank = True
            continue
        line = strip_emphasis(raw_line)
        start = _ITEM_START.match(line) or _LABELLED_ITEM.match(line)
        if _HEADING.match(line):
            current, text_after_last = None, bool(items)
        elif start and (current is None or _indent(line) <= current_indent):
            current = [start.group("rest")]
            current_indent = _indent(line)
            items.append(current)
            text_after_last = False
        elif current is not None and (not after_blank or _indent(line) > current_indent):
            current.append(line.strip())
        else:
            current, text_after_last = None, bool(items)
        after_blank = False
    return [" ".join(item) for item in items], text_after_last


def _clean_item(item: str) -> str:
    return _unquote(_ITEM_LABEL.sub("", collapse_whitespace(item)))


def _instruction_records(items: list[str], truncated_last: bool) -> list[ParsedInstruction]:
    parsed = []
    for item in (_clean_item(item) for item in items):
        if item:
            parsed.append(ParsedInstruction(len(parsed), item, None))
    result = []
    for index, record in enumerate(parsed):
        if truncated_last and index == len(parsed) - 1:
            reason: str | None = RejectReason.TRUNCATED
        else:
            reason = instruction_rejection(record.instruction)
        result.append(ParsedInstruction(record.position, record.instruction, reason))
    return result


def parse_chat_instructions(text: str, finish_reason: str, structured: bool = False
                            ) -> tuple[list[ParsedInstruction], ParsedAs]:
    """New instructions from a chat answer, numbered 0, 1, … in the answer's order.

    Structured: the `tasks` list of a JSON answer, else the text parser. Text: the answer's
    top-level list items. A token-limit cut costs only the last item, and only when nothing
    followed it. An answer with no item is one `unparseable` record (an unfinished `<think>`
    block: `unfinished_thinking`), so the funnel counts it.
    """
    answer = strip_thinking(text)
    if structured and not answer.unfinished:
        value = _json_object(answer.text)
        tasks = value.get("tasks") if value is not None else None
        if isinstance(tasks, list) and all(isinstance(task, str) for task in tasks):
            records = _instruction_records(tasks, truncated_last=False)
            if records:
                return records, ParsedAs.CHAT_JSON
    if answer.unfinished and not answer.text:
        return [ParsedInstruction(0, "", RejectReason.UNFINISHED_THINKING)], ParsedAs.CHAT_TEXT
    items, text_after = _list_items(answer.text)
    truncated = (finish_reason == "length" or answer.unfinished) and not text_after
    records = _instruction_records(items, truncated)
    if not records:
        reason = (RejectReason.UNFINISHED_THINKING if answer.unfinished
                  else RejectReason.UNPARSEABLE)
        records = [ParsedInstruction(0, collapse_whitespace(answer.text), reason)]
    return records, ParsedAs.CHAT_TEXT


# ---------------------------------------------------------------------------------------------
# Classification answers

_ANSWER_LABEL = re.compile(
    r"^\s*(?:answer|classification(?: task)?|is it a classification task\??)\s*[:\-]?\s*",
    re.IGNORECASE)
_YES_OR_NO = re.compile(r"^[^\w]*(yes|no)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ChatLabel:
    """A classification answer: the label, or None and the problem when it cannot be read."""

    is_classification: bool | None
    problem: LabelProblem | None
    parsed_as: ParsedAs


def parse_chat_classification(text: str, structured: bool = False) -> ChatLabel:
    """Yes or No, read from the answer's first words after Markdown and labels ("Answer:").

    Anything else ("It depends", an empty answer) is `unparseable`: no label is guessed.
    """
    answer = strip_thinking(text)
    if structured and not answer.unfinished:
        value = _json_object(answer.text)
        label = value.get("is_classification") if value is not None else None
        if isinstance(label, bool):
            return ChatLabel(label, None, ParsedAs.CHAT_JSON)
    if answer.unfinished and not answer.text:
        return ChatLabel(None, LabelProblem.UNFINISHED_THINKING, ParsedAs.CHAT_TEXT)
    for line in unwrap_fence(answer.text).split("\n"):
        heading = _HEADING.match(line)
        line = strip_emphasis(heading.group("title") if heading else line).strip()
        if not line:
            continue
        match = _YES_OR_NO.match(_ANSWER_LABEL.sub("", line, count=1))
        if match is not None:
            return ChatLabel(match.group(1).lower() == "yes", None, ParsedAs.CHAT_TEXT)
        break
    return ChatLabel(None, LabelProblem.UNPARSEABLE, ParsedAs.CHAT_TEXT)


# ---------------------------------------------------------------------------------------------
# Instances

_MARK_WRAP = r"[*_`]{0,2}"
_EXAMPLE_LINE = re.compile(
    r"^[ \t]*(?:[-*+•][ \t]+)?(?:#{1,6}[ \t]*)?" + _MARK_WRAP + r"[ \t]*Example[ \t]*\d+[ \t]*"
    + _MARK_WRAP + r"[ \t]*[.:)]?[ \t]*" + _MARK_WRAP + r"[ \t]*(?P<rest>.*)$", re.IGNORECASE)
_FIELD_LINE = re.compile(
    r"^[ \t]*(?:[-*+•][ \t]+|\d+[.)][ \t]+)?(?:#{1,6}[ \t]*)?" + _MARK_WRAP + r"[ \t]*"
    r"(?P<name>input|output|class[ \t]+label|label)(?:[ \t]*\d+)?[ \t]*"
    r"(?::" + _MARK_WRAP + r"|" + _MARK_WRAP + r"[ \t]*:)[ \t]*(?P<rest>.*)$",
    re.IGNORECASE)


def _has_field(text: str) -> bool:
    """True when a line of `text` is an example heading or a field marker."""
    return any(_EXAMPLE_LINE.match(line) or _FIELD_LINE.match(line)
               for line in text.split("\n"))

#: An `Output:` marker inside an input's line ("Input: 3 + 4 Output: 7").
_INLINE_OUTPUT = re.compile(r"\s" + _MARK_WRAP + r"Output" + _MARK_WRAP + r"\s*:" + _MARK_WRAP
                            + r"\s*")

INPUT, OUTPUT, LABEL, EXAMPLE = "input", "output", "label", "example"


def _field_kind(name: str) -> str:
    name = name.lower()
    return INPUT if name == "input" else OUTPUT if name == "output" else LABEL


def _fields(text: str) -> list[tuple[str, str]]:
    """(kind, value) of each field an answer writes, in order; text before the first is
    a preamble and dropped. `Example k` lines are boundaries (kind `example`, no value)."""
    fields: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        example = _EXAMPLE_LINE.match(line)
        if example is not None:
            fields.append((EXAMPLE, []))
            line = example.group("rest")
            if not line.strip():
                continue
        field = _FIELD_LINE.match(line)
        if field is not None:
            fields.append((_field_kind(field.group("name")), [field.group("rest")]))
        elif fields and fields[-1][0] != EXAMPLE:
            fields[-1][1].append(line)
    result: list[tuple[str, str]] = []
    for kind, lines in fields:
        value = "\n".join(lines)
        if kind == INPUT:
            inline = _INLINE_OUTPUT.search(" " + value)
            if inline is not None:
                result.append((INPUT, value[:max(0, inline.start() - 1)]))
                kind, value = OUTPUT, (" " + value)[inline.end():]
        result.append((kind, value))
    return result


def _clean_value(value: str) -> str:
    """A field's text: whitespace at the ends and emphasis wrapping the whole of it removed."""
    value = value.strip()
    whole = _STRONG.fullmatch(value) or _STAR_EMPHASIS.fullmatch(value)
    return (whole.group(whole.lastindex or 1) if whole else value).strip()


#: A pair of field values, or the bare text of a field that needed a partner it lacks.
Pair = tuple[str, str] | str


def _input_output_pairs(fields: list[tuple[str, str]]) -> list[Pair]:
    """(input, output) pairs: an `Output:` answers the `Input:` before it, or none (a task
    without input). An `Input:` that no `Output:` follows is returned as its bare text."""
    pairs: list[Pair] = []
    pending: str | None = None
    for kind, value in fields:
        if kind == OUTPUT:
            pairs.append((pending or "", value))
            pending = None
            continue
        if pending is not None:  # another input, a label or an example boundary ends it
            pairs.append(pending)
        pending = value if kind == INPUT else None
    if pending is not None:
        pairs.append(pending)
    return pairs


def _label_input_pairs(fields: list[tuple[str, str]]) -> list[Pair]:
    """(input, label) pairs: an `Input:` belongs to the `Class label:` before it; a label
    without one has no input (as in the completion parser). An `Input:` with no label before
    it is returned as its bare text."""
    pairs: list[Pair] = []
    label: str | None = None
    for kind, value in fields:
        if kind == INPUT:
            pairs.append((value, label) if label is not None else value)
            label = None
            continue
        if label is not None:
            pairs.append(("", label))
        label = value if kind == LABEL else None
    if label is not None:
        pairs.append(("", label))
    return pairs


def _chat_instances(text: str, finish_reason: str, output_first: bool) -> list[ParsedInstance]:
    answer = strip_thinking(text)
    if answer.unfinished and not answer.text:
        return [ParsedInstance("", "", DropReason.UNFINISHED_THINKING)]
    body, text_after_fence = only_fenced_block(unwrap_fence(answer.text), _has_field)
    body, closed = _drop_closing_remarks(body)
    closed = closed or text_after_fence
    fields = _fields(body)
    truncated = (finish_reason == "length" or answer.unfinished) and not closed
    wanted = (LABEL, INPUT) if output_first else (INPUT, OUTPUT)
    if not any(kind in wanted for kind, _ in fields):
        if not body.strip():
            return []
        return [ParsedInstance("", collapse_whitespace(body), DropReason.MISSING_FIELD_MARKER)]
    parsed = []
    pairs = _label_input_pairs(fields) if output_first else _input_output_pairs(fields)
    for index, pair in enumerate(pairs):
        if isinstance(pair, str):
            instance = ParsedInstance("", _clean_value(pair), DropReason.MISSING_FIELD_MARKER)
        else:
            task_input, task_output = (_clean_value(value) for value in pair)
            instance = ParsedInstance(task_input, task_output,
                                      instance_drop_reason(task_input, task_output))
        if truncated and index == len(pairs) - 1:
            instance = ParsedInstance(instance.input, instance.output, DropReason.TRUNCATED)
        parsed.append(instance)
    return parsed


def _json_instances(text: str, first: str, second: str, swap: bool
                    ) -> list[ParsedInstance] | None:
    value = _json_object(text)
    records = value.get("instances") if value is not None else None
    if not isinstance(records, list) or not records:
        return None
    parsed = []
    for record in records:
        if not isinstance(record, dict) or not all(
                isinstance(record.get(key), str) for key in (first, second)):
            return None
        first_value, second_value = record[first].strip(), record[second].strip()
        task_input, task_output = ((second_value, first_value) if swap
                                   else (first_value, second_value))
        parsed.append(ParsedInstance(task_input, task_output,
                                     instance_drop_reason(task_input, task_output)))
    return parsed


def _parse_instances(text: str, finish_reason: str, structured: bool, json_keys: tuple[str, str],
                     output_first: bool) -> tuple[list[ParsedInstance], ParsedAs]:
    if structured:
        answer = strip_thinking(text)
        parsed = (None if answer.unfinished
                  else _json_instances(answer.text, *json_keys, swap=output_first))
        if parsed is not None:
            return parsed, ParsedAs.CHAT_JSON
    return _chat_instances(text, finish_reason, output_first), ParsedAs.CHAT_TEXT


def parse_chat_input_first(text: str, finish_reason: str, structured: bool = False
                           ) -> tuple[list[ParsedInstance], ParsedAs]:
    """Input-first instances: `Input:`/`Output:` pairs (an `Output:` alone: no input).

    Markers may be bold, bulleted or headings; `Example k` lines separate examples. An input
    that no output follows is a `missing_field_marker` drop; an answer with no marker at all is
    one. The last instance of an answer cut by the token limit is `truncated`.
    """
    return _parse_instances(text, finish_reason, structured, ("input", "output"),
                            output_first=False)


def parse_chat_output_first(text: str, finish_reason: str, structured: bool = False
                            ) -> tuple[list[ParsedInstance], ParsedAs]:
    """Output-first instances: each `Class label:` and the `Input:` after it (the instance's
    output is the label; a label alone has no input, as in the completion parser). An input
    before any label is a `missing_field_marker` drop."""
    return _parse_instances(text, finish_reason, structured, ("class_label", "input"),
                            output_first=True)
