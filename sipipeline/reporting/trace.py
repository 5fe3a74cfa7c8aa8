"""One record's whole story: where a task, candidate or instance came from and what became of it.

`trace_record` finds the id in the round tables (generated candidates, instances, pools), then
gathers: the request that produced it (prompt and raw completion from the response journal, by
the record's `journal_key`), its in-context tasks, every decision of the funnel with its scores,
its classification answer, its instances with their drop reasons, and the later requests that
used it as an in-context example. Plain data in, a JSON-ready dict out; `trace_text` is the
human rendering.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from sipipeline.method.funnel import (
    ADDED,
    CLASSIFIED,
    INSTANCE_PARSE_REASONS,
    INSTANCES_KEPT,
    INSTANCES_PARSED,
    NOVEL,
    REJECT_ORDER,
    stage_label,
)
from sipipeline.method.vocabulary import InstanceStatus, Origin, RejectReason

PASSED, REMOVED, NOT_REACHED = "passed", "removed", "not reached"


class RecordNotFoundError(LookupError):
    """No round table holds the id."""


@dataclass
class TraceSources:
    """Where a trace reads from: the round keys, a table reader and a journal reader."""

    round_keys: Sequence[str]
    read_table: Callable[[str, str], pd.DataFrame | None]  # (asset, round key) -> table
    read_journal: Callable[[Sequence[str]], Mapping[str, object]]  # keys -> SampleRecord
    _cache: dict = field(default_factory=dict)

    def table(self, asset: str, key: str) -> pd.DataFrame | None:
        if (asset, key) not in self._cache:
            self._cache[(asset, key)] = self.read_table(asset, key)
        return self._cache[(asset, key)]


def _plain(value: object) -> object:
    """A JSON-ready value (NaN → None, numpy scalars → Python)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _row(frame: pd.DataFrame, column: str, value: str) -> dict | None:
    if frame is None or column not in frame.columns:
        return None
    hit = frame[frame[column].astype(object) == value]
    return {k: _plain(v) for k, v in hit.iloc[0].to_dict().items()} if len(hit) else None


def _request(sources: TraceSources, journal_key: object, request_id: object) -> dict:
    """The journaled sample behind a record, or why it cannot be shown."""
    answer: dict = {"request_id": request_id, "journal_key": journal_key or None}
    if not journal_key:
        answer["missing"] = "the record carries no journal key (written before tracing existed)"
        return answer
    record = sources.read_journal([str(journal_key)]).get(str(journal_key))
    if record is None:
        answer["missing"] = "the journal has no sample under this key"
        return answer
    answer.update(record.as_dict())  # type: ignore[attr-defined]
    return answer


def _find(record_id: str, sources: TraceSources) -> tuple[str, str, dict, dict | None]:
    """(kind, round key, candidate row, instance row) of the id."""
    for key in sources.round_keys:
        generated = sources.table("generated_instructions", key)
        candidate = _row(generated, "candidate_id", record_id)
        if candidate is not None:
            return "candidate", key, candidate, None
        candidate = _row(generated, "task_id", record_id)
        if candidate is not None:
            return "task", key, candidate, None
        instance = _row(sources.table("instances", key), "instance_id", record_id)
        if instance is not None:
            candidate = _row(generated, "task_id", instance["task_id"])
            if candidate is not None:
                return "instance", key, candidate, instance
    raise RecordNotFoundError(f"no task, candidate or instance has the id {record_id!r}")


def _in_context(sources: TraceSources, key: str, ids: Sequence[str]) -> list[dict]:
    pool = sources.table("seed_pool", key)
    rows = []
    for task_id in ids:
        task = _row(pool, "task_id", task_id) or {}
        rows.append({"task_id": task_id, "instruction": task.get("instruction"),
                     "origin": task.get("origin"), "round": task.get("round")})
    return rows


def _decisions(candidate: dict, label: dict | None, instances: list[dict],
               in_pool: bool) -> list[dict]:
    """Every funnel stage the record met: passed, removed (with why) or not reached."""
    decisions: list[dict] = []
    reason = candidate.get("reject_reason")
    removed = False

    def add(stage: str, outcome: str, detail: str = "") -> None:
        decisions.append({"stage": stage, "label": stage_label(stage), "outcome": outcome,
                          "detail": detail})

    for rule in REJECT_ORDER:
        hit = reason == rule.value
        add(rule.value, NOT_REACHED if removed else REMOVED if hit else PASSED)
        removed = removed or hit
    known = {r.value for r in REJECT_ORDER} | {RejectReason.SIMILAR_TO_POOL.value}
    if reason and reason not in known and not removed:
        add(reason, REMOVED, "a rule unknown to this version")
        removed = True
    best, mean = candidate.get("max_rouge_l"), candidate.get("mean_rouge_l")
    scores = (f"max ROUGE-L {best:.3f}, mean {mean:.3f} against the pool and earlier candidates"
              if best is not None and mean is not None else "")
    hit = reason == RejectReason.SIMILAR_TO_POOL
    add(NOVEL, NOT_REACHED if removed else REMOVED if hit else PASSED, scores)
    removed = removed or hit
    if removed:
        for stage in (CLASSIFIED, INSTANCES_PARSED, INSTANCES_KEPT, ADDED):
            add(stage, NOT_REACHED)
        return decisions
    if label is None:
        add(CLASSIFIED, REMOVED, "no classification answer")
    else:
        kind = "a classification task" if label["is_classification"] else "not classification"
        add(CLASSIFIED, PASSED, f"{kind} (answer {str(label['raw_answer']).strip()!r})")
    parsed = [i for i in instances if i["drop_reason"] not in INSTANCE_PARSE_REASONS]
    kept = [i for i in instances if i["status"] == InstanceStatus.KEPT]
    drops = sorted({str(i["drop_reason"]) for i in instances if i["drop_reason"]})
    reached = label is not None
    add(INSTANCES_PARSED, NOT_REACHED if not reached else PASSED if parsed else REMOVED,
        f"{len(parsed)} parsed" + (f"; dropped: {', '.join(drops)}" if drops else ""))
    reached = reached and bool(parsed)
    add(INSTANCES_KEPT, NOT_REACHED if not reached else PASSED if kept else REMOVED,
        f"{len(kept)} kept")
    add(ADDED, PASSED if in_pool else REMOVED if reached and kept else NOT_REACHED)
    return decisions


def _used_by(sources: TraceSources, task_id: str | None) -> list[dict]:
    """The generation requests of any round that showed the task as an in-context example."""
    if not task_id:
        return []
    uses: dict[str, dict] = {}
    for key in sources.round_keys:
        generated = sources.table("generated_instructions", key)
        if generated is None:
            continue
        for row in generated.itertuples():
            if task_id in list(row.in_context_ids):
                use = uses.setdefault(row.request_id, {"round": key,
                                                       "request_id": row.request_id,
                                                       "candidates": 0})
                use["candidates"] += 1
    return list(uses.values())


def trace_record(record_id: str, sources: TraceSources) -> dict:
    """Everything known about one task, candidate or instance id (see the module docstring)."""
    try:
        kind, key, candidate, instance = _find(record_id, sources)
    except RecordNotFoundError:
        seed = _row(sources.table("seed_pool", sources.round_keys[0]), "task_id", record_id) \
            if sources.round_keys else None
        if seed is None or seed.get("origin") != Origin.SEED:
            raise
        return {"id": record_id, "kind": "seed_task", "instruction": seed["instruction"],
                "instances": seed.get("instances") or [],
                "used_in_context_by": _used_by(sources, record_id)}
    task_id = candidate.get("task_id")
    labels = sources.table("classification_labels", key)
    label = _row(labels, "task_id", task_id) if task_id else None
    instances_table = sources.table("instances", key)
    task_instances = ([] if instances_table is None or not task_id else
                      [{k: _plain(v) for k, v in r.items()} for r in instances_table[
                          instances_table["task_id"] == task_id].to_dict("records")])
    pool = sources.table("filtered_tasks", key)
    in_pool = bool(task_id) and _row(pool, "task_id", task_id) is not None
    trace = {
        "id": record_id,
        "kind": kind,
        "round": key,
        "candidate": {name: candidate.get(name) for name in (
            "candidate_id", "task_id", "position", "instruction", "status", "reject_reason",
            "max_rouge_l", "mean_rouge_l", "finish_reason", "model")},
        "generation_request": _request(sources, candidate.get("journal_key"),
                                       candidate.get("request_id")),
        "in_context": _in_context(sources, key, candidate.get("in_context_ids") or []),
        "most_similar": _neighbours_with_texts(sources, key,
                                               candidate.get("most_similar") or []),
        "decisions": _decisions(candidate, label, task_instances, in_pool),
        "classification": None if label is None else {
            "is_classification": label["is_classification"], "raw_answer": label["raw_answer"],
            "request": _request(sources, label.get("journal_key"), label.get("request_id"))},
        "instances": [{name: i.get(name) for name in (
            "instance_id", "input", "output", "status", "drop_reason", "generation")}
            for i in task_instances],
        "instances_request": (_request(sources, task_instances[0].get("journal_key"),
                                       task_instances[0].get("request_id"))
                              if task_instances else None),
        "in_pool": in_pool,
        "used_in_context_by": _used_by(sources, task_id),
    }
    if instance is not None:
        trace["instance"] = {name: instance.get(name) for name in (
            "instance_id", "input", "output", "status", "drop_reason")}
    return trace


def _neighbours_with_texts(sources: TraceSources, key: str, neighbours: list) -> list[dict]:
    """Recorded neighbours (task id, score) with their instructions, looked up in the round's
    pool, else among the round's candidates (one that passed the filter but no later stage)."""
    wanted = {str(n.get("task_id")) for n in neighbours if not n.get("instruction")}
    texts: dict[str, str] = {}
    for asset in ("filtered_tasks", "generated_instructions"):
        table = sources.table(asset, key)
        if not wanted - texts.keys() or table is None or "task_id" not in table.columns:
            continue
        found = table[table["task_id"].astype(object).isin(wanted - texts.keys())]
        texts.update(zip(found["task_id"].astype(str), found["instruction"].astype(str),
                         strict=True))
    return [{"task_id": n.get("task_id"), "score": n.get("score"),
             "instruction": n.get("instruction") or texts.get(str(n.get("task_id")), "(unknown)")}
            for n in neighbours]


def _request_lines(title: str, request: dict | None) -> list[str]:
    if not request:
        return []
    lines = [f"{title}: request {request.get('request_id')}, journal key "
             f"{request.get('journal_key')}"]
    if "missing" in request:
        return lines + [f"  ({request['missing']})"]
    cost = request.get("cost_usd")
    lines.append(f"  {request['purpose']} · {request['model']} · finish {request['finish_reason']}"
                 f" · {request['prompt_tokens']} prompt + {request['completion_tokens']} "
                 f"completion tokens" + (f" · ${cost:.6f}" if cost is not None else ""))
    prompt = request.get("prompt")
    lines += ["  --- prompt ---", *("  " + p for p in (prompt or "(not journaled)").splitlines()),
              "  --- completion ---", *("  " + c for c in request["completion"].splitlines())]
    return lines


def trace_text(trace: dict) -> str:
    """The trace for people: headings, the decisions as a checklist, texts indented."""
    if trace["kind"] == "seed_task":
        lines = [f"{trace['id']}: a human seed task", f"  {trace['instruction']}"]
    else:
        cand = trace["candidate"]
        lines = [f"{trace['id']} ({trace['kind']}) from {trace['round']}",
                 f"  instruction: {cand['instruction']}",
                 f"  candidate {cand['candidate_id']} at position {cand['position']}; "
                 f"task {cand['task_id'] or '–'}; {cand['status']}"
                 + (f" ({cand['reject_reason']})" if cand["reject_reason"] else "")]
        if "instance" in trace:
            inst = trace["instance"]
            lines.append(f"  instance {inst['instance_id']}: {inst['status']}"
                         + (f" ({inst['drop_reason']})" if inst["drop_reason"] else ""))
        lines += ["", "Decisions:"]
        mark = {PASSED: "✓", REMOVED: "✗", NOT_REACHED: "·"}
        for d in trace["decisions"]:
            lines.append(f"  {mark[d['outcome']]} {d['label']}"
                         + (f" — {d['detail']}" if d["detail"] else ""))
        if trace["most_similar"]:
            lines += ["", "Most similar (ROUGE-L):"]
            lines += [f"  {s['score']:.3f}  {s['task_id']}  {s['instruction']}"
                      for s in trace["most_similar"]]
        lines += ["", "In-context tasks:"]
        lines += [f"  {t['task_id']} ({t['origin'] or '?'}): {t['instruction']}"
                  for t in trace["in_context"]]
        lines += ["", *_request_lines("Generation", trace["generation_request"])]
        if trace["classification"]:
            lines += ["", *_request_lines("Classification", trace["classification"]["request"])]
        if trace["instances"]:
            lines += ["", "Instances:"]
            lines += [f"  {i['instance_id']} {i['status']}"
                      + (f" ({i['drop_reason']})" if i["drop_reason"] else "")
                      + f": input {i['input']!r} → output {i['output']!r}"
                      for i in trace["instances"]]
            lines += ["", *_request_lines("Instances", trace["instances_request"])]
        lines += ["", f"In the pool: {'yes' if trace['in_pool'] else 'no'}"]
    uses = trace["used_in_context_by"]
    lines += ["", f"Used in context by {len(uses)} later request(s)"
              + (":" if uses else ".")]
    lines += [f"  {u['round']} request {u['request_id']} ({u['candidates']} candidates)"
              for u in uses]
    return "\n".join(lines) + "\n"
