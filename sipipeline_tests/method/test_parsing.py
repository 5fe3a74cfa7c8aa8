import pytest

from sipipeline.method import parsing
from sipipeline.method.parsing import ParsedInstance, instruction_rejection

# A continuation as a base model writes it after the prompt's final "9.".
REAL_LOOKING = (
    " Give three tips for keeping a sourdough starter alive in summer.\n"
    "10. Draw a picture of your favourite animal.\n"
    "11.  Write a program that sorts a list of numbers.\n"
    "12. Hi there.\n"
    "13. Explain   the difference between weather\n and climate to a ten-year-old.\n"
    "14. \"Quote\" the first line of a famous poem and explain its meaning.\n"
    "15. Écris un poème sur la mer et les bateaux."
)


def test_a_numbered_continuation_splits_into_items_with_reasons():
    parsed = parsing.parse_generated_instructions(REAL_LOOKING, "stop")
    assert [(p.position, p.reject_reason) for p in parsed] == [
        (0, None),
        (1, "blacklisted_word"),
        (2, "starts_with_write_a_program"),
        (3, "too_short"),
        (4, None),
        (5, "starts_with_punctuation"),
        (6, "starts_with_non_ascii"),
    ]
    assert parsed[4].instruction == (
        "Explain the difference between weather and climate to a ten-year-old.")


def test_a_truncated_response_loses_only_its_last_item():
    text = " Name five rivers in South America and their lengths.\n10. Describe how a bill"
    parsed = parsing.parse_generated_instructions(text, "length")
    assert [p.reject_reason for p in parsed] == [None, "truncated"]
    assert parsing.parse_generated_instructions(text, "stop")[1].reject_reason is None


def test_an_empty_response_is_recorded_as_unparseable_not_a_crash():
    parsed = parsing.parse_generated_instructions("   \n\n ", "stop")
    assert [p.reject_reason for p in parsed] == ["unparseable"]


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("Tell me a joke", None),
        ("Say hi now", "too_short"),
        ("word " * 151, "too_long"),
        ("Write " + "word " * 149, None),
        ("Summarise this FILE in two sentences.", "blacklisted_word"),
        ("Plan how to go to the airport by bus.", "blacklisted_word"),
        ("Explain a mapping between two sets.", None),  # whole words only
        ("Describe the graphical user interface.", None),
        ("Write a program to add two numbers.", "starts_with_write_a_program"),
        ("(Optional) Describe your ideal weekend.", "starts_with_punctuation"),
        ("¿Cómo estás hoy, amigo mío?", "starts_with_non_ascii"),
    ],
)
def test_heuristic_filters(instruction, reason):
    assert instruction_rejection(instruction.strip()) == reason


def test_classification_answers():
    assert parsing.parse_classification_answer(" Yes")
    assert parsing.parse_classification_answer("yes.")
    assert not parsing.parse_classification_answer(" No")
    assert not parsing.parse_classification_answer("")


def test_input_first_examples_and_bare_output():
    text = ("Example 1\nInput: Paragraph: Paris is in France.\nOutput: France\n\n"
            "Example 2\nInput: Rome is in Italy.\nOutput: Italy\n\n")
    assert parsing.parse_input_first(text, "stop") == [
        ParsedInstance("Paragraph: Paris is in France.", "France", None),
        ParsedInstance("Rome is in Italy.", "Italy", None),
    ]
    assert parsing.parse_input_first("Output: Eat oats, eggs and fruit.\n", "stop") == [
        ParsedInstance("", "Eat oats, eggs and fruit.", None)]


def test_input_first_drop_rules():
    text = ("Example 1\nInput: same\nOutput: same\n\n"
            "Example 2\nInput: Question:\nOutput: yes\n\n"
            "Example 3\nInput: x\nOutput:\n\n"
            "Example 4\nInput: y\nOutput: the answer is")
    reasons = [p.drop_reason for p in parsing.parse_input_first(text, "length")]
    assert reasons == ["input_equals_output", "ends_with_colon", "empty_output", "truncated"]


def test_output_first_labels_and_inputs():
    text = ("Class label: Positive\nInput: I loved it.\n\n"
            "Class label: Negative\nSentence: I hated it.\n")
    parsed = parsing.parse_output_first(text, "stop")
    assert [(p.input, p.output) for p in parsed] == [
        ("I loved it.", "Positive"), ("Sentence: I hated it.", "Negative")]
    assert parsing.parse_output_first("nonsense", "stop")[0].drop_reason == "empty_output"


def test_task_rules_conflicts_duplicates_and_limit():
    conflicting = [ParsedInstance("a", "1", None), ParsedInstance("a", "2", None)]
    _, reason = parsing.select_task_instances(conflicting)
    assert reason == "conflicting_outputs"
    # Empty inputs with different outputs are not a conflict.
    _, reason = parsing.select_task_instances(
        [ParsedInstance("", "1", None), ParsedInstance("", "2", None)])
    assert reason is None
    many = [ParsedInstance(f"in{i}", f"out{i}", None) for i in range(7)]
    many.insert(1, ParsedInstance("in0", "out0", None))
    selected, reason = parsing.select_task_instances(many)
    assert reason is None
    assert [p.drop_reason for p in selected] == [
        None, "duplicate", None, None, None, None, "over_limit", "over_limit"]
    _, reason = parsing.select_task_instances([ParsedInstance("x", "", "empty_output")])
    assert reason == "no_valid_instance"
