"""Chat prompts: message lists with the completion prompts' few-shot content, and a round in
chat style through the round functions."""

import json

import pandas as pd

from sipipeline.method import chat_prompts, prompts, rounds
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.method.vocabulary import DropReason, ParsedAs, PromptStyle
from sipipeline.paths import DEFAULT_SEED_FILE

SEEDS = load_seed_tasks(DEFAULT_SEED_FILE)
EXAMPLES = prompts.FewShotExamples.from_seeds(SEEDS)


def _roles(stage: chat_prompts.StagePrompt) -> list[str]:
    return [role for role, _ in stage.messages]


def test_generation_messages_show_every_in_context_task_and_ask_for_the_next_numbers():
    shown = ["Give me a quote from a famous person on this topic.", "Write a haiku:  "]
    stage = chat_prompts.generation_messages(shown)
    assert _roles(stage) == ["system", "user"]
    request = stage.messages[1][1]
    assert "1. Give me a quote from a famous person on this topic.\n2. Write a haiku\n" in request
    assert f"from 3 to {2 + prompts.NEW_ITEMS_PER_PROMPT}" in request
    assert stage.response_format == ""
    assert stage.text == chat_prompts.render_messages(stage.messages)


def test_stage_messages_replay_the_completion_prompts_few_shot_examples_as_turns():
    instruction = "Sort the numbers   in ascending order."
    for stage, shots in (
            (chat_prompts.classification_messages(EXAMPLES, instruction),
             EXAMPLES.classification),
            (chat_prompts.input_first_messages(EXAMPLES, instruction), EXAMPLES.input_first),
            (chat_prompts.output_first_messages(EXAMPLES, instruction), EXAMPLES.output_first)):
        roles = _roles(stage)
        assert roles == ["system"] + ["user", "assistant"] * len(shots) + ["user"]
        assert stage.messages[-1][1].startswith("Task: Sort the numbers in ascending order.")
        users = [content for role, content in stage.messages if role == "user"][:-1]
        assert [u.split("\n")[0] for u in users] == [f"Task: {shot[0]}" for shot in shots]
    classification = chat_prompts.classification_messages(EXAMPLES, instruction)
    answers = [c for role, c in classification.messages if role == "assistant"]
    assert answers == ["Yes" if label else "No" for _, label in EXAMPLES.classification]
    input_first = chat_prompts.input_first_messages(EXAMPLES, instruction)
    for (_, task_input, task_output), (_, answer) in zip(
            EXAMPLES.input_first, input_first.messages[2::2], strict=True):
        assert answer.endswith(f"Output: {task_output}")
        assert (f"Input: {task_input}\n" in answer) == bool(task_input)


def test_structured_messages_show_json_answers_and_carry_the_schema():
    stage = chat_prompts.output_first_messages(EXAMPLES, "Detect spam.", structured=True)
    response_format = json.loads(stage.response_format)
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == chat_prompts.OUTPUT_FIRST_SCHEMA
    for role, content in stage.messages:
        if role == "assistant":
            record = json.loads(content)["instances"][0]
            assert set(record) == {"class_label", "input"}
    assert "JSON" in stage.messages[0][1]


def chat_responder(text: str) -> str:
    """A chat model's answers: Markdown, preambles, restarting numbers, closing remarks."""
    if "Write 7 new tasks" in text:
        return ("Sure! Here are seven more tasks:\n\n1. **Describe** the life cycle of a "
                "butterfly for a child.\n2. Explain how compound interest grows savings.\n"
                "3. Classify a movie review as positive or negative.\n4. Say hi.\n\n"
                "I hope these help!")
    last_task = text.rsplit("Task: ", 1)[-1]
    if text.startswith(f"[system]\n{chat_prompts.CLASSIFICATION_SYSTEM}"):
        if "butterfly" in last_task:
            return "It depends on what you mean."
        return "**Yes**." if "Classify" in last_task else "No"
    if text.startswith(f"[system]\n{chat_prompts.OUTPUT_FIRST_SYSTEM}"):
        return ("Here are the examples:\n\n**Class label:** Positive\n**Input:** A delight.\n\n"
                "**Class label:** Negative\n**Input:** A bore.")
    return "### Example 1\n- **Input:** 100 at 5% for 2 years\n- **Output:** 110.25"


def test_a_chat_style_round_parses_chat_answers_and_records_how():
    style = PromptStyle.CHAT
    planned = rounds.plan_generation_prompts(SEEDS, 1, 2, 8, 2, random_seed=0, style=style)
    assert all(p.messages and p.prompt.startswith("[system]") for p in planned)
    replies = [rounds.ModelText(chat_responder(p.prompt), "stop") for p in planned]
    generated = rounds.generated_candidates(planned, replies, SEEDS, 1, "chat", 0.7,
                                            style=style)
    assert set(generated["parsed_as"]) == {ParsedAs.CHAT_TEXT}
    assert not generated["instruction"].str.contains("Sure!").any()
    accepted = rounds.accepted_candidates(generated)
    assert len(accepted) == 3  # the two prompts get the same answer: duplicates are rejected

    stages = [rounds.classification_prompt(EXAMPLES, i, style) for i in accepted["instruction"]]
    labels = rounds.classification_frame(
        accepted, [s.text for s in stages],
        [rounds.ModelText(chat_responder(s.text), "stop") for s in stages], "chat", style)
    assert labels.set_index("instruction")["label_problem"].notna().to_dict() == {
        i: "butterfly" in i for i in accepted["instruction"]}

    labelled = rounds.labelled_tasks(labels)
    assert len(labelled) == 2
    stages = [rounds.instance_stage_prompt(EXAMPLES, r.instruction, r.is_classification, style)
              for r in labelled.itertuples()]
    frame = rounds.instances_frame(
        labels, [s.text for s in stages],
        [rounds.ModelText(chat_responder(s.text), "stop") for s in stages], "chat", style)
    kept = frame[frame["status"] == "kept"]
    assert sorted(kept["output"]) == ["110.25", "Negative", "Positive"]
    unlabelled = frame[frame["drop_reason"] == DropReason.UNLABELLED]
    assert list(unlabelled["instruction"]) == [
        i for i in accepted["instruction"] if "butterfly" in i]
    assert unlabelled["request_id"].isna().all()
    pool = rounds.next_pool(SEEDS, generated, labels, frame)
    assert len(pool) == len(SEEDS) + 2


def test_the_completion_style_is_unchanged_and_says_so():
    planned = rounds.plan_generation_prompts(SEEDS, 1, 1, 8, 2, random_seed=0)
    assert planned[0].messages == () and planned[0].prompt.endswith("9.")
    generated = rounds.generated_candidates(
        planned, [rounds.ModelText(" Name three rivers in Asia.\n10. Say hi.", "stop")],
        SEEDS, 1, "base", 0.7)
    assert set(generated["parsed_as"]) == {ParsedAs.COMPLETION_TEXT}
    stage = rounds.classification_prompt(EXAMPLES, "Name three rivers in Asia.")
    assert stage.text == prompts.classification_prompt(EXAMPLES, "Name three rivers in Asia.")
    assert stage.messages == ()
    labels = pd.DataFrame({"task_id": ["mi-1"], "round": [1],
                           "instruction": ["Name three rivers in Asia."],
                           "is_classification": [False]})
    frame = rounds.instances_frame(labels, ["p"], [rounds.ModelText("Output: Ganges", "stop")],
                                   "base")
    assert list(frame["parsed_as"]) == [ParsedAs.COMPLETION_TEXT]
