import pytest

from sipipeline.method import parsing, prompts
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
    assert parsing.parse_output_first("nonsense", "stop")[0].drop_reason == "missing_field_marker"


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


# ------------------------------------------------------------------ instruction lists (issue 11)
def _instructions(text: str, finish: str = "stop", first_number: int | None = 9):
    parsed = parsing.parse_generated_instructions(text, finish, first_number)
    return [(p.instruction, p.reject_reason) for p in parsed]


def test_a_line_starting_with_a_decimal_number_stays_in_its_item():
    text = (" Convert this bread recipe from imperial to metric units.\n"
            "3.5 cups of flour\n"
            "10. Suggest a name for a bakery that sells only sourdough bread.")
    assert _instructions(text) == [
        ("Convert this bread recipe from imperial to metric units. 3.5 cups of flour", None),
        ("Suggest a name for a bakery that sells only sourdough bread.", None)]
    # The same without knowing the prompt's number: "3.5" is never an item number.
    assert _instructions(text, first_number=None) == _instructions(text)


def test_only_the_lists_next_number_starts_an_item():
    text = (" Give a simple recipe for pancakes with the steps numbered:\n"
            "1. Mix flour, milk and eggs\n"
            "2. Fry in a hot pan\n"
            "10. Tell me about the year you were most proud of.\n"
            "2024. was a good year for it, explain why in detail.")
    parsed = parsing.parse_generated_instructions(text, "stop", 9)
    assert [p.position for p in parsed] == [0, 1]
    assert parsed[0].instruction.endswith("1. Mix flour, milk and eggs 2. Fry in a hot pan")
    assert parsed[1].instruction.endswith("2024. was a good year for it, explain why in detail.")


def test_an_empty_item_does_not_swallow_the_next_number():
    text = (" Explain the rules of castling in chess.\n"
            "10. \n"
            "11. Suggest three openings for a beginner in chess.")
    parsed = parsing.parse_generated_instructions(text, "stop", 9)
    assert [(p.position, p.instruction) for p in parsed] == [
        (0, "Explain the rules of castling in chess."),
        (2, "Suggest three openings for a beginner in chess.")]


def test_a_response_cut_right_after_a_fresh_number_keeps_the_complete_item_before_it():
    text = (" Describe the water cycle to a ten-year-old.\n"
            "10. Name five rivers in South America.\n"
            "11. ")
    assert _instructions(text, "length") == [
        ("Describe the water cycle to a ten-year-old.", None),
        ("Name five rivers in South America.", None)]
    # Cut inside item 11: only item 11 goes.
    assert _instructions(text + "Summarise the", "length")[-1] == ("Summarise the", "truncated")
    assert _instructions(text + "Summarise the", "length")[1][1] is None


@pytest.mark.parametrize("separator", [")", " .", "."])
def test_item_numbers_take_the_separators_models_write(separator):
    text = (" List three uses of baking soda at home.\n"
            f"10{separator} Describe how a bill becomes a law in Canada.")
    assert _instructions(text) == [("List three uses of baking soda at home.", None),
                                   ("Describe how a bill becomes a law in Canada.", None)]


def test_a_doubled_item_number_is_not_part_of_the_instruction():
    text = " Explain what a prime number is.\n10. 11. Suggest three openings for chess beginners."
    assert _instructions(text)[1] == ("Suggest three openings for chess beginners.", None)


@pytest.mark.parametrize("opening", ["9. ", "10. ", "\n10. "])
def test_a_numbered_opening_is_read_like_any_other_line(opening):
    # Chat models often repeat the prompt's "9." or start the answer at "10.".
    text = opening + "Explain what a prime number is.\n11. Suggest three openings for chess."
    parsed = parsing.parse_generated_instructions(text, "stop", 9)
    expected = "Explain what a prime number is."
    if opening == "9. ":
        assert [p.instruction for p in parsed] == [
            expected + " 11. Suggest three openings for chess."]
    else:
        assert [(p.position, p.instruction) for p in parsed] == [
            (1, expected), (2, "Suggest three openings for chess.")]


@pytest.mark.parametrize("instruction", [
    "write a program that prints the first ten prime numbers.",
    "WRITE A PROGRAM that prints the first ten prime numbers.",
    "Write a Program that prints the first ten prime numbers.",
])
def test_the_write_a_program_filter_ignores_case(instruction):
    assert instruction_rejection(instruction) == "starts_with_write_a_program"


def test_a_lower_case_instruction_keeps_its_case():
    text = " explain the difference between a virus and a bacterium."
    assert _instructions(text) == [(text.strip(), None)]


# ------------------------------------------------------------------ generation stops
def _stopped(text: str, stops: tuple[str, ...]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


LIST_HEAD = " Describe a sunset.\n10. Name a river.\n15. Name five rivers in South America."


@pytest.mark.parametrize("tail", ["\n16. Foo", "\n16 . Foo", "\n16) Foo", "\n\nTask: Foo"])
def test_stop_sequences_end_the_list_at_item_16_or_a_blank_line(tail):
    stops = prompts.generation_stop_sequences()
    assert len(stops) <= 4  # OpenAI's limit
    assert _stopped(LIST_HEAD + tail, stops) == LIST_HEAD


@pytest.mark.parametrize("tail", ["\n160 people came.", "\n16th century art.", "\n16.5 cups.",
                                  " in 1916. Then more."])
def test_stop_sequences_do_not_stop_at_numbers_that_are_not_item_16(tail):
    assert _stopped(LIST_HEAD + tail, prompts.generation_stop_sequences()) == LIST_HEAD + tail


@pytest.mark.parametrize("tail", ["\n16. Foo bar baz qux", "\n16 . Foo bar baz qux",
                                  "\n16) Foo bar baz qux", "\n16.\n17. Foo bar baz qux",
                                  "\n16: x\n\n17. Foo bar baz qux"])
def test_the_parser_cuts_the_list_at_item_16_when_the_server_ignored_the_stops(tail):
    text = (" Describe a sunset over the sea.\n10. Name five rivers in South America.\n"
            "11. Explain how tides work.\n12. Give three tips for a job interview.\n"
            "13. Write a haiku about autumn leaves.\n14. Describe how bees make honey.\n"
            "15. Compare two sorting algorithms briefly." + tail)
    parsed = parsing.parse_generated_instructions(text, "length", 9)
    assert [p.position for p in parsed] == [0, 1, 2, 3, 4, 5, 6]
    assert all("Foo" not in p.instruction for p in parsed)
    # The list ended before the token limit, so item 15 is complete.
    assert parsed[-1].reject_reason is None


def test_item_16_out_of_sequence_still_ends_the_list_but_160_does_not():
    text = (" Describe a sunset over the sea.\n10. Name five rivers in South America.\n"
            "160 people came to the concert, describe it.\n16th century art, explain it.\n"
            "16. Foo bar baz qux")
    parsed = parsing.parse_generated_instructions(text, "stop", 9)
    assert [p.instruction for p in parsed] == [
        "Describe a sunset over the sea.",
        "Name five rivers in South America. 160 people came to the concert, describe it. "
        "16th century art, explain it."]


def test_a_blank_line_ends_the_list():
    text = (" Describe a sunset over the sea.\n10. Name five rivers.\n\n"
            "11. Explain tides to a child.")
    assert [i for i, _ in _instructions(text, "length")] == [
        "Describe a sunset over the sea.", "Name five rivers."]


# ------------------------------------------------------------------ classification answers
@pytest.mark.parametrize(("answer", "expected"), [
    (" Yes", True), ("Yes.", True), (" yes", True), ("YES!", True), (" Yes \n", True),
    ("yes ...", True), (" Yesterday", False), (" Yess", False), (" Yes, because it has labels",
                                                                  False),
    (" Yes it is", False), (" No", False), (" no.", False), ("", False), (" Maybe yes", False),
    (" Yes\n\nTask: Name a colour.", True), ("\nYes", False),  # only the first line counts
])
def test_yes_is_the_word_yes_with_nothing_but_punctuation_after_it(answer, expected):
    assert parsing.parse_classification_answer(answer) is expected


# ------------------------------------------------------------------ instances
def test_a_second_output_before_any_input_ends_the_output():
    text = "Example 1\nInput: 2 + 2\nOutput: 4\nOutput: four\n\nExample 2\nInput: 3 + 5\nOutput: 8"
    assert parsing.parse_input_first(text, "stop") == [
        ParsedInstance("2 + 2", "4", None), ParsedInstance("3 + 5", "8", None)]


def test_input_is_removed_only_as_the_leading_field_marker():
    text = ("Example 1\nUser Input: hello there\nOutput: Hi! How can I help you today?\n\n"
            "Example 2\nInput: Customer Input: where is my order?\nOutput: Let me check.")
    assert [(p.input, p.output) for p in parsing.parse_input_first(text, "stop")] == [
        ("User Input: hello there", "Hi! How can I help you today?"),
        ("Customer Input: where is my order?", "Let me check.")]


def test_a_fresh_input_field_before_the_output_is_the_one_it_answers():
    text = "Example 1\nInput: 12, 7\nInput: 3, 9\nOutput: 12"
    assert parsing.parse_input_first(text, "stop") == [ParsedInstance("3, 9", "12", None)]


def test_output_first_cut_after_an_empty_class_label_keeps_the_complete_ones():
    text = ("Class label: Positive\nInput: The soup was warm and the staff were lovely.\n\n"
            "Class label: Negative\nInput: We waited an hour for cold food.\n\n"
            "Class label:")
    parsed = parsing.parse_output_first(text, "length")
    assert [(p.output, p.drop_reason) for p in parsed] == [("Positive", None), ("Negative", None)]
    cut = parsing.parse_output_first(text + " Neu", "length")
    assert [p.drop_reason for p in cut] == [None, None, "truncated"]


def test_input_first_cut_after_a_fresh_example_marker_keeps_the_complete_ones():
    text = "Example 1\nInput: Rome is in Italy.\nOutput: Italy\n\nExample 2\n"
    assert parsing.parse_input_first(text, "length") == [
        ParsedInstance("Rome is in Italy.", "Italy", None)]


@pytest.mark.parametrize("marker", ["Example  2", "Example\t2", "Example 2:", "Example 2.",
                                    "  Example 2", "Example2"])
def test_example_boundaries_take_any_spacing(marker):
    text = ("Example 1\nInput: Rome is in Italy.\nOutput: Italy\n\n"
            f"{marker}\nInput: Paris\nOutput: France")
    assert [(p.input, p.output) for p in parsing.parse_input_first(text, "stop")] == [
        ("Rome is in Italy.", "Italy"), ("Paris", "France")]


def test_a_response_without_an_output_marker_keeps_nothing_and_says_why():
    parsed = parsing.parse_input_first("The answer is 42.", "stop")
    assert [(p.output, p.drop_reason) for p in parsed] == [
        ("The answer is 42.", "missing_field_marker")]
    # Text before the first example and an example without Output: are dropped the same way.
    text = ("Here are some examples:\nExample 1\nInput: 2 + 2\nOutput: 4\n\n"
            "Example 2\nThe sum of 3 and 5 is 8.")
    assert [p.drop_reason for p in parsing.parse_input_first(text, "stop")] == [
        "missing_field_marker", None, "missing_field_marker"]


def test_a_class_label_is_the_rest_of_its_line():
    text = "Class label:\nInput: The film was long.\n\nClass label: Negative\nInput: Dull."
    parsed = parsing.parse_output_first(text, "stop")
    assert [(p.input, p.output, p.drop_reason) for p in parsed] == [
        ("The film was long.", "", "empty_output"), ("Dull.", "Negative", None)]


def test_an_output_first_input_ends_at_the_next_field():
    text = "Class label: Spam\nInput: Win a free cruise now!\nOutput: Spam\nInput: again"
    assert parsing.parse_output_first(text, "stop") == [
        ParsedInstance("Win a free cruise now!", "Spam", None)]


def test_an_instance_written_under_a_list_item_is_not_part_of_the_instruction():
    text = (" Translate the sentence into French.\nInput: I like cats.\nOutput: J'aime les chats.\n"
            "10. Tell whether a review is positive or negative. Output: positive or negative")
    assert _instructions(text) == [
        ("Translate the sentence into French.", None),
        ("Tell whether a review is positive or negative. Output: positive or negative", None)]


def test_instance_text_ends_where_the_requests_stops_end_it():
    # A server that ignored the stops ran on into the next task until the token limit.
    text = ("Example 1\nInput: Rome is in Italy.\nOutput: Italy\n\n"
            "Task: Name the capital of a country.\nExample 1\nInput: Spain\nOutput: Mad")
    assert parsing.parse_input_first(text, "length") == [
        ParsedInstance("Rome is in Italy.", "Italy", None)]
    labelled = "Class label: Positive\nInput: Lovely soup.\n\nTask: Classify a colour.\nClass"
    assert parsing.parse_output_first(labelled, "length") == [
        ParsedInstance("Lovely soup.", "Positive", None)]
    six = "".join(f"Example {k}\nInput: {k} + {k}\nOutput: {2 * k}\n\n" for k in range(1, 8))
    assert [p.output for p in parsing.parse_input_first(six, "length")] == [
        "2", "4", "6", "8", "10"]
