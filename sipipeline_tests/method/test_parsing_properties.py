"""Properties of the parsers over arbitrary and model-shaped text (hypothesis)."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipipeline.method import parsing

# Pieces of the texts models write after sipipeline's prompts, glued in any order.
FRAGMENTS = [
    "Example 1", "Example  2", "Example 3:", "Input:", "Input 2:", "Output:", "Output 1 :",
    "Class label:", "Class label: Positive", "User Input: hello there", "10.", "11)", "12 .",
    "16.", "16)", "160 people", "3.5 cups", "9.", "1.", "2024.", " ", "  ", "\n", "\n\n", ":",
    "Yes", "No", "Write a program", "the answer is 42", "Describe how bees make honey",
    "Name five rivers in South America", "Task:", "\t", "-", "é", "",
]
model_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=40,
).map("".join)
any_text = st.one_of(model_text, st.text())
finish = st.sampled_from(["stop", "length"])
first_number = st.one_of(st.none(), st.integers(min_value=1, max_value=20))

ITEM_NUMBER_PREFIX = re.compile(r"^\s*\d+\s*[.)](\s|$)")
ANY_MARKER = re.compile(r"Input\s*\d*\s*:|Output\s*\d*\s*:|Class label\s*:")
NOT_INPUT_MARKER = re.compile(r"Output\s*\d*\s*:|Class label\s*:")
LINE_START_INPUT = re.compile(r"(?m)^\s*Input\s*\d*\s*:")

PROPERTY_SETTINGS = settings(max_examples=400, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(any_text, finish, first_number)
def test_instruction_parsing_never_raises_and_keeps_clean_items(text, finish_reason, number):
    parsed = parsing.parse_generated_instructions(text, finish_reason, number)
    assert parsed  # every response leaves a record, if only an `unparseable` one
    for item in parsed:
        assert not ITEM_NUMBER_PREFIX.match(item.instruction), item
        if item.reject_reason is None:
            assert item.instruction and item.instruction == item.instruction.strip()
            assert not re.match(r"(Input|Output)\s*\d*\s*:|Class label\s*:", item.instruction)


@PROPERTY_SETTINGS
@given(any_text, first_number)
def test_the_token_limit_costs_at_most_the_last_instruction(text, number):
    complete = parsing.parse_generated_instructions(text, "stop", number)
    cut = parsing.parse_generated_instructions(text, "length", number)
    assert [(p.position, p.instruction) for p in cut] == [
        (p.position, p.instruction) for p in complete]
    differing = [i for i, (a, b) in enumerate(zip(complete, cut, strict=True))
                 if a.reject_reason != b.reject_reason]
    assert differing in ([], [len(cut) - 1])
    assert all(cut[i].reject_reason == "truncated" for i in differing)


def _assert_clean_kept_instances(instances):
    for instance in instances:
        if instance.drop_reason is not None:
            continue
        assert instance.output and instance.output == instance.output.strip(), instance
        assert not ANY_MARKER.search(instance.output), instance
        assert not NOT_INPUT_MARKER.search(instance.input), instance
        assert not LINE_START_INPUT.search(instance.input), instance
        assert instance.input == instance.input.strip(), instance


@PROPERTY_SETTINGS
@given(any_text, finish)
def test_instance_parsing_never_raises_and_keeps_clean_instances(text, finish_reason):
    for parse in (parsing.parse_input_first, parsing.parse_output_first):
        instances = parse(text, finish_reason)
        _assert_clean_kept_instances(instances)
        selected, _ = parsing.select_task_instances(instances)
        _assert_clean_kept_instances(selected)
        assert sum(i.drop_reason is None for i in selected) <= parsing.MAX_INSTANCES_PER_TASK


@PROPERTY_SETTINGS
@given(any_text)
def test_the_token_limit_costs_at_most_the_last_instance(text):
    for parse in (parsing.parse_input_first, parsing.parse_output_first):
        complete, cut = parse(text, "stop"), parse(text, "length")
        assert [(p.input, p.output) for p in cut] == [(p.input, p.output) for p in complete]
        differing = [i for i, (a, b) in enumerate(zip(complete, cut, strict=True))
                     if a.drop_reason != b.drop_reason]
        assert differing in ([], [len(cut) - 1])


@PROPERTY_SETTINGS
@given(any_text)
def test_classification_answers_never_raise_and_yes_needs_the_bare_word(text):
    if parsing.parse_classification_answer(text):
        first_line = text.split("\n", 1)[0]  # the request stops at a newline
        assert re.match(r"\s*yes\b", first_line, re.IGNORECASE)
        assert not re.search(r"\w", first_line.strip()[3:])
