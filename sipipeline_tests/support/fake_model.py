"""A deterministic stand-in for a base model that understands sipipeline's four prompts.

It answers from a hash of the prompt, so the same prompt always gets the same text, and
different rounds (different prompts) get different instructions. Some answers are built to be
rejected: a blacklisted word, a too-short item, a copy of an in-context instruction (ROUGE-L 1.0),
an instance whose input equals its output.
"""

from __future__ import annotations

import hashlib
import random
import re

from sipipeline.method import prompts

VERBS = ["Write", "Describe", "Explain", "Summarize", "List", "Suggest", "Compare", "Create",
         "Find", "Give", "Rewrite", "Translate", "Evaluate", "Propose", "Outline", "Identify"]
TOPICS = [
    "volcanoes", "tax law", "knitting", "quantum dots", "jazz history", "coral reefs",
    "supply chains", "medieval castles", "sourdough", "glaciers", "chess openings", "bees",
    "microfinance", "origami", "solar sails", "typography", "rainforests", "submarines",
    "vaccines", "board games", "haiku", "cryptography", "wetlands", "opera", "bridges",
    "tea ceremonies", "robots", "deserts", "comets", "pottery", "marathons", "libraries",
]
QUALIFIERS = ["for a curious child", "in three sentences", "using simple words",
              "for a busy manager", "with one concrete example", "as a short checklist",
              "from a historian's point of view", "for a newspaper column", "in plain English",
              "step by step", "with pros and cons", "for beginners"]


HEADERS = (prompts.GENERATION_HEADER, prompts.CLASSIFICATION_HEADER,
           prompts.OUTPUT_FIRST_HEADER, prompts.INPUT_FIRST_HEADER)


def _rng(prompt: str, sample_index: int) -> random.Random:
    digest = hashlib.sha256(f"{sample_index}|{prompt}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _fresh_instruction(rng: random.Random) -> str:
    if rng.random() < 0.2:
        first, second = rng.sample(TOPICS, 2)
        return f"Classify whether a review of a book on {first} and {second} is positive or not."
    verb = rng.choice(VERBS)
    first, second = rng.sample(TOPICS, 2)
    return f"{verb} how {first} relate to {second} {rng.choice(QUALIFIERS)}."


def _in_context_instructions(prompt: str) -> list[str]:
    return re.findall(r"^\d+\. (.+)$", prompt, flags=re.MULTILINE)


def _last_task(prompt: str) -> str:
    tasks = re.findall(r"^Task: (.+)$", prompt, flags=re.MULTILINE)
    return tasks[-1] if tasks else ""


def respond(prompt: str, body: dict, sample_index: int) -> tuple[str, str]:
    """The fake model: (text, finish_reason) for a completion prompt.

    A chat request arrives as a system message followed by the prompt; answer the prompt.
    """
    starts = [prompt.find(header) for header in HEADERS if header in prompt]
    prompt = prompt[min(starts):] if starts else prompt
    rng = _rng(prompt, sample_index)
    if prompt.startswith(prompts.GENERATION_HEADER):
        shown = _in_context_instructions(prompt)
        start = len(shown) + 1
        items = [_fresh_instruction(rng) for _ in range(5)]
        items.insert(rng.randrange(len(items)), "Draw a map of the main streets of a city.")
        items.insert(rng.randrange(len(items)), "Say hi.")
        if shown:
            items.insert(rng.randrange(len(items)), shown[0])  # a copy: ROUGE-L 1.0
        # A model that honours the stop sequences never writes item LIST_END.
        items = items[:max(1, prompts.LIST_END - start)]
        lines = [f" {items[0]}"] + [f"{start + i}. {text}" for i, text in enumerate(items[1:], 1)]
        finish = "stop"
        if rng.random() < 0.3:  # cut by the token limit mid-item
            lines[-1] = lines[-1][:len(lines[-1]) // 2].rstrip()
            finish = "length"
        return "\n".join(lines), finish
    task = _last_task(prompt)
    if prompt.startswith(prompts.CLASSIFICATION_HEADER):
        return (" Yes" if "classify" in task.lower() else " No"), "stop"
    if prompt.startswith(prompts.OUTPUT_FIRST_HEADER):
        return ("Class label: Positive\nInput: I loved every minute of it.\n\n"
                "Class label: Negative\nInput: It was a waste of time.\n\n"), "stop"
    if prompt.startswith(prompts.INPUT_FIRST_HEADER):
        count = 1 + rng.randrange(3)
        blocks = [f"Example {k}\nInput: case {k} of {task[:40]}\nOutput: answer {k} "
                  f"({rng.randrange(1000)})" for k in range(1, count + 1)]
        blocks.append(f"Example {count + 1}\nInput: same\nOutput: same")  # input == output
        return "\n\n".join(blocks) + "\n\n", "stop"
    return "", "stop"
