"""Hypothesis: chat answers in every shape chat models write parse to what they hold.

Each test builds the content first (instructions, instances, a label), then wraps it the way
chat models do - preamble, Markdown headings and emphasis, bullets or numbers that restart,
code fences, `<think>` blocks, closing remarks - and checks the parser recovers exactly that
content. Arbitrary text never makes a parser raise.
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sipipeline.method.chat_parsing import (
    parse_chat_classification,
    parse_chat_input_first,
    parse_chat_instructions,
    parse_chat_output_first,
)
from sipipeline.method.parsing import instruction_rejection
from sipipeline.method.vocabulary import DropReason, LabelProblem, RejectReason

WORDS = ["describe", "the", "history", "of", "tea", "explain", "why", "rivers", "bend", "list",
         "three", "uses", "for", "salt", "compare", "two", "poems", "about", "winter", "name",
         "a", "famous", "bridge", "in", "Europe", "and", "its", "builder", "summarize", "news"]
VERBS = ["Describe", "Explain", "List", "Compare", "Summarize", "Name", "Suggest", "Classify"]

PREAMBLES = ["", "Sure! Here are some more tasks:\n\n", "Here you go:\n", "## New tasks\n\n",
             "Of course. Below are the new instructions.\n\n"]
CLOSINGS = ["", "\n\nI hope these help!", "\n\nLet me know if you need more tasks.",
            "\n\nFeel free to ask for more examples."]
THINKING = ["", "<think>The user wants more. I will write them.</think>\n",
            "<think>\nPlan:\n1. Think\n2. Answer\n</think>\n\n"]

instruction = st.builds(
    lambda verb, rest, end: " ".join([verb, *rest]) + end,
    st.sampled_from(VERBS), st.lists(st.sampled_from(WORDS), min_size=4, max_size=14),
    st.sampled_from([".", "?", ""]))
text_value = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)


def _marker(shape: str, index: int, start: int) -> str:
    number = start + index
    return {"dot": f"{number}. ", "paren": f"{number}) ", "dash": "- ", "star": "* ",
            "bold_number": f"**{number}.** ", "task_label": f"Task {number}: ",
            "bullet": "• "}[shape]


def _emphasise(text: str, how: str) -> str:
    if how == "bold":
        return f"**{text}**"
    if how == "italic":
        return f"*{text}*"
    if how == "bold_first":
        first, _, rest = text.partition(" ")
        return f"**{first}** {rest}"
    if how == "quoted":
        return f'"{text}"'
    return text


@settings(max_examples=300, deadline=None)
@given(items=st.lists(instruction, min_size=1, max_size=8),
       shape=st.sampled_from(["dot", "paren", "dash", "star", "bold_number", "task_label",
                              "bullet"]),
       start=st.sampled_from([1, 9]), emphasis=st.lists(
           st.sampled_from(["", "bold", "italic", "bold_first", "quoted"]), min_size=8,
           max_size=8),
       spacing=st.sampled_from(["\n", "\n\n"]), preamble=st.sampled_from(PREAMBLES),
       closing=st.sampled_from(CLOSINGS), thinking=st.sampled_from(THINKING),
       fenced=st.booleans(), restart_at=st.integers(min_value=0, max_value=8))
def test_list_answers_in_any_shape_yield_exactly_their_instructions(
        items, shape, start, emphasis, spacing, preamble, closing, thinking, fenced,
        restart_at):
    lines = []
    for index, item in enumerate(items):
        number_index = index if index < restart_at else index - restart_at  # restarts at 1
        lines.append(_marker(shape, number_index, start) + _emphasise(item, emphasis[index]))
    body = spacing.join(lines)
    if fenced:
        body = f"```\n{body}\n```"
    answer = f"{thinking}{preamble}{body}{closing}"
    records, _ = parse_chat_instructions(answer, "stop")
    assert [r.instruction for r in records] == items
    assert [r.reject_reason for r in records] == [instruction_rejection(i) for i in items]
    cut, _ = parse_chat_instructions(answer, "length")
    expected_last = RejectReason.TRUNCATED if not closing else instruction_rejection(items[-1])
    assert cut[-1].reject_reason == expected_last


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.one_of(st.just(""), text_value), text_value),
                      min_size=1, max_size=5),
       headings=st.sampled_from(["none", "plain", "bold", "markdown", "colon"]),
       markers=st.sampled_from(["plain", "bold_inside", "bold_outside", "bullet", "numbered"]),
       preamble=st.sampled_from(PREAMBLES), closing=st.sampled_from(CLOSINGS),
       thinking=st.sampled_from(THINKING), fenced=st.booleans())
def test_instance_answers_in_any_shape_yield_exactly_their_pairs(
        pairs, headings, markers, preamble, closing, thinking, fenced):
    def field(name: str, value: str) -> str:
        if markers == "bold_inside":
            return f"**{name}:** {value}"
        if markers == "bold_outside":
            return f"**{name}**: {value}"
        if markers == "bullet":
            return f"- {name}: {value}"
        if markers == "numbered":
            return f"1. {name}: {value}"
        return f"{name}: {value}"

    heading = {"none": "", "plain": "Example {k}\n", "bold": "**Example {k}**\n",
               "markdown": "### Example {k}\n", "colon": "Example {k}:\n"}[headings]
    blocks = []
    for k, (task_input, task_output) in enumerate(pairs, start=1):
        lines = [field("Input", task_input)] if task_input else []
        lines.append(field("Output", task_output))
        blocks.append(heading.format(k=k) + "\n".join(lines))
    body = "\n\n".join(blocks)
    if fenced:
        body = f"```\n{body}\n```"
    answer = f"{thinking}{preamble}{body}{closing}"
    parsed, _ = parse_chat_input_first(answer, "stop")
    assert [(i.input, i.output) for i in parsed] == pairs
    cut, _ = parse_chat_input_first(answer, "length")
    assert (cut[-1].drop_reason == DropReason.TRUNCATED) == (not closing)


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(text_value, text_value), min_size=1, max_size=5),
       bold=st.booleans(), numbered=st.booleans(), preamble=st.sampled_from(PREAMBLES),
       closing=st.sampled_from(CLOSINGS), thinking=st.sampled_from(THINKING))
def test_output_first_answers_in_any_shape_yield_exactly_their_pairs(
        pairs, bold, numbered, preamble, closing, thinking):
    blocks = []
    for k, (label, task_input) in enumerate(pairs, start=1):
        label_mark, input_mark = (("**Class label:**", "**Input:**") if bold
                                  else ("Class label:", "Input:"))
        prefix = f"{k}. " if numbered else ""
        blocks.append(f"{prefix}{label_mark} {label}\n   {input_mark} {task_input}")
    answer = f"{thinking}{preamble}" + "\n\n".join(blocks) + closing
    parsed, _ = parse_chat_output_first(answer, "stop")
    assert [(i.output, i.input) for i in parsed] == pairs


@settings(max_examples=200, deadline=None)
@given(label=st.booleans(), case=st.sampled_from([str.lower, str.upper, str.title]),
       wrap=st.sampled_from(["{}", "**{}**", "{}.", "{}!", "Answer: {}", "# {}",
                             "{}, because the output is one of a few labels.", "*{}*"]),
       thinking=st.sampled_from(THINKING))
def test_yes_or_no_in_any_shape_is_read(label, case, wrap, thinking):
    word = case("yes" if label else "no")
    result = parse_chat_classification(thinking + wrap.format(word))
    assert (result.is_classification, result.problem) == (label, None)


@settings(max_examples=300, deadline=None)
@given(text=st.text(), finish=st.sampled_from(["stop", "length"]), structured=st.booleans())
def test_the_chat_parsers_never_raise_and_keep_nothing_empty(text, finish, structured):
    records, _ = parse_chat_instructions(text, finish, structured)
    assert records
    for record in records:
        if record.reject_reason is None:
            assert record.instruction and record.instruction == record.instruction.strip()
    label = parse_chat_classification(text, structured)
    assert (label.is_classification is None) == (label.problem is not None)
    assert label.problem in (None, *LabelProblem)
    for parse in (parse_chat_input_first, parse_chat_output_first):
        for instance in parse(text, finish, structured)[0]:
            if instance.drop_reason is None:
                assert instance.output


@settings(max_examples=100, deadline=None)
@given(items=st.lists(instruction, min_size=1, max_size=6))
def test_structured_answers_are_read_as_json(items):
    records, parsed_as = parse_chat_instructions(json.dumps({"tasks": items}), "stop", True)
    assert [r.instruction for r in records] == items
    assert parsed_as == "chat_json"
