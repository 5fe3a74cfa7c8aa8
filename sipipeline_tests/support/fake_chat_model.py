"""A deterministic stand-in for a chat model answering sipipeline's chat prompts.

It answers the way chat models do - a preamble, Markdown bold and headings, numbering that
restarts at 1, closing remarks, sometimes a `<think>` block - and as JSON when the request
asks for a `response_format`. Like `fake_model`, some answers are built to be rejected (a
blacklisted word, a too-short item), and one classification answer in seven cannot be read.
"""

from __future__ import annotations

import json

from sipipeline.method import chat_prompts
from sipipeline_tests.support.fake_model import _fresh_instruction, _rng


def _system(body: dict) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content") or "")


def _last_task(body: dict) -> str:
    content = str((body.get("messages") or [{}])[-1].get("content") or "")
    return content.removeprefix("Task: ").split("\n")[0]


def respond_chat(prompt_text: str, body: dict, sample_index: int) -> tuple[str, str]:
    """(text, finish_reason) for a chat request built from `chat_prompts`."""
    system = _system(body)
    structured = "response_format" in body
    rng = _rng(prompt_text, sample_index)
    task = _last_task(body)
    if system.startswith(chat_prompts.GENERATION_SYSTEM):
        items = [_fresh_instruction(rng) for _ in range(5)]
        items.insert(rng.randrange(len(items)), "Draw a map of the main streets of a city.")
        items.insert(rng.randrange(len(items)), "Say hi.")
        if structured:
            return json.dumps({"tasks": items}), "stop"
        lines = [f"{index}. **{item}**" if index % 2 else f"{index}. {item}"
                 for index, item in enumerate(items, start=1)]
        thinking = "<think>Seven tasks, all different.</think>\n" if rng.random() < 0.3 else ""
        return (f"{thinking}Sure! Here are seven more tasks:\n\n" + "\n".join(lines)
                + "\n\nI hope these help!"), "stop"
    if system.startswith(chat_prompts.CLASSIFICATION_SYSTEM):
        if rng.random() < 1 / 7:
            return "That depends on the labels you allow.", "stop"
        label = "classify" in task.lower()
        if structured:
            return json.dumps({"is_classification": label}), "stop"
        return ("**Yes**" if label else "No."), "stop"
    if system.startswith(chat_prompts.OUTPUT_FIRST_SYSTEM):
        pairs = [("Positive", "I loved every minute of it."),
                 ("Negative", "It was a waste of time.")]
        if structured:
            return json.dumps({"instances": [{"class_label": label, "input": text}
                                             for label, text in pairs]}), "stop"
        return ("Here are examples for each label:\n\n" + "\n\n".join(
            f"**Class label:** {label}\n**Input:** {text}" for label, text in pairs)), "stop"
    if system.startswith(chat_prompts.INPUT_FIRST_SYSTEM):
        count = 1 + rng.randrange(3)
        pairs = [(f"case {k} of {task[:40]}", f"answer {k} ({rng.randrange(1000)})")
                 for k in range(1, count + 1)]
        if structured:
            return json.dumps({"instances": [{"input": i, "output": o} for i, o in pairs]}), "stop"
        return ("\n\n".join(f"### Example {k}\n- **Input:** {i}\n- **Output:** {o}"
                            for k, (i, o) in enumerate(pairs, start=1))
                + "\n\nLet me know if you need more examples."), "stop"
    return "I am not sure what you are asking.", "stop"
