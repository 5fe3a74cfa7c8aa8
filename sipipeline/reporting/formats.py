"""The export formats: one registry mapping a format name to its file name and writer.

The CLI's `--format` choices, the export asset's config, `export_dataset` and the dataset card
all read `REGISTRY`; adding a format is adding one `ExportFormat` here. Each format is written as a
train and a validation file:
- `jsonl`: the reference `{"instruction", "input", "output"}` JSON lines;
- `prompt_completion`: GPT-3-style `{"prompt", "completion"}` JSON lines, each record rendered
  with one of several templates picked at random with a fixed seed (the paper's template mixing);
- `alpaca`: one JSON array of `{"instruction", "input", "output"}` (Stanford Alpaca's file);
- `openai_chat`: OpenAI chat fine-tuning JSON lines (`{"messages": [...]}`), each line checked;
- `parquet`: Parquet with lineage columns, loadable with Hugging Face `datasets` through the
  dataset card's `configs`, or with pyarrow/pandas.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sipipeline.reporting.atomic import write_with
from sipipeline.reporting.records import RECORD_COLUMNS

ALL = "all"
END_OF_TEXT = "<|endoftext|>"
PARQUET_SCHEMA = pa.schema([
    ("task_id", pa.string()), ("origin", pa.string()), ("round", pa.int64()),
    ("is_classification", pa.bool_()), ("model", pa.string()), ("instruction", pa.string()),
    ("input", pa.string()), ("output", pa.string()),
])
OPENAI_ROLES = {"system", "user", "assistant", "tool"}
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id",
                       "function_call"}


@dataclass(frozen=True)
class PromptTemplate:
    """One way of rendering a task as a prompt/completion pair."""

    with_input: str  # uses {instruction} and {input}
    without_input: str  # uses {instruction}
    completion: str  # uses {output}


# Our own variants of the reference's mixing: with or without "Task:", "Input:" and "Output:"
# markers, one or two newlines between parts; completions end with the end-of-text marker.
PROMPT_TEMPLATES: tuple[PromptTemplate, ...] = (
    PromptTemplate("{instruction}\n\n{input}\n\n", "{instruction}\n\n",
                   "{output}" + END_OF_TEXT),
    PromptTemplate("{instruction}\n{input}\n", "{instruction}\n", "{output}" + END_OF_TEXT),
    PromptTemplate("Task: {instruction}\nInput: {input}\nOutput:", "Task: {instruction}\nOutput:",
                   " {output}" + END_OF_TEXT),
    PromptTemplate("Task: {instruction}\n\nInput: {input}\n\nOutput:",
                   "Task: {instruction}\n\nOutput:", " {output}" + END_OF_TEXT),
    PromptTemplate("{instruction}\nInput: {input}\nOutput:", "{instruction}\nOutput:",
                   " {output}" + END_OF_TEXT),
    PromptTemplate("Task: {instruction}\n{input}\n\n", "Task: {instruction}\n\n",
                   "{output}" + END_OF_TEXT),
)


# ---------------------------------------------------------------------------------------------
# Renderings of one record


def render_prompt_completion(instruction: str, input_text: str, output: str,
                             template_index: int) -> dict[str, str]:
    """A prompt/completion pair with one of PROMPT_TEMPLATES (no "Input" part when empty)."""
    template = PROMPT_TEMPLATES[template_index]
    if input_text:
        prompt = template.with_input.format(instruction=instruction, input=input_text)
    else:
        prompt = template.without_input.format(instruction=instruction)
    return {"prompt": prompt, "completion": template.completion.format(output=output)}


def template_choices(count: int, seed: int, split: str) -> list[int]:
    """The template index of each record of a split (seeded, so exports are reproducible)."""
    rng = random.Random(f"{seed}:{split}:templates")
    return [rng.randrange(len(PROMPT_TEMPLATES)) for _ in range(count)]


def openai_chat_example(instruction: str, input_text: str, output: str,
                        system_prompt: str | None = None) -> dict[str, list[dict[str, str]]]:
    """One chat fine-tuning example: [system], user (instruction + input), assistant."""
    user = f"{instruction}\n\n{input_text}" if input_text else instruction
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return {"messages": messages}


def validate_openai_chat_example(example: object) -> list[str]:
    """Problems OpenAI's fine-tuning file check would report for one line (empty when fine)."""
    if not isinstance(example, dict):
        return ["line is not a JSON object"]
    problems = [f"unexpected key {key!r}" for key in example if key not in ("messages", "tools")]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "'messages' must be a non-empty list"]
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"message {position} is not an object")
            continue
        problems += [f"message {position}: unexpected key {key!r}"
                     for key in message if key not in OPENAI_MESSAGE_KEYS]
        if message.get("role") not in OPENAI_ROLES:
            problems.append(f"message {position}: role {message.get('role')!r} not allowed")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"message {position}: content must be a non-empty string")
        if "weight" in message and message["weight"] not in (0, 1):
            problems.append(f"message {position}: weight must be 0 or 1")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append("no assistant message")
    if "user" not in roles:
        problems.append("no user message")
    if roles and roles[-1] != "assistant":
        problems.append("last message must be the assistant's")
    return problems


# ---------------------------------------------------------------------------------------------
# Writers: (records of one split, path, options) -> file


@dataclass(frozen=True)
class WriteOptions:
    """What a writer may need besides the records and the (temporary) path it writes to."""

    split: str
    seed: int
    target: Path  # the file's final name, for messages
    system_prompt: str | None = None


def _write_jsonl(path: Path, rows: Iterable[Mapping]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _iio(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [{"instruction": i, "input": x, "output": o}
            for i, x, o in zip(frame["instruction"], frame["input"], frame["output"],
                               strict=True)]


def write_jsonl(frame: pd.DataFrame, path: Path, options: WriteOptions) -> None:
    """The reference's instruction/input/output JSON lines."""
    _write_jsonl(path, _iio(frame))


def write_prompt_completion(frame: pd.DataFrame, path: Path, options: WriteOptions) -> None:
    """Prompt/completion pairs, each with a seeded choice of template."""
    choices = template_choices(len(frame), options.seed, options.split)
    _write_jsonl(path, (render_prompt_completion(r["instruction"], r["input"], r["output"],
                                                 choice)
                        for r, choice in zip(_iio(frame), choices, strict=True)))


def write_alpaca(frame: pd.DataFrame, path: Path, options: WriteOptions) -> None:
    """One indented JSON array, as Stanford Alpaca ships its data."""
    path.write_text(json.dumps(_iio(frame), ensure_ascii=False, indent=2) + "\n",
                    encoding="utf-8")


def write_openai_chat(frame: pd.DataFrame, path: Path, options: WriteOptions) -> None:
    """Chat examples, each checked as OpenAI's file check would (ValueError naming the line)."""
    examples = [openai_chat_example(r["instruction"], r["input"], r["output"],
                                    options.system_prompt)
                for r in _iio(frame)]
    for number, example in enumerate(examples, start=1):
        problems = validate_openai_chat_example(example)
        if problems:
            raise ValueError(f"{options.target} line {number}: {'; '.join(problems)}")
    _write_jsonl(path, examples)


def write_parquet(frame: pd.DataFrame, path: Path, options: WriteOptions) -> None:
    """Every record column with a fixed schema (stable types for `datasets`)."""
    table = pa.Table.from_pandas(frame[RECORD_COLUMNS], schema=PARQUET_SCHEMA,
                                 preserve_index=False)
    pq.write_table(table, path)


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class ExportFormat:
    """A format: its name, where its split files go (relative, with {split}), its writer."""

    name: str
    file_name: str
    write: Callable[[pd.DataFrame, Path, WriteOptions], None]
    description: str


REGISTRY: dict[str, ExportFormat] = {fmt.name: fmt for fmt in (
    ExportFormat("jsonl", "jsonl/{split}.jsonl", write_jsonl,
                 "instruction/input/output JSON lines"),
    ExportFormat("prompt_completion", "prompt_completion/{split}.jsonl", write_prompt_completion,
                 "GPT-3-style prompt/completion JSON lines"),
    ExportFormat("alpaca", "alpaca/{split}.json", write_alpaca, "Alpaca JSON array"),
    ExportFormat("openai_chat", "openai_chat/{split}.jsonl", write_openai_chat,
                 "OpenAI chat fine-tuning JSON lines"),
    ExportFormat("parquet", "data/{split}-00000-of-00001.parquet", write_parquet,
                 "Parquet with lineage columns (Hugging Face datasets)"),
)}


def format_choices() -> tuple[str, ...]:
    """What a user may ask for: every registered format name, or "all"."""
    return (ALL, *REGISTRY)


def resolve_formats(formats: Sequence[str] | str) -> list[str]:
    """Expand "all" and check names, keeping registry order."""
    if isinstance(formats, str):
        formats = [formats]
    wanted = set()
    for fmt in formats:
        if fmt == ALL:
            wanted.update(REGISTRY)
        elif fmt in REGISTRY:
            wanted.add(fmt)
        else:
            raise ValueError(f"unknown export format {fmt!r}; choose from "
                             f"{', '.join(format_choices())}")
    return [fmt for fmt in REGISTRY if fmt in wanted]


def split_path(out: Path, fmt: str, split: str) -> Path:
    """Where a format's split file goes under an export folder."""
    return out / REGISTRY[fmt].file_name.format(split=split)


def write_split(fmt: str, frame: pd.DataFrame, path: Path, split: str, seed: int,
                system_prompt: str | None = None) -> None:
    """Write one split of one format, all or nothing (see `atomic`)."""
    if fmt not in REGISTRY:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(REGISTRY)}")
    options = WriteOptions(split, seed, Path(path), system_prompt)
    write_with(path, lambda partial: REGISTRY[fmt].write(frame, partial, options))
