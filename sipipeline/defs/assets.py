"""The six round assets (thin wrappers that wire the method's functions to storage and the
model) and the step that closes a round."""


import json
from pathlib import Path

import dagster as dg
import pandas as pd

from sipipeline.defs.automation import done_rounds
from sipipeline.defs.batch_metadata import batch_metadata, failure_metadata
from sipipeline.defs.checks import ROUND_CHECKS
from sipipeline.defs.config import (
    ClassificationConfig,
    ExportConfig,
    GenerationConfig,
    InstanceConfig,
    SeedPoolConfig,
    validate_round_config,
)
from sipipeline.defs.metadata import (
    SIMILARITY_THRESHOLD,
    metadata_from,
    table_output,
)
from sipipeline.defs.novelty_index import keep_next_encoding, pool_encoding
from sipipeline.defs.partitions import (
    bootstrap_rounds,
    ensure_round_partition,
    next_round_key,
    previous_round_key,
    round_key,
    round_number,
)
from sipipeline.defs.progress_log import stage_progress
from sipipeline.defs.resources import ModelResource
from sipipeline.defs.storage import (
    VERSION_ATTR,
    MissingRoundError,
    RoundStore,
    is_remote,
    location_url,
)
from sipipeline.method import parse_report, prompts, rounds
from sipipeline.method.chat_prompts import StagePrompt
from sipipeline.method.funnel import funnel_lines
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.method.vocabulary import InstanceStatus, Origin
from sipipeline.method.yield_guard import YieldGuard, generate_guarded
from sipipeline.model.client import ModelClient
from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams
from sipipeline.reporting.facts import with_task_facts

GROUP = "self_instruct"
LLM_POOL = "llm_api"
LLM_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL,
                           jitter=dg.Jitter.PLUS_MINUS)

#: Shared by the assets that call the model: one concurrency pool across runs, step retries.
MODEL_CALLING = {
    "partitions_def": bootstrap_rounds,
    "group_name": GROUP,
    "pool": LLM_POOL,
    "retry_policy": LLM_RETRY,
    "kinds": {"parquet", "openai"},
}

round_handoff = dg.AssetSpec(
    "round_handoff",
    partitions_def=bootstrap_rounds,
    group_name=GROUP,
    description="The pool handed from round N−1 to round N. Observed (with a content-hash data "
                "version) by `filtered_tasks` of the previous round, so re-running a round marks "
                "the next round's `seed_pool` stale.",
)


def _usage_metadata(client: ModelClient, purpose: str) -> dict:
    usage = client.usage(purpose)
    metadata = {f"llm/{name}": dg.MetadataValue.float(float(getattr(usage, name)))
                for name in ("requests", "prompt_tokens", "completion_tokens", "cached_tokens",
                             "journal_hits", "cost_usd")}
    metadata["llm/model"] = dg.MetadataValue.text(client.model_name)
    # The keys of the dagster-openai integration, which Insights and dashboards read.
    metadata["openai.calls"] = dg.MetadataValue.int(usage.requests)
    metadata["openai.prompt_tokens"] = dg.MetadataValue.int(usage.prompt_tokens)
    metadata["openai.completion_tokens"] = dg.MetadataValue.int(usage.completion_tokens)
    metadata["openai.total_tokens"] = dg.MetadataValue.int(
        usage.prompt_tokens + usage.completion_tokens)
    metadata["sipipeline/cost_usd"] = dg.MetadataValue.float(float(usage.cost_usd))
    estimate = client.estimated(purpose)
    if estimate is not None:
        # The cost plan's estimate, made before the call, next to what it cost.
        metadata["sipipeline/estimated_cost_usd"] = dg.MetadataValue.float(
            float(estimate.cost_usd(client.config.price)))
        metadata["sipipeline/estimated_requests"] = dg.MetadataValue.int(estimate.requests)
        metadata["sipipeline/estimated_tokens"] = dg.MetadataValue.int(
            estimate.prompt_tokens + estimate.completion_tokens)
        metadata["sipipeline/estimate_basis"] = dg.MetadataValue.text(estimate.basis)
    metadata.update(batch_metadata(client, purpose))
    return metadata


def _client(llm: ModelResource, store: RoundStore) -> ModelClient:
    return llm.get_client(journal_path=str(store.journal_path()))


def _complete(client: ModelClient, requests: list[CompletionRequest],
              purpose: str) -> list[rounds.ModelText]:
    """Call the model; errors that a retry cannot fix (auth, budget) fail without retries."""
    client.estimate(requests, purpose)
    try:
        completions = client.complete(requests, purpose=purpose, progress=stage_progress())
    except ModelAccessError as error:
        raise dg.Failure(description=f"{purpose}: {error}", metadata=failure_metadata(error),
                         allow_retries=bool(getattr(error, "retryable", True))) from error
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as interrupt:
        # SIGINT/SIGTERM: the client has stopped and journaled what arrived. The step's retry
        # policy would otherwise start it again and the run would never stop.
        raise dg.Failure(description=f"{purpose}: interrupted by a signal; every answer "
                         "received is journaled, run again to continue",
                         allow_retries=False) from interrupt
    return _texts(completions)


def _stage_request(stage: StagePrompt, params: SamplingParams) -> CompletionRequest:
    """The request of one stage prompt: its chat messages and answer schema, if any."""
    return CompletionRequest(stage.text, params, messages=stage.messages,
                             response_format=stage.response_format)


def _parse_metadata(style: str, report: dict) -> dict:
    """How the stage's answers were read: prompt style, parsers used, parse-failure share."""
    return metadata_from({"style": str(style), **report}, prefix="parse/")


def _texts(completions: list[list]) -> list[rounds.ModelText]:
    return [rounds.ModelText(c[0].text, c[0].finish_reason, c[0].request_key)
            for c in completions]


@dg.asset(
    partitions_def=bootstrap_rounds,
    group_name=GROUP,
    deps=[round_handoff],
    kinds={"parquet"},
    description="The task pool at the start of the round: the 175 human seed tasks in round 1, "
                "the previous round's `filtered_tasks` after that.",
)
def seed_pool(context: dg.AssetExecutionContext, config: SeedPoolConfig,
              round_store: RoundStore) -> dg.Output:
    # The round's first step: a bad value anywhere in the run config stops it here, before
    # any model call and without retries, whoever started the run.
    validate_round_config(context.run.run_config)
    key = context.partition_key
    previous = previous_round_key(key)
    if previous is None:
        pool = load_seed_tasks(config.seed_file)
        source = config.seed_file
    else:
        pool = round_store.read("filtered_tasks", previous)
        source = str(round_store.path("filtered_tasks", previous))
        if round_number(previous) not in done_rounds(context.instance):
            # Its file may hold the pool of a run whose checks failed: never build on it.
            raise dg.Failure(
                description=f"{previous} is not done (its latest run did not succeed, or it "
                            f"never handed its pool on): run {previous} again before {key}",
                allow_retries=False)
    judge_filter: dict = {}
    if previous is not None and config.drop_judge_invalid:
        from sipipeline.defs.review import judge_filtered_pool
        pool, judge_filter = judge_filtered_pool(pool, previous, round_store)
        pool.attrs = {}  # no longer the previous round's pool as stored
    machine = int((pool["origin"] == Origin.MACHINE).sum())
    return table_output(pool, "seed_pool", ["task_id", "origin", "round", "instruction"], {
        "source": dg.MetadataValue.text(source),
        "seed_tasks": dg.MetadataValue.int(len(pool) - machine),
        "machine_tasks": dg.MetadataValue.int(machine),
        **judge_filter,
    }, data_version=pool.attrs.get(VERSION_ATTR))


@dg.asset(
    **MODEL_CALLING,
    description="Every instruction the model proposed this round, kept or not, with the reason "
                "it was rejected (heuristics, ROUGE-L > threshold) and its lineage.",
)
def generated_instructions(context: dg.AssetExecutionContext, config: GenerationConfig,
                           seed_pool: pd.DataFrame, llm: ModelResource,
                           round_store: RoundStore) -> dg.Output:
    number = round_number(context.partition_key)
    style = llm.prompt_style()
    planned = rounds.plan_generation_prompts(
        seed_pool, number, config.num_prompts, config.num_examples,
        config.num_machine_examples, config.random_seed, style=style)
    # A chat answer is not a list continuation: the list's stops would cut it after a preamble.
    stops = (() if rounds.is_chat(style)
             else prompts.generation_stop_sequences(prompts.list_end(config.num_examples)))
    params = SamplingParams(
        max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p,
        presence_penalty=config.presence_penalty, frequency_penalty=config.frequency_penalty,
        stop=stops)
    client = _client(llm, round_store)
    requests = [CompletionRequest(p.prompt, params, sampling_seed=config.random_seed,
                                  messages=p.messages, response_format=p.response_format)
                for p in planned]
    encoded_pool = pool_encoding(round_store, seed_pool)  # kept from the previous round
    guarded = generate_guarded(
        requests, YieldGuard(config.yield_guard_requests, config.yield_guard_min_accepted_share),
        lambda part: _complete(client, list(part), "generated_instructions"),
        lambda sent, responses: rounds.generated_candidates(
            planned[:sent], responses, seed_pool, number, client.model_name,
            config.similarity_threshold, style=style, encoded_pool=encoded_pool))
    generated = guarded.generated
    funnel = rounds.rejection_funnel(generated, guarded.requests_sent)
    context.log.info(f"{context.partition_key} funnel: {json.dumps(funnel)}")
    if guarded.check is not None:
        log = context.log.warning if guarded.check.stopped else context.log.info
        log(f"{context.partition_key} {guarded.check.message()}")
    extra = {f"funnel/{name}": dg.MetadataValue.int(count) for name, count in funnel.items()}
    extra[SIMILARITY_THRESHOLD] = dg.MetadataValue.float(config.similarity_threshold)
    extra["funnel"] = dg.MetadataValue.md(
        pd.DataFrame({"stage": list(funnel), "count": list(funnel.values())})
        .to_markdown(index=False))
    extra.update(_usage_metadata(client, "generated_instructions"))
    extra.update(_parse_metadata(style, parse_report.generation_parse_report(generated)))
    if guarded.check is not None:
        extra.update(metadata_from(guarded.check.as_metadata(), prefix="yield_guard/"))
    return table_output(generated, "generated_instructions",
                        ["status", "reject_reason", "max_rouge_l", "instruction"], extra)


@dg.asset(
    **MODEL_CALLING,
    description="Whether each accepted instruction is a classification task (few-shot, "
                "12 Yes / 19 No examples from the seed tasks).",
)
def classification_labels(config: ClassificationConfig, seed_pool: pd.DataFrame,
                          generated_instructions: pd.DataFrame, llm: ModelResource,
                          round_store: RoundStore) -> dg.Output:
    accepted = rounds.accepted_candidates(generated_instructions)
    examples = prompts.FewShotExamples.from_seeds(_human_seeds(seed_pool))
    style = llm.prompt_style()
    stages = [rounds.classification_prompt(examples, i, style) for i in accepted["instruction"]]
    texts = [stage.text for stage in stages]
    # A chat answer may open with reasoning or Markdown on its own line: no newline stop.
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature,
                            stop=(() if rounds.is_chat(style)
                                  else prompts.CLASSIFICATION_STOP_SEQUENCES))
    client = _client(llm, round_store)
    responses = _complete(client, [_stage_request(stage, params) for stage in stages],
                          "classification_labels")
    labels = rounds.classification_frame(accepted, texts, responses, client.model_name, style)
    extra = {"classification_tasks": dg.MetadataValue.int(int(labels["is_classification"].sum()))}
    extra.update(_usage_metadata(client, "classification_labels"))
    extra.update(_parse_metadata(style, parse_report.classification_parse_report(labels)))
    return table_output(labels, "classification_labels",
                        ["task_id", "is_classification", "raw_answer", "instruction"], extra)


def _human_seeds(pool: pd.DataFrame) -> pd.DataFrame:
    """The human seed tasks of a pool (few-shot examples come only from them)."""
    return pool[pool["origin"] == Origin.SEED].reset_index(drop=True)


@dg.asset(
    **MODEL_CALLING,
    description="Instances for each accepted task: input-first for ordinary tasks, output-first "
                "(class label, then input) for classification tasks; every parsed instance with "
                "the reason it was dropped.",
)
def instances(config: InstanceConfig, seed_pool: pd.DataFrame,
              classification_labels: pd.DataFrame, llm: ModelResource,
              round_store: RoundStore) -> dg.Output:
    examples = prompts.FewShotExamples.from_seeds(_human_seeds(seed_pool))
    style = llm.prompt_style()
    requests, texts = [], []
    # A task whose classification answer could not be read gets no request (and no guess).
    for row in rounds.labelled_tasks(classification_labels).itertuples():
        stage = rounds.instance_stage_prompt(examples, row.instruction,
                                             bool(row.is_classification), style)
        max_tokens = (config.max_tokens_output_first if row.is_classification
                      else config.max_tokens_input_first)
        params = SamplingParams(max_tokens=max_tokens, temperature=config.temperature,
                                top_p=config.top_p, presence_penalty=config.presence_penalty,
                                stop=(() if rounds.is_chat(style)
                                      else prompts.INSTANCE_STOP_SEQUENCES))
        texts.append(stage.text)
        requests.append(_stage_request(stage, params))
    client = _client(llm, round_store)
    responses = _complete(client, requests, "instances")
    frame = rounds.instances_frame(classification_labels, texts, responses, client.model_name,
                                   style)
    kept = frame[frame["status"] == InstanceStatus.KEPT]
    reasons = frame["drop_reason"].dropna().value_counts()
    extra = {
        "kept_instances": dg.MetadataValue.int(len(kept)),
        "tasks_with_instances": dg.MetadataValue.int(kept["task_id"].nunique()),
        **{f"dropped/{r}": dg.MetadataValue.int(int(c)) for r, c in reasons.items()},
    }
    extra.update(_usage_metadata(client, "instances"))
    extra.update(_parse_metadata(style, parse_report.instances_parse_report(frame)))
    return table_output(frame, "instances",
                        ["task_id", "status", "drop_reason", "input", "output"], extra)


@dg.asset(
    partitions_def=bootstrap_rounds,
    group_name=GROUP,
    kinds={"parquet"},
    description="The cumulative pool after the round: the starting pool plus this round's "
                "accepted tasks that have at least one valid instance.",
)
def filtered_tasks(context: dg.AssetExecutionContext, seed_pool: pd.DataFrame,
                   generated_instructions: pd.DataFrame, classification_labels: pd.DataFrame,
                   instances: pd.DataFrame, round_store: RoundStore) -> dg.Output:
    # The statistics' per-task facts are computed here, once, for the tasks that enter the pool.
    pool = with_task_facts(rounds.next_pool(seed_pool, generated_instructions,
                                            classification_labels, instances),
                           from_row=len(seed_pool) if previous_round_key(context.partition_key)
                           else 0)
    version = round_store.version_for("filtered_tasks", context.partition_key, pool)
    keep_next_encoding(round_store, seed_pool, pool, version)  # for the next round's filter
    added = len(pool) - len(seed_pool)
    return table_output(pool, "filtered_tasks", ["task_id", "origin", "round", "instruction"], {
        "pool_size": dg.MetadataValue.int(len(pool)),
        "added_this_round": dg.MetadataValue.int(added),
        "machine_tasks": dg.MetadataValue.int(int((pool["origin"] == Origin.MACHINE).sum())),
    }, data_version=version)


@dg.asset(
    partitions_def=bootstrap_rounds,
    group_name=GROUP,
    kinds={"parquet", "html"},
    description="Statistics of the round and of the dataset so far (the paper's figures): "
                "funnel, classification share, instances per task, lengths, ROUGE-L to the "
                "nearest seed, verb–noun diversity; plots embedded in the metadata, and an HTML "
                "report file for sharing.",
)
def dataset_stats(context: dg.AssetExecutionContext, filtered_tasks: pd.DataFrame,
                  generated_instructions: pd.DataFrame, classification_labels: pd.DataFrame,
                  instances: pd.DataFrame, round_store: RoundStore) -> dg.Output:
    from sipipeline.reporting.render import render_round_report
    from sipipeline.reporting.stats import compute_dataset_stats
    from sipipeline.reporting.ui_markdown import stats_markdown

    key = context.partition_key
    previous = previous_round_key(key)
    previous_table = (round_store.read("dataset_stats", previous)
                      if previous and round_store.exists("dataset_stats", previous) else None)
    stats = compute_dataset_stats(filtered_tasks, generated_instructions, round_number(key),
                                  previous_table, classification_labels, instances)
    files = render_round_report(stats, filtered_tasks, round_number(key),
                                round_store.local_dir(f"reports/{key}"))
    context.log.info(f"{key} funnel:\n" + "\n".join(funnel_lines(stats.funnel())))
    # What people read comes first; the raw numbers (for plots across rounds) after it.
    figures = {name: Path(path).read_bytes() for name, path in files.items() if name != "html"}
    files = round_store.published_files(f"reports/{key}", files)  # to the base when remote
    metadata: dict = {name: dg.MetadataValue.md(text)
                      for name, text in stats_markdown(stats, figures).items()}
    if "html" in files:  # the self-contained page, for sharing (the plots are embedded above)
        metadata["report_file"] = dg.MetadataValue.path(str(files["html"]))
        if is_remote(files["html"]):
            metadata["report"] = dg.MetadataValue.url(location_url(files["html"]))
    metadata["dagster/row_count"] = dg.MetadataValue.int(len(stats.table))
    metadata.update(metadata_from(stats.metadata, prefix="stats/"))
    return dg.Output(stats.table, metadata=metadata)


ROUND_STEPS = (seed_pool, generated_instructions, classification_labels, instances,
               filtered_tasks, dataset_stats)


def _partial_round_reason(run: dg.DagsterRun) -> str | None:
    """Why a run cannot mark its round done: it left out some of the round's assets or checks."""
    needed_assets = {step.key for step in ROUND_STEPS}
    needed_checks = {key for checks in ROUND_CHECKS for key in checks.check_keys}
    left_out = sorted(key.to_user_string() for key in needed_assets
                      - set(run.asset_selection or needed_assets))
    left_out += sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key in needed_checks
                       - set(needed_checks if run.asset_check_selection is None
                             else run.asset_check_selection))
    if not left_out:
        return None
    return ("a round is done only after a run of the whole round (bootstrap_round_job) with "
            f"every check; this run left out {', '.join(left_out)}")


@dg.asset(
    partitions_def=bootstrap_rounds,
    group_name=GROUP,
    deps=[dataset_stats],
    description="Round N is done: the last step of its run, reached only when every asset and "
                "check of the round succeeded. It adds round N+1's partition and observes "
                "`round_handoff[N+1]` with the pool's content version, so nothing builds on a "
                "round that failed.",
)
def round_completion(context: dg.AssetExecutionContext, filtered_tasks: pd.DataFrame,
                     round_store: RoundStore) -> dg.MaterializeResult:
    reason = _partial_round_reason(context.run)
    if reason is not None:
        raise dg.Failure(description=f"{context.partition_key} not marked done: {reason}",
                         allow_retries=False)
    next_key = next_round_key(context.partition_key)
    ensure_round_partition(context.instance, next_key)
    pool_size = dg.MetadataValue.int(len(filtered_tasks))
    context.log_event(dg.AssetObservation(
        asset_key=round_handoff.key, partition=next_key,
        metadata={"from_round": dg.MetadataValue.text(context.partition_key),
                  "pool_size": pool_size},
        tags={"dagster/data_version": round_store.info("filtered_tasks",
                                                       context.partition_key).version},
    ))
    return dg.MaterializeResult(metadata={"next_round": dg.MetadataValue.text(next_key),
                                          "pool_size": pool_size})


@dg.asset(
    deps=[round_completion],
    group_name="exports",
    kinds={"json", "parquet"},
    description="Fine-tuning files from the latest done round's cumulative pool: instruction/input/"
                "output JSONL, GPT-3-style prompt/completion JSONL, Alpaca JSON, OpenAI chat "
                "JSONL and Parquet, with a dataset card and a reproducible train/validation split.",
)
def fine_tuning_exports(context: dg.AssetExecutionContext, config: ExportConfig,
                        round_store: RoundStore) -> dg.MaterializeResult:
    from sipipeline.reporting.exports import export_dataset

    done = [round_key(number) for number in done_rounds(context.instance)]
    if not done:
        raise MissingRoundError("no round is done yet (a round is done when its whole run "
                                "succeeded): nothing to export")
    latest = done[-1]
    pool = round_store.read("filtered_tasks", latest)
    machine = pool[pool["origin"] == Origin.MACHINE]
    card_info = {
        "rounds": len(done),
        "latest_round": latest,
        "model": ", ".join(sorted(set(machine["model"]))) or "none",
        "parameters": {"include_seeds": config.include_seeds,
                       "validation_fraction": config.validation_fraction,
                       "split_seed": config.split_seed},
    }
    out_dir = round_store.local_dir("exports")
    written = export_dataset(pool, out_dir, formats=config.formats,
                             include_seeds=config.include_seeds,
                             validation_fraction=config.validation_fraction,
                             seed=config.split_seed, card_info=card_info)
    location = round_store.publish("exports")  # to the base when it is remote
    context.log.info(f"exported {latest} ({len(pool)} tasks) to {location}")
    metadata = {
        "source_round": dg.MetadataValue.text(latest),
        "machine_tasks": dg.MetadataValue.int(len(machine)),
        "out_dir": dg.MetadataValue.path(location),
    }
    for fmt, paths in written.items():
        metadata[f"files/{fmt}"] = dg.MetadataValue.md(
            "\n".join(f"- `{round_store.published('exports', p)}`" for p in paths))
    return dg.MaterializeResult(metadata=metadata)
