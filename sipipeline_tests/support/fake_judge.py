"""A scripted judge for the quality review tests: clear verdicts, malformed answers and
refusals, chosen from a hash of the reviewed instruction, each with the answers it stands for
(None where no answer may be counted)."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from sipipeline.method.review import JUDGE_HEADER
from sipipeline_tests.support.fake_model import respond


class Script(NamedTuple):
    text: str
    finish_reason: str
    truth: tuple[bool | None, bool | None, bool | None]


SCRIPTS = (
    Script("valid_instruction: yes\nappropriate_input: yes\ncorrect_output: yes\n"
           "reason: fine", "stop", (True, True, True)),
    Script("valid_instruction: yes\nappropriate_input: no\ncorrect_output: yes\n"
           "reason: the input does not fit", "stop", (True, False, True)),
    Script("Valid instruction: No\nAppropriate input: yes\nCorrect output: no\n"
           "Reason: not a task", "stop", (False, True, False)),
    Script("valid_instruction: yes\nappropriate_input: yes\ncorrect_output: no\n"
           "reason: wrong answer", "stop", (True, True, False)),
    Script("I'm sorry, but I can't evaluate this example.", "stop", (None, None, None)),
    Script("valid_instruction: perhaps\nappropriate_input: yes\ncorrect_output: yes", "stop",
           (None, True, True)),
    Script("The example looks fine to me overall.", "stop", (None, None, None)),
    Script("valid_instruction: yes\nappropriate_input: yes\ncorr", "length", (True, True, None)),
)


def instruction_of(prompt: str) -> str:
    """The reviewed instruction: the last one in the prompt (after the worked reviews)."""
    found = re.findall(r"^Instruction: (.*)$", prompt, flags=re.MULTILINE)
    return found[-1] if found else ""


def script_for(instruction: str) -> Script:
    digest = hashlib.sha256(instruction.strip().encode("utf-8")).digest()
    return SCRIPTS[digest[0] % len(SCRIPTS)]


def is_judge_prompt(prompt: str) -> bool:
    return JUDGE_HEADER.strip() in prompt


def judge_and_model(prompt: str, body: dict, sample_index: int) -> tuple[str, str]:
    """The fake base model for round prompts, the scripted judge for review prompts."""
    if is_judge_prompt(prompt):
        script = script_for(instruction_of(prompt))
        return script.text, script.finish_reason
    return respond(prompt, body, sample_index)
