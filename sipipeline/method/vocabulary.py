"""The method's vocabulary: one definition of each value stored in a status or reason column.

Every enum is a `str` enum, so its members compare equal to the strings stored in Parquet and
shown in the UI; code writes `RejectReason.TOO_SHORT`, never the literal. The normalisers say
which notion of "the same instruction" each place uses.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from enum import Enum


class Vocabulary(str, Enum):
    """A closed set of stored string values (members are their own string value)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Origin(Vocabulary):
    """Where a pool task came from."""

    SEED = "seed"
    MACHINE = "machine"


class CandidateStatus(Vocabulary):
    """Fate of a generated instruction."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class InstanceStatus(Vocabulary):
    """Fate of a parsed instance."""

    KEPT = "kept"
    DROPPED = "dropped"


class RejectReason(Vocabulary):
    """Why a generated instruction did not join the pool (heuristics, parsing, novelty)."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    BLACKLISTED_WORD = "blacklisted_word"
    STARTS_WITH_WRITE_A_PROGRAM = "starts_with_write_a_program"
    STARTS_WITH_PUNCTUATION = "starts_with_punctuation"
    STARTS_WITH_NON_ASCII = "starts_with_non_ascii"
    TRUNCATED = "truncated"
    UNPARSEABLE = "unparseable"
    SIMILAR_TO_POOL = "similar_to_pool"
    JUDGE_INVALID = "judge_invalid"
    #: A chat answer that is all reasoning: `<think>` opened and never closed.
    UNFINISHED_THINKING = "unfinished_thinking"


#: Reject reasons meaning the model's answer could not be used (a model or prompt problem).
PARSE_FAILURE_REASONS = (RejectReason.UNPARSEABLE, RejectReason.TRUNCATED,
                         RejectReason.UNFINISHED_THINKING)


class DropReason(Vocabulary):
    """Why a parsed instance (or every instance of a task) was not kept."""

    EMPTY_OUTPUT = "empty_output"
    INPUT_EQUALS_OUTPUT = "input_equals_output"
    ENDS_WITH_COLON = "ends_with_colon"
    TRUNCATED = "truncated"
    CONFLICTING_OUTPUTS = "conflicting_outputs"
    DUPLICATE = "duplicate"
    OVER_LIMIT = "over_limit"
    NO_VALID_INSTANCE = "no_valid_instance"
    UNPARSEABLE = "unparseable"
    #: The text lacks the field marker the prompt always shows (`Output:` for input-first,
    #: `Class label:` for output-first), so no part of it can be read as an instance.
    MISSING_FIELD_MARKER = "missing_field_marker"
    JUDGE_INVALID = "judge_invalid"
    #: A chat answer that is all reasoning: `<think>` opened and never closed.
    UNFINISHED_THINKING = "unfinished_thinking"
    #: The task's classification answer could not be read, so no instance prompt was chosen.
    UNLABELLED = "unlabelled"


class LabelProblem(Vocabulary):
    """Why a chat model's classification answer could not be read (never guessed)."""

    UNPARSEABLE = "unparseable"
    UNFINISHED_THINKING = "unfinished_thinking"


class PromptStyle(Vocabulary):
    """How the method talks to the model: which prompts it writes and which parsers read them."""

    #: The paper's completion prompts, continued by a base model.
    COMPLETION = "completion"
    #: Chat messages for an instruction-following model, answers parsed as text.
    CHAT = "chat"
    #: Chat messages plus a JSON schema per stage (`response_format`), text parser as fallback.
    CHAT_JSON = "chat_json"


class ParsedAs(Vocabulary):
    """Which parser read a record's answer (stored per record, column `parsed_as`)."""

    COMPLETION_TEXT = "completion_text"
    CHAT_TEXT = "chat_text"
    CHAT_JSON = "chat_json"


class GenerationOrder(Vocabulary):
    """How an instance was asked for: input-first, or output-first for classification tasks."""

    INPUT_FIRST = "input_first"
    OUTPUT_FIRST = "output_first"


class ReviewQuestion(Vocabulary):
    """The paper's three quality questions, asked of a judge model and of people."""

    VALID_INSTRUCTION = "valid_instruction"
    APPROPRIATE_INPUT = "appropriate_input"
    CORRECT_OUTPUT = "correct_output"


class ReviewSource(Vocabulary):
    """Who answered the review questions."""

    JUDGE = "judge"
    HUMAN = "human"


class QualityRating(Vocabulary):
    """The paper's four-level rating of a response (its human evaluation, Section 4.4)."""

    A = "A"  # valid and satisfying
    B = "B"  # acceptable, minor imperfections
    C = "C"  # responds to the instruction, significant errors
    D = "D"  # irrelevant or invalid


_WHITESPACE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace become one space, ends stripped: how prompts and parsers see text."""
    return _WHITESPACE.sub(" ", text).strip()


def identity_key(instruction: str) -> str:
    """What a machine task's id hashes: the instruction, whitespace collapsed, lower-cased.

    Two generations that differ only in spacing or case get the same task id.
    """
    return collapse_whitespace(instruction).lower()


_NON_WORD = re.compile(r"[^\w\s]")


def duplicate_key(instruction: str) -> str:
    """What the duplicate check compares: NFKC-folded, case-folded, punctuation removed.

    Catches copies ROUGE-L cannot see (text with no a-z/0-9 token scores 0 against itself).
    """
    folded = unicodedata.normalize("NFKC", instruction or "").casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def duplicate_hash(instruction: str) -> int:
    """64-bit digest of `duplicate_key` (signed, to store as int64): stored with each pool task
    so the duplicate check compares numbers, and reads texts only where two numbers agree."""
    digest = hashlib.blake2b(duplicate_key(instruction).encode("utf-8"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
