"""Fine-tuning exports of the bootstrapped dataset, in the formats people train with.

Formats (each written as a train and a validation file):
- `jsonl`: the reference `{"instruction", "input", "output"}` JSON lines;
- `prompt_completion`: GPT-3-style `{"prompt", "completion"}` JSON lines, each record rendered
  with one of several templates picked at random with a fixed seed (the paper's template mixing);
- `alpaca`: one JSON array of `{"instruction", "input", "output"}` (Stanford Alpaca's file);
- `openai_chat`: OpenAI chat fine-tuning JSON lines (`{"messages": [...]}`);
- `parquet`: Parquet with lineage columns, loadable with Hugging Face `datasets` through the
  dataset card's `configs` (`load_dataset(out_dir)`), or with pyarrow/pandas.

Every export deduplicates records (whitespace-normalised instruction, input and output), splits
train/validation by task with a seeded hash (so a task never straddles the split and keeps its
side as later rounds add tasks), shuffles each split with the same seed, and writes a dataset
card (`README.md`) and a manifest with the files' SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("jsonl", "prompt_completion", "alpaca", "openai_chat", "parquet")
SPLITS = ("train", "validation")
END_OF_TEXT = "<|endoftext|>"
RECORD_COLUMNS = ["task_id", "origin", "round", "is_classification", "model", "instruction",
                  "input", "output"]
PARQUET_SCHEMA = pa.schema([
    ("task_id", pa.string()), ("origin", pa.string()), ("round", pa.int64()),
    ("is_classification", pa.bool_()), ("model", pa.string()), ("instruction", pa.string()),
    ("input", pa.string()), ("output", pa.string()),
])
FILE_NAMES = {
    "jsonl": "jsonl/{split}.jsonl",
    "prompt_completion": "prompt_completion/{split}.jsonl",
    "alpaca": "alpaca/{split}.json",
    "openai_chat": "openai_chat/{split}.jsonl",
    "parquet": "data/{split}-00000-of-00001.parquet",
}
OPENAI_ROLES = {"system", "user", "assistant", "tool"}
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id",
                       "function_call"}
SEED_LICENCE = ("The 175 seed tasks come from yizhongw/self-instruct (Apache-2.0; the same file "
                "is in tatsu-lab/stanford_alpaca, whose data licence is CC BY-NC 4.0, and which "
                "licence covers it there is unresolved).")
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token|password|authorization|credential)", re.I)


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
# Records, dedupe, split


def _normalise(text: str) -> str:
    return " ".join(str(text).split())


def dataset_records(pool: pd.DataFrame, include_seeds: bool = False) -> pd.DataFrame:
    """One row per (task, instance) of the pool's machine tasks (and seeds when asked)."""
    rows = []
    for task in pool.itertuples(index=False):
        origin = str(task.origin)
        if origin == "seed" and not include_seeds:
            continue
        instances = task.instances if task.instances is not None else []
        for instance in instances:
            if instance is None:
                continue
            output = str(instance.get("output") or "").strip()
            if not output:
                continue
            rows.append((str(task.task_id), origin, int(task.round), bool(task.is_classification),
                         str(task.model or ""), str(task.instruction).strip(),
                         str(instance.get("input") or "").strip(), output))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def deduplicate(records: pd.DataFrame) -> pd.DataFrame:
    """Drop records whose whitespace-normalised (instruction, input, output) appeared before."""
    if not len(records):
        return records.copy()
    key = (records["instruction"].map(_normalise) + "\x00" + records["input"].map(_normalise)
           + "\x00" + records["output"].map(_normalise))
    return records[~key.duplicated()].reset_index(drop=True)


def _unit_hash(seed: int, text: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()
    return int(digest[:16], 16) / 2 ** 64


def assign_splits(records: pd.DataFrame, validation_fraction: float, seed: int) -> pd.Series:
    """"train"/"validation" per record, decided per task (normalised instruction).

    A task goes to validation when a seeded SHA-256 of its instruction falls below the
    fraction, so the assignment is reproducible and stable as the dataset grows. With a
    positive fraction and at least two tasks, each split gets at least one task.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    keys = records["instruction"].map(_normalise)
    unique = list(dict.fromkeys(keys))
    position = {key: _unit_hash(seed, key) for key in unique}
    validation = {key for key, u in position.items() if u < validation_fraction}
    if validation_fraction > 0 and len(unique) >= 2:
        if not validation:
            validation = {min(unique, key=position.__getitem__)}
        if len(validation) == len(unique):
            validation.discard(max(unique, key=position.__getitem__))
    return keys.map(lambda key: "validation" if key in validation else "train")


def prepare_splits(pool: pd.DataFrame, include_seeds: bool = False,
                   validation_fraction: float = 0.05, seed: int = 42
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Deduplicated, split and seed-shuffled records, plus counts for the dataset card."""
    records = dataset_records(pool, include_seeds)
    unique = deduplicate(records)
    split = assign_splits(unique, validation_fraction, seed) if len(unique) else pd.Series(
        [], dtype=object)
    splits = {}
    for name in SPLITS:
        part = unique[(split == name).to_numpy()] if len(unique) else unique
        order = list(range(len(part)))
        random.Random(f"{seed}:{name}").shuffle(order)
        splits[name] = part.iloc[order].reset_index(drop=True)
    counts = {"records_before_dedupe": len(records), "duplicates_removed":
              len(records) - len(unique), "records": len(unique)}
    return splits, counts


# ---------------------------------------------------------------------------------------------
# Renderings


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
# Writers


def _write_jsonl(path: Path, rows: Iterable[Mapping]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _iio(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [{"instruction": i, "input": x, "output": o}
            for i, x, o in zip(frame["instruction"], frame["input"], frame["output"],
                               strict=True)]


def write_split(fmt: str, frame: pd.DataFrame, path: Path, split: str, seed: int,
                system_prompt: str | None = None) -> None:
    """Write one split of one format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        _write_jsonl(path, _iio(frame))
    elif fmt == "prompt_completion":
        choices = template_choices(len(frame), seed, split)
        _write_jsonl(path, (render_prompt_completion(r["instruction"], r["input"], r["output"],
                                                     choice)
                            for r, choice in zip(_iio(frame), choices, strict=True)))
    elif fmt == "alpaca":
        path.write_text(json.dumps(_iio(frame), ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
    elif fmt == "openai_chat":
        examples = [openai_chat_example(r["instruction"], r["input"], r["output"], system_prompt)
                    for r in _iio(frame)]
        for number, example in enumerate(examples, start=1):
            problems = validate_openai_chat_example(example)
            if problems:
                raise ValueError(f"{path} line {number}: {'; '.join(problems)}")
        _write_jsonl(path, examples)
    elif fmt == "parquet":
        table = pa.Table.from_pandas(frame[RECORD_COLUMNS], schema=PARQUET_SCHEMA,
                                     preserve_index=False)
        pq.write_table(table, path)
    else:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")


def resolve_formats(formats: Sequence[str]) -> list[str]:
    """Expand "all" and check names, keeping FORMATS order."""
    if isinstance(formats, str):
        formats = [formats]
    wanted = set()
    for fmt in formats:
        if fmt == "all":
            wanted.update(FORMATS)
        elif fmt in FORMATS:
            wanted.add(fmt)
        else:
            raise ValueError(f"unknown export format {fmt!r}; choose from all, "
                             f"{', '.join(FORMATS)}")
    return [fmt for fmt in FORMATS if fmt in wanted]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _public_info(card_info: Mapping[str, object] | None) -> dict[str, object]:
    """card_info without anything that looks like a secret (keys never reach the card)."""
    return {str(k): v for k, v in (card_info or {}).items() if not _SECRET_KEY.search(str(k))}


def export_dataset(pool: pd.DataFrame, out_dir: str | os.PathLike,
                   formats: Sequence[str] = ("all",), include_seeds: bool = False,
                   validation_fraction: float = 0.05, seed: int = 42,
                   card_info: Mapping[str, object] | None = None) -> dict[str, list[str]]:
    """Write the chosen formats, the dataset card and a manifest; return {format: [paths]}.

    `card_info` adds facts for the card: "model", "model_terms", "parameters" (a mapping),
    "source", "system_prompt" (used by openai_chat) and anything else (listed as is; keys that
    look like secrets are dropped).
    """
    chosen = resolve_formats(formats)
    info = _public_info(card_info)
    system_prompt = info.get("system_prompt")
    system_prompt = str(system_prompt) if system_prompt else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits, counts = prepare_splits(pool, include_seeds, validation_fraction, seed)
    written: dict[str, list[str]] = {}
    for fmt in chosen:
        written[fmt] = []
        for split in SPLITS:
            path = out / FILE_NAMES[fmt].format(split=split)
            write_split(fmt, splits[split], path, split, seed, system_prompt)
            written[fmt].append(str(path))
    settings = {"formats": chosen, "include_seeds": include_seeds,
                "validation_fraction": validation_fraction, "seed": seed}
    card = out / "README.md"
    card.write_text(dataset_card(pool, splits, counts, settings, info, written, out),
                    encoding="utf-8")
    written["card"] = [str(card)]
    manifest = out / "export_manifest.json"
    manifest.write_text(json.dumps({
        "settings": settings, "counts": counts,
        "splits": {name: len(frame) for name, frame in splits.items()},
        "files": {os.path.relpath(p, out): _sha256(Path(p))
                  for paths in written.values() for p in paths},
    }, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written["manifest"] = [str(manifest)]
    return written


# ---------------------------------------------------------------------------------------------
# Dataset card


def _yaml_str(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _models(pool: pd.DataFrame, info: Mapping[str, object]) -> list[str]:
    found = [str(m) for m in pool.get("model", pd.Series([], dtype=object)).dropna() if str(m)]
    if info.get("model"):
        found.insert(0, str(info["model"]))
    return list(dict.fromkeys(found))


def _model_terms(models: Sequence[str], info: Mapping[str, object]) -> str:
    if info.get("model_terms"):
        return str(info["model_terms"])
    if any("gemma" in m.lower() for m in models):
        return ("Outputs of a Gemma model: use is subject to the Gemma Terms of Use and "
                "Prohibited Use Policy (ai.google.dev/gemma/terms). The default embedded model "
                "is an unofficial repackaging of the base Gemma 3 270M.")
    if any(m.lower().startswith(("gpt", "text-", "davinci", "o1", "o3", "o4")) for m in models):
        return ("Outputs of an OpenAI model: use is subject to OpenAI's terms of use, which "
                "restrict using outputs to develop competing models.")
    return ("The terms of the model that generated the data apply to its outputs; check them "
            "before training or redistributing.")


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row)
              + " |" for row in rows]
    return "\n".join(lines)


def dataset_card(pool: pd.DataFrame, splits: Mapping[str, pd.DataFrame],
                 counts: Mapping[str, int], settings: Mapping[str, object],
                 info: Mapping[str, object], written: Mapping[str, list[str]],
                 out: Path) -> str:
    """A Hugging Face style README.md: YAML header (configs, licence) and the facts."""
    everything = pd.concat(list(splits.values()), ignore_index=True)
    models = _models(pool, info)
    n = len(everything)
    tasks = everything["task_id"].nunique() if n else 0
    classification = (everything.drop_duplicates("task_id")["is_classification"].sum()
                      if n else 0)
    empty_inputs = int((everything["input"] == "").sum()) if n else 0
    rounds = sorted({int(r) for r in everything["round"]}) if n else []
    machine_rounds = [r for r in rounds if r > 0]
    yaml = ["---", "language:", "- en", "license: other",
            "license_name: self-instruct-seeds-apache-2.0-and-model-terms",
            "task_categories:", "- text-generation", "tags:", "- self-instruct", "- synthetic",
            "- instruction-tuning", "size_categories:", f"- {_size_category(n)}"]
    if "parquet" in written:
        yaml += ["configs:", "- config_name: default", "  data_files:"]
        for split in SPLITS:
            yaml += [f"  - split: {split}",
                     f"    path: {_yaml_str(FILE_NAMES['parquet'].format(split=split))}"]
    yaml.append("---")

    per_round = (everything.groupby("round").agg(tasks=("task_id", "nunique"),
                                                  records=("task_id", "size"))
                 if n else pd.DataFrame(columns=["tasks", "records"]))
    body = [
        f"# {info.get('title', 'SELF-INSTRUCT dataset generated with sipipeline')}", "",
        str(info.get("description", "Instruction-following data bootstrapped from human seed "
                     "tasks with the SELF-INSTRUCT method (Wang et al., ACL 2023), generated by "
                     "sipipeline. Machine-generated: expect errors; review before use.")), "",
        "## Counts", "",
        _markdown_table(["what", "value"], [
            ("records (task × instance)", f"{n:,}"),
            ("train records", f"{len(splits['train']):,}"),
            ("validation records", f"{len(splits['validation']):,}"),
            ("tasks", f"{tasks:,}"),
            ("classification tasks", f"{int(classification):,}"),
            ("records with empty input", f"{empty_inputs:,}"),
            ("duplicates removed", f"{counts.get('duplicates_removed', 0):,}"),
            ("seed tasks included", "yes" if settings.get("include_seeds") else "no"),
            ("bootstrap rounds", ", ".join(map(str, machine_rounds)) or "none"),
        ]), "",
        "### Per round (0 = human seed tasks)", "",
        _markdown_table(["round", "tasks", "records"],
                        [(r, f"{int(row.tasks):,}", f"{int(row.records):,}")
                         for r, row in per_round.iterrows()]), "",
        "## Model", "",
        ", ".join(f"`{m}`" for m in models) if models else "(not recorded)", "",
    ]
    parameters = info.get("parameters")
    if isinstance(parameters, Mapping) and parameters:
        body += ["## Generation parameters", "",
                 _markdown_table(["parameter", "value"],
                                 [(k, json.dumps(v, ensure_ascii=False, default=str))
                                  for k, v in parameters.items()
                                  if not _SECRET_KEY.search(str(k))]), ""]
    body += [
        "## Files", "",
        _markdown_table(["format", "files", "records"], [
            (fmt, ", ".join(f"`{os.path.relpath(p, out)}`" for p in paths),
             " / ".join(f"{len(splits[s]):,}" for s in SPLITS))
            for fmt, paths in written.items()]), "",
        "- `jsonl`, `alpaca`: `instruction`, `input` (may be empty), `output`.",
        "- `prompt_completion`: GPT-3 style; each record rendered with one of "
        f"{len(PROMPT_TEMPLATES)} templates picked at random (seed {settings.get('seed')}); "
        f"completions end with `{END_OF_TEXT}`.",
        "- `openai_chat`: `messages` with the instruction (and input) as the user turn and the "
        "output as the assistant turn.",
        "- Parquet: also `task_id`, `origin`, `round`, `is_classification`, `model`; "
        "`datasets.load_dataset(\"<this folder>\")` reads it through the `configs` above.", "",
        "## How the split was made", "",
        "Records are deduplicated on whitespace-normalised instruction, input and output. Each "
        "task (normalised instruction) goes to validation when SHA-256 of the seed and the "
        f"instruction, read as a number in [0, 1), is below {settings.get('validation_fraction')}"
        f" (seed {settings.get('seed')}), so all instances of a task share a split and the "
        "assignment stays put when later rounds add tasks. Each split is shuffled with the "
        "same seed.", "",
        *(["Note: OpenAI fine-tuning asks for at least 10 examples per file; the "
            f"validation split has {len(splits['validation'])}.", ""]
          if "openai_chat" in written and 0 < len(splits["validation"]) < 10 else []),
        "## Licence and terms", "",
        f"- Seed tasks: {info.get('seed_license', SEED_LICENCE)}",
        f"- Generated data: {_model_terms(models, info)}",
        "- Method: Wang et al., \"Self-Instruct: Aligning Language Models with Self-Generated "
        "Instructions\", ACL 2023 (arXiv:2212.10560).", "",
    ]
    extra = {k: v for k, v in info.items() if k not in (
        "title", "description", "model", "model_terms", "parameters", "seed_license",
        "system_prompt")}
    if extra:
        body += ["## Other information", "",
                 _markdown_table(["key", "value"],
                                 [(k, v if isinstance(v, str) else json.dumps(v, default=str))
                                  for k, v in extra.items()]), ""]
    return "\n".join(yaml) + "\n\n" + "\n".join(body) + "\n"


# ---------------------------------------------------------------------------------------------
# Reading the pipeline's store


def _round_files(base: str) -> list:
    from upath import UPath

    folder = UPath(base) / "filtered_tasks"
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if re.fullmatch(r"round_\d+\.parquet", p.name)),
                  key=lambda p: (len(p.name), p.name))


def read_latest_pool(storage_base: str | os.PathLike | None = None
                     ) -> tuple[pd.DataFrame, str]:
    """The latest round's `filtered_tasks` (the whole dataset) and its round key.

    Reads `<base>/filtered_tasks/round_*.parquet` (local path or URL via universal-pathlib);
    the highest round key wins. Raises FileNotFoundError when no round has been materialized.
    """
    from sipipeline.method.schema import from_arrow
    from sipipeline.paths import storage_base as default_base

    base = str(storage_base) if storage_base else default_base()
    files = _round_files(base)
    if not files:
        raise FileNotFoundError(f"no materialized round: no filtered_tasks/round_*.parquet "
                                f"under {base} (run `sipipeline run` first)")
    latest = files[-1]
    with latest.open("rb") as handle:
        table = pq.read_table(handle)
    return from_arrow(table), latest.name.removesuffix(".parquet")
