"""The chat parsers on real-looking chat answers, one shape per case."""

import json

import pytest

from sipipeline.method.chat_parsing import (
    parse_chat_classification,
    parse_chat_input_first,
    parse_chat_instructions,
    parse_chat_output_first,
    strip_emphasis,
    strip_thinking,
)
from sipipeline.method.vocabulary import DropReason, LabelProblem, ParsedAs, RejectReason


def _accepted(text: str, finish: str = "stop", structured: bool = False) -> list[str]:
    records, _ = parse_chat_instructions(text, finish, structured)
    return [r.instruction for r in records if r.reject_reason is None]


def test_a_preamble_is_never_an_instruction_and_the_list_is_read_past_the_blank_line():
    # The case: the completion prompt's blank-line stop cut the answer here.
    text = ("Sure! Here are some more tasks:\n\n"
            "9. Suggest a name for a cafe that also sells books.\n"
            "10. Explain the difference between weather and climate.\n")
    records, parsed_as = parse_chat_instructions(text, "stop")
    assert [r.instruction for r in records] == [
        "Suggest a name for a cafe that also sells books.",
        "Explain the difference between weather and climate."]
    assert [r.position for r in records] == [0, 1]
    assert parsed_as == ParsedAs.CHAT_TEXT


def test_numbering_that_restarts_bullets_bold_headings_and_a_closing_remark():
    text = ("## New tasks\n\n"
            "1. **Summarize** the main argument of an opinion piece.\n\n"
            "2. __Translate__ a short greeting into Spanish and German.\n\n"
            "### More\n"
            "1. Task 11: List three causes of the French Revolution.\n"
            "- *Rewrite the sentence in the passive voice.*\n"
            "* \"Give two synonyms for the word happy.\"\n\n"
            "I hope these tasks are useful for your dataset!")
    assert _accepted(text) == [
        "Summarize the main argument of an opinion piece.",
        "Translate a short greeting into Spanish and German.",
        "List three causes of the French Revolution.",
        "Rewrite the sentence in the passive voice.",
        "Give two synonyms for the word happy.",
    ]


def test_a_nested_list_and_a_wrapped_line_stay_in_their_item():
    text = ("9. Plan a three-day trip to a city of your choice:\n"
            "   1. pick the city\n"
            "   2. list the sights\n"
            "10. Describe the water cycle\n"
            "in four sentences.")
    assert _accepted(text) == [
        "Plan a three-day trip to a city of your choice: 1. pick the city 2. list the sights",
        "Describe the water cycle in four sentences."]


def test_code_fences_and_think_blocks_are_removed():
    text = ("<think>The user wants tasks. Let me list some.</think>\n"
            "```markdown\n1. Compose a limerick about a forgetful cat.\n"
            "2. Explain how a bill becomes a law.\n```")
    assert _accepted(text) == ["Compose a limerick about a forgetful cat.",
                               "Explain how a bill becomes a law."]


def test_a_cut_answer_loses_only_its_last_item_and_a_finished_one_nothing():
    text = "1. Name three planets of the solar system.\n2. Explain why leaves change"
    records, _ = parse_chat_instructions(text, "length")
    assert [r.reject_reason for r in records] == [None, RejectReason.TRUNCATED]
    records, _ = parse_chat_instructions(text + " colour.\n\nLet me know if you need more!",
                                         "length")
    assert [r.reject_reason for r in records] == [None, None]


def test_what_cannot_be_read_is_recorded_with_its_reason():
    records, _ = parse_chat_instructions("I'm sorry, I can't help with that.", "stop")
    assert [(r.instruction, r.reject_reason) for r in records] == [
        ("I'm sorry, I can't help with that.", RejectReason.UNPARSEABLE)]
    records, _ = parse_chat_instructions("<think>First I need to think about", "length")
    assert [r.reject_reason for r in records] == [RejectReason.UNFINISHED_THINKING]
    records, _ = parse_chat_instructions("", "stop")
    assert [r.reject_reason for r in records] == [RejectReason.UNPARSEABLE]


def test_structured_answers_and_the_text_fallback():
    answer = json.dumps({"tasks": ["Describe a sunset to someone who cannot see.",
                                   "Say hi."]})
    records, parsed_as = parse_chat_instructions(answer, "stop", structured=True)
    assert parsed_as == ParsedAs.CHAT_JSON
    assert [r.reject_reason for r in records] == [None, RejectReason.TOO_SHORT]
    fenced = f"```json\n{answer}\n```"
    assert parse_chat_instructions(fenced, "stop", structured=True)[1] == ParsedAs.CHAT_JSON
    text = "1. Outline the plot of a well-known fairy tale."
    records, parsed_as = parse_chat_instructions(text, "stop", structured=True)
    assert parsed_as == ParsedAs.CHAT_TEXT
    assert [r.instruction for r in records] == ["Outline the plot of a well-known fairy tale."]
    cut = '{"tasks": ["Describe a sunset to someone who', "length"
    records, parsed_as = parse_chat_instructions(*cut, structured=True)
    assert parsed_as == ParsedAs.CHAT_TEXT
    assert [r.reject_reason for r in records] == [RejectReason.UNPARSEABLE]


@pytest.mark.parametrize(("answer", "expected"), [
    ("Yes", True), ("No", False), ("yes.", True), ("**Yes**", True), ("No, it is not.", False),
    ("Answer: Yes", True), ("# No", False), ("<think>Labels are finite.</think>\nYes", True),
    ("  NO!", False), ('{"is_classification": true}', None),
])
def test_classification_answers(answer, expected):
    label = parse_chat_classification(answer)
    if expected is None:
        assert label.problem == LabelProblem.UNPARSEABLE and label.is_classification is None
    else:
        assert (label.is_classification, label.problem) == (expected, None)


def test_classification_answers_that_cannot_be_read_are_not_guessed():
    assert parse_chat_classification("It depends on the labels.").problem == (
        LabelProblem.UNPARSEABLE)
    assert parse_chat_classification("Yesterday").problem == LabelProblem.UNPARSEABLE
    assert parse_chat_classification("").problem == LabelProblem.UNPARSEABLE
    assert parse_chat_classification("<think>Hmm, is it").problem == (
        LabelProblem.UNFINISHED_THINKING)
    structured = parse_chat_classification('{"is_classification": false}', structured=True)
    assert (structured.is_classification, structured.parsed_as) == (False, ParsedAs.CHAT_JSON)


def _pairs(parsed):
    return [(i.input, i.output, i.drop_reason) for i in parsed[0]]


def test_input_first_with_markdown_preamble_and_closing_remark():
    text = ("Here are some examples for this task:\n\n"
            "**Example 1**\n**Input:** 12 + 30\n**Output:** 42\n\n"
            "### Example 2:\n- Input: 7 * 6\n- Output: 42\n\n"
            "Example 3\nInput 3: 1 + 1\nOutput 3: `2`\n\n"
            "I hope these examples help!")
    assert _pairs(parse_chat_input_first(text, "stop")) == [
        ("12 + 30", "42", None), ("7 * 6", "42", None), ("1 + 1", "`2`", None)]


def test_input_first_without_input_multiline_output_and_fences():
    text = ("```\nOutput: Roses are red,\nviolets are blue.\n```")
    assert _pairs(parse_chat_input_first(text, "stop")) == [
        ("", "Roses are red,\nviolets are blue.", None)]
    code = ("Input: a list of numbers\nOutput:\n```python\nprint(sum(numbers))\n```")
    assert _pairs(parse_chat_input_first(code, "stop")) == [
        ("a list of numbers", "```python\nprint(sum(numbers))\n```", None)]


def test_input_first_problems_are_recorded():
    assert _pairs(parse_chat_input_first("The answer is 42.", "stop")) == [
        ("", "The answer is 42.", DropReason.MISSING_FIELD_MARKER)]
    assert _pairs(parse_chat_input_first("Input: hello\n\nInput: bye\nOutput: ciao", "stop")) \
        == [("", "hello", DropReason.MISSING_FIELD_MARKER), ("bye", "ciao", None)]
    cut = "Input: 2 + 2\nOutput: 4\nInput: 3 + 3\nOutput: 6 and"
    assert [i.drop_reason for i in parse_chat_input_first(cut, "length")[0]] == [
        None, DropReason.TRUNCATED]
    assert _pairs(parse_chat_input_first("<think>Let me", "length")) == [
        ("", "", DropReason.UNFINISHED_THINKING)]
    assert parse_chat_input_first("", "stop")[0] == []
    assert _pairs(parse_chat_input_first("Input: same\nOutput: same", "stop")) == [
        ("same", "same", DropReason.INPUT_EQUALS_OUTPUT)]


def test_output_first_labels_and_inputs():
    text = ("Sure!\n\n1. **Class label:** Positive\n   **Input:** I loved every minute.\n"
            "2. **Class label:** Negative\n   **Input:** It broke after a day.\n"
            "Class label: Neutral")
    assert _pairs(parse_chat_output_first(text, "stop")) == [
        ("I loved every minute.", "Positive", None), ("It broke after a day.", "Negative", None),
        ("", "Neutral", None)]
    stray = "Input: a sentence without a label"
    assert _pairs(parse_chat_output_first(stray, "stop")) == [
        ("", "a sentence without a label", DropReason.MISSING_FIELD_MARKER)]


def test_structured_instances_and_their_fallback():
    answer = json.dumps({"instances": [{"input": "2 + 2", "output": "4"},
                                       {"input": "x", "output": ""}]})
    parsed = parse_chat_input_first(answer, "stop", structured=True)
    assert parsed[1] == ParsedAs.CHAT_JSON
    assert _pairs(parsed) == [("2 + 2", "4", None), ("x", "", DropReason.EMPTY_OUTPUT)]
    labels = json.dumps({"instances": [{"class_label": "Spam", "input": "WIN $$$ now"}]})
    assert _pairs(parse_chat_output_first(labels, "stop", structured=True)) == [
        ("WIN $$$ now", "Spam", None)]
    wrong_shape = json.dumps({"instances": [{"text": "hello"}]})
    parsed = parse_chat_input_first(wrong_shape, "stop", structured=True)
    assert parsed[1] == ParsedAs.CHAT_TEXT
    assert [i.drop_reason for i in parsed[0]] == [DropReason.MISSING_FIELD_MARKER]


def test_helpers_keep_what_is_not_markup():
    assert strip_emphasis("Compute 2*3*4 in snake_case_name") == "Compute 2*3*4 in snake_case_name"
    assert strip_emphasis("**bold** and *italic* and _also_") == "bold and italic and also"
    assert strip_thinking("</think>Yes").text == "Yes"
    assert strip_thinking("<THINK>a</THINK> b <think>c").unfinished


def test_a_last_output_paragraph_is_kept_unless_it_speaks_about_the_answer():
    advice = ("Input: exam stress\nOutput: Sleep well the night before.\n\n"
              "If you feel stressed, take a short walk.")
    assert _pairs(parse_chat_input_first(advice, "stop")) == [
        ("exam stress", "Sleep well the night before.\n\nIf you feel stressed, take a short "
                        "walk.", None)]
    remark = "Output: 42\n\nWould you like me to write more examples?"
    assert _pairs(parse_chat_input_first(remark, "length")) == [("", "42", None)]
