"""One Self-Instruct round as plain functions over DataFrames (no Dagster, no network).

The assets call these in order: plan prompts → (model) → candidates → (model) → labels →
(model) → instances → the next pool. Every record gets a content-based id so re-running a round
with the same inputs yields the same ids, and lineage can be followed across rounds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sipipeline.method import chat_parsing, chat_prompts, parsing, prompts
from sipipeline.method.schema import (
    CLASSIFICATION_SCHEMA,
    GENERATED_SCHEMA,
    INSTANCES_SCHEMA,
    frame,
    pool_frame,
)
from sipipeline.method.vocabulary import (
    CandidateStatus,
    DropReason,
    GenerationOrder,
    InstanceStatus,
    Origin,
    ParsedAs,
    PromptStyle,
    RejectReason,
    identity_key,
)
from sipipeline.similarity import EncodedPool, novelty_filter


def stable_id(prefix: str, *parts: object) -> str:
    """A short id derived from content, stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8"))
    return f"{prefix}-{digest.hexdigest()[:16]}"


def machine_task_id(instruction: str) -> str:
    return stable_id("mi", identity_key(instruction))


@dataclass(frozen=True)
class PlannedPrompt:
    """A generation request: `prompt` is the completion prompt or the rendered chat messages."""

    request_id: str
    prompt: str
    in_context_ids: tuple[str, ...]
    messages: chat_prompts.ChatMessages = ()
    response_format: str = ""


def is_chat(style: str) -> bool:
    return style in (PromptStyle.CHAT, PromptStyle.CHAT_JSON)


@dataclass(frozen=True)
class InContextPools:
    """The pool split once into the two groups in-context examples are drawn from.

    Built once per round, so planning many prompts costs O(pool + prompts), not O(pool × prompts).
    """

    seed_ids: tuple[str, ...]
    seed_texts: tuple[str, ...]
    machine_ids: tuple[str, ...]
    machine_texts: tuple[str, ...]

    @classmethod
    def of(cls, pool: pd.DataFrame) -> InContextPools:
        seeds = pool[pool["origin"] == Origin.SEED]
        machine = pool[pool["origin"] == Origin.MACHINE]
        return cls(tuple(seeds["task_id"]), tuple(seeds["instruction"]),
                   tuple(machine["task_id"]), tuple(machine["instruction"]))

    def sample(self, rng: random.Random, num_examples: int = 8,
               num_machine: int = 2) -> list[tuple[str, str]]:
        """`(task_id, instruction)` of the in-context tasks, in prompt order.

        `num_machine` machine tasks when the pool has them, the rest seeds; uniform without
        replacement from each group, then shuffled, as in the paper.
        """
        take_machine = min(num_machine, len(self.machine_ids))
        take_seeds = min(num_examples - take_machine, len(self.seed_ids))
        picked = [(self.machine_ids[i], self.machine_texts[i])
                  for i in rng.sample(range(len(self.machine_ids)), take_machine)]
        picked += [(self.seed_ids[i], self.seed_texts[i])
                   for i in rng.sample(range(len(self.seed_ids)), take_seeds)]
        rng.shuffle(picked)
        return picked


def plan_generation_prompts(pool: pd.DataFrame, round_number: int, num_prompts: int,
                            num_examples: int, num_machine: int, random_seed: int,
                            style: str = PromptStyle.COMPLETION) -> list[PlannedPrompt]:
    """The round's instruction-generation prompts, reproducible from (seed, round, pool).

    `style` picks the completion prompt (base models) or the chat messages; the in-context
    tasks are the same for both.
    """
    rng = random.Random(f"{random_seed}:{round_number}")
    groups = InContextPools.of(pool)
    planned = []
    for index in range(num_prompts):
        examples = groups.sample(rng, num_examples, num_machine)
        shown = [instruction for _, instruction in examples]
        stage = (chat_prompts.generation_messages(shown, style == PromptStyle.CHAT_JSON)
                 if is_chat(style) else chat_prompts.StagePrompt(prompts.generation_prompt(shown)))
        planned.append(PlannedPrompt(
            request_id=stable_id("rq", round_number, random_seed, index, stage.text),
            prompt=stage.text,
            in_context_ids=tuple(task_id for task_id, _ in examples),
            messages=stage.messages,
            response_format=stage.response_format,
        ))
    return planned


@dataclass(frozen=True)
class ModelText:
    """The part of a model response the method needs.

    `journal_key` names the sample in the response journal, so a record can be traced back
    to the exact prompt and completion that produced it ("" when unknown).
    """

    text: str
    finish_reason: str
    journal_key: str = ""


def _similar_records(entries: list[dict], comparison_ids: list[str]) -> list[dict]:
    return [{"task_id": comparison_ids[e["index"]], "score": float(e["score"])}
            for e in entries]


def generated_candidates(planned: Sequence[PlannedPrompt], responses: Sequence[ModelText],
                         pool: pd.DataFrame, round_number: int, model: str,
                         threshold: float, top_k: int = 10,
                         style: str = PromptStyle.COMPLETION,
                         encoded_pool: EncodedPool | None = None) -> pd.DataFrame:
    """Parse every response, apply the heuristics, then the ROUGE-L novelty filter in order.

    `encoded_pool`: `encode_pool(pool["instruction"])`, when several calls share one pool.

    Chat answers (`style`) are read by the chat parser; `parsed_as` records which one read each.

    The novelty filter sees the candidates in prompt order and compares each one with the pool
    and with the candidates accepted before it, as the reference implementation does.
    """
    rows: list[dict] = []
    for plan, response in zip(planned, responses, strict=True):
        items, parsed_as = _parse_generation(plan, response, style)
        for item in items:
            rows.append({
                "candidate_id": stable_id("gc", plan.request_id, item.position, item.instruction),
                "round": round_number,
                "request_id": plan.request_id,
                "prompt": plan.prompt,
                "in_context_ids": list(plan.in_context_ids),
                "position": item.position,
                "instruction": item.instruction,
                "model": model,
                "finish_reason": response.finish_reason,
                "parsed_as": parsed_as,
                "journal_key": response.journal_key,
                "status": (CandidateStatus.REJECTED if item.reject_reason
                           else CandidateStatus.ACCEPTED),
                "reject_reason": item.reject_reason,
                "max_rouge_l": float("nan"),
                "mean_rouge_l": float("nan"),
                "most_similar": [],
                "task_id": None,
            })
    survivors = [row for row in rows if row["status"] == CandidateStatus.ACCEPTED]
    survivor_texts = [row["instruction"] for row in survivors]
    survivor_ids = [machine_task_id(text) for text in survivor_texts]
    decisions = novelty_filter(
        survivor_texts, encoded_pool if encoded_pool is not None else list(pool["instruction"]),
        threshold=threshold, top_k=top_k)
    # `most_similar` indexes the pool, then (from len(pool) on) candidates by input position.
    comparison_ids = list(pool["task_id"]) + survivor_ids
    for row, task_id, decision in zip(survivors, survivor_ids,
                                      decisions.itertuples(index=False), strict=True):
        row["max_rouge_l"] = float(decision.max_rouge_l)
        row["mean_rouge_l"] = float(decision.mean_rouge_l)
        row["most_similar"] = _similar_records(list(decision.most_similar or []),
                                               comparison_ids)
        if decision.keep:
            row["task_id"] = task_id
        else:
            row["status"] = CandidateStatus.REJECTED
            row["reject_reason"] = RejectReason.SIMILAR_TO_POOL
    return frame(rows, GENERATED_SCHEMA)


def _parse_generation(plan: PlannedPrompt, response: ModelText, style: str
                      ) -> tuple[list[parsing.ParsedInstruction], ParsedAs]:
    if is_chat(style):
        return chat_parsing.parse_chat_instructions(
            response.text, response.finish_reason, style == PromptStyle.CHAT_JSON)
    # The prompt lists the in-context instructions and ends with the next number.
    first_number = len(plan.in_context_ids) + 1
    return parsing.parse_generated_instructions(
        response.text, response.finish_reason, first_number,
        prompts.list_end(len(plan.in_context_ids))), ParsedAs.COMPLETION_TEXT


def accepted_candidates(generated: pd.DataFrame) -> pd.DataFrame:
    return generated[generated["status"] == CandidateStatus.ACCEPTED].reset_index(drop=True)


def classification_prompt(examples: prompts.FewShotExamples, instruction: str,
                          style: str = PromptStyle.COMPLETION) -> chat_prompts.StagePrompt:
    """The classification request of one instruction in `style`."""
    if is_chat(style):
        return chat_prompts.classification_messages(examples, instruction,
                                                    style == PromptStyle.CHAT_JSON)
    return chat_prompts.StagePrompt(prompts.classification_prompt(examples, instruction))


def classification_frame(accepted: pd.DataFrame, prompt_texts: Sequence[str],
                         responses: Sequence[ModelText], model: str,
                         style: str = PromptStyle.COMPLETION) -> pd.DataFrame:
    """One label per accepted task. A chat answer that is neither Yes nor No is not guessed:
    `label_problem` says why, `is_classification` is False, and the task gets no instances."""
    rows = []
    for row, text, response in zip(accepted.itertuples(), prompt_texts, responses, strict=True):
        problem = None
        if is_chat(style):
            label = chat_parsing.parse_chat_classification(
                response.text, style == PromptStyle.CHAT_JSON)
            is_classification, problem = bool(label.is_classification), label.problem
            parsed_as = label.parsed_as
        else:
            is_classification = parsing.parse_classification_answer(response.text)
            parsed_as = ParsedAs.COMPLETION_TEXT
        rows.append({
            "task_id": row.task_id,
            "round": row.round,
            "instruction": row.instruction,
            "is_classification": is_classification,
            "raw_answer": response.text,
            "request_id": stable_id("rq", "classify", text),
            "journal_key": response.journal_key,
            "model": model,
            "parsed_as": parsed_as,
            "label_problem": problem,
        })
    return frame(rows, CLASSIFICATION_SCHEMA)


def labelled_tasks(labels: pd.DataFrame) -> pd.DataFrame:
    """The tasks whose classification answer could be read: the ones that get instances."""
    if "label_problem" not in labels.columns:
        return labels
    return labels[labels["label_problem"].isna()].reset_index(drop=True)


def instance_prompt(examples: prompts.FewShotExamples, instruction: str,
                    is_classification: bool) -> str:
    if is_classification:
        return prompts.output_first_prompt(examples, instruction)
    return prompts.input_first_prompt(examples, instruction)


def instance_stage_prompt(examples: prompts.FewShotExamples, instruction: str,
                          is_classification: bool,
                          style: str = PromptStyle.COMPLETION) -> chat_prompts.StagePrompt:
    """The instance request of one task in `style` (output-first for classification tasks)."""
    if not is_chat(style):
        return chat_prompts.StagePrompt(instance_prompt(examples, instruction, is_classification))
    structured = style == PromptStyle.CHAT_JSON
    if is_classification:
        return chat_prompts.output_first_messages(examples, instruction, structured)
    return chat_prompts.input_first_messages(examples, instruction, structured)


def _parse_instances(response: ModelText, is_classification: bool, style: str
                     ) -> tuple[list[parsing.ParsedInstance], ParsedAs]:
    if is_chat(style):
        parse_chat = (chat_parsing.parse_chat_output_first if is_classification
                      else chat_parsing.parse_chat_input_first)
        return parse_chat(response.text, response.finish_reason,
                          style == PromptStyle.CHAT_JSON)
    parse = parsing.parse_output_first if is_classification else parsing.parse_input_first
    return parse(response.text, response.finish_reason), ParsedAs.COMPLETION_TEXT


def instances_frame(labels: pd.DataFrame, prompt_texts: Sequence[str],
                    responses: Sequence[ModelText], model: str,
                    style: str = PromptStyle.COMPLETION) -> pd.DataFrame:
    """Parse each task's instances and apply the instance- and task-level rules.

    `prompt_texts` and `responses` belong to `labelled_tasks(labels)`, in order; a task whose
    label could not be read was sent no request and gets one `unlabelled` row.
    """
    rows = []
    labelled = labelled_tasks(labels)
    for row, text, response in zip(labelled.itertuples(), prompt_texts, responses, strict=True):
        order = (GenerationOrder.OUTPUT_FIRST if row.is_classification
                 else GenerationOrder.INPUT_FIRST)
        answer, parsed_as = _parse_instances(response, bool(row.is_classification), style)
        parsed, task_reason = parsing.select_task_instances(answer)
        request_id = stable_id("rq", "instances", text)
        for instance in parsed:
            rows.append({
                "instance_id": stable_id("in", row.task_id, instance.input, instance.output),
                "task_id": row.task_id,
                "round": row.round,
                "instruction": row.instruction,
                "is_classification": bool(row.is_classification),
                "input": instance.input,
                "output": instance.output,
                "generation": order,
                "request_id": request_id,
                "journal_key": response.journal_key,
                "model": model,
                "status": InstanceStatus.DROPPED if instance.drop_reason else InstanceStatus.KEPT,
                "drop_reason": instance.drop_reason,
                "parsed_as": parsed_as,
            })
        if not parsed:
            rows.append({
                "instance_id": stable_id("in", row.task_id, "", ""), "task_id": row.task_id,
                "round": row.round, "instruction": row.instruction,
                "is_classification": bool(row.is_classification), "input": "", "output": "",
                "generation": order, "request_id": request_id,
                "journal_key": response.journal_key, "model": model,
                "status": InstanceStatus.DROPPED,
                "drop_reason": task_reason or DropReason.UNPARSEABLE, "parsed_as": parsed_as,
            })
    if len(labelled) < len(labels):
        for row in labels[labels["label_problem"].notna()].itertuples():
            rows.append({
                "instance_id": stable_id("in", row.task_id, "", ""), "task_id": row.task_id,
                "round": row.round, "instruction": row.instruction,
                "is_classification": False, "input": "", "output": "", "generation": None,
                "request_id": None, "model": model, "status": InstanceStatus.DROPPED,
                "drop_reason": DropReason.UNLABELLED, "parsed_as": None,
            })
    return frame(rows, INSTANCES_SCHEMA)


def next_pool(seed_pool: pd.DataFrame, generated: pd.DataFrame, labels: pd.DataFrame,
              instances: pd.DataFrame) -> pd.DataFrame:
    """The cumulative pool after the round: old pool plus accepted tasks with valid instances."""
    kept = instances[instances["status"] == InstanceStatus.KEPT]
    by_task: dict[str, list[dict]] = {}
    for row in kept.itertuples():
        by_task.setdefault(row.task_id, []).append({"input": row.input, "output": row.output})
    label_of = dict(zip(labels["task_id"], labels["is_classification"], strict=True))
    new_rows = []
    for row in accepted_candidates(generated).itertuples():
        if row.task_id not in by_task:
            continue
        new_rows.append({
            "task_id": row.task_id,
            "instruction": row.instruction,
            "origin": Origin.MACHINE,
            "round": row.round,
            "is_classification": bool(label_of[row.task_id]),
            "instances": by_task[row.task_id],
            "model": row.model,
            "request_id": row.request_id,
            "in_context_ids": list(row.in_context_ids),
            "max_rouge_l": row.max_rouge_l,
            "mean_rouge_l": row.mean_rouge_l,
            "most_similar": list(row.most_similar),
        })
    return pd.concat([seed_pool, pool_frame(new_rows)], ignore_index=True)


def rejection_funnel(generated: pd.DataFrame, num_requests: int) -> dict[str, int]:
    """generated → parsed → rejected by each reason → accepted, for metadata."""
    funnel = {"requests": num_requests, "parsed_candidates": int(len(generated))}
    reasons = generated["reject_reason"].dropna().value_counts()
    for reason, count in sorted(reasons.items()):
        funnel[f"rejected_{reason}"] = int(count)
    funnel["accepted"] = int((generated["status"] == CandidateStatus.ACCEPTED).sum())
    return funnel
