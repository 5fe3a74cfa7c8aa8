"""The quality review in Dagster: a judge model's verdicts on a sample of each round
(`quality_review`), people's verdicts imported from Label Studio (`human_review`), the judge
resource, and the optional judge filter applied when the next round takes over the pool.

Neither asset is in the round job, and the next round's `seed_pool` does not read them unless
the judge filter is switched on: a review never holds up the rounds.
"""

import os
from collections.abc import Mapping

import dagster as dg
import pandas as pd
from pydantic import Field

from sipipeline.defs.metadata import metadata_from, table_output
from sipipeline.defs.partitions import bootstrap_rounds, round_number
from sipipeline.defs.resources import (
    EmbeddedModelResource,
    ModelResource,
    OpenAIEndpointResource,
)
from sipipeline.defs.storage import MissingRoundError, RoundStore
from sipipeline.method import quality, review
from sipipeline.method.rounds import ModelText
from sipipeline.method.vocabulary import DropReason, QualityRating, RejectReason
from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams, Usage

JUDGE_BASE_URL_ENV = "SIPIPELINE_JUDGE_BASE_URL"
JUDGE_API_KEY_ENV = "SIPIPELINE_JUDGE_API_KEY"
JUDGE_MODEL_ENV = "SIPIPELINE_JUDGE_MODEL"
JUDGE_API_MODE_ENV = "SIPIPELINE_JUDGE_API"
DEFAULT_JUDGE_API = "chat"  # judge endpoints are mostly chat models
DEFAULT_JUDGE_MODEL = "gpt-4o-mini"
REVIEW_GROUP = "quality"
PURPOSE = "quality_review"
PREVIEW = ["task_id", "valid_instruction", "appropriate_input", "correct_output", "reason",
           "parse_error"]


def judge_resource_from_env(generator: ModelResource,
                            environ: Mapping[str, str] | None = None) -> ModelResource:
    """The judge's model resource.

    SIPIPELINE_JUDGE_BASE_URL (with SIPIPELINE_JUDGE_API_KEY, SIPIPELINE_JUDGE_MODEL and
    SIPIPELINE_JUDGE_API; default gpt-4o-mini over chat) names a separate endpoint, with the
    generator's budget.
    Without it the judge is the generator's model resource, with SIPIPELINE_JUDGE_MODEL,
    SIPIPELINE_JUDGE_API_KEY and SIPIPELINE_JUDGE_API overriding its model, key and API mode
    when set (for the embedded engine SIPIPELINE_JUDGE_MODEL is a GGUF file). Values are passed
    as `dg.EnvVar`, so the key never appears in config or the UI.
    """
    environ = os.environ if environ is None else environ
    embedded = isinstance(generator, EmbeddedModelResource) and not environ.get(
        JUDGE_BASE_URL_ENV)
    variables = ((JUDGE_MODEL_ENV, "model_path"), (JUDGE_API_MODE_ENV, "api")) if embedded \
        else ((JUDGE_API_KEY_ENV, "api_key"), (JUDGE_MODEL_ENV, "model"),
              (JUDGE_API_MODE_ENV, "api"))
    overrides = {field: dg.EnvVar(name) for name, field in variables if environ.get(name)}
    if environ.get(JUDGE_BASE_URL_ENV):
        budget = {"budget_usd": generator.budget_usd} if generator.budget_usd is not None else {}
        return OpenAIEndpointResource(**{"api": DEFAULT_JUDGE_API, "model": DEFAULT_JUDGE_MODEL,
                                         **budget,
                                         "base_url": dg.EnvVar(JUDGE_BASE_URL_ENV),
                                         **overrides})
    if not overrides:
        return generator
    inherited = {name: getattr(generator, name) for name in generator.model_fields_set}
    return type(generator)(**{**inherited, **overrides})


class QualityReviewConfig(dg.Config):
    sample_size: int = Field(
        default=review.DEFAULT_SAMPLE_SIZE, ge=1,
        description="Machine tasks of the round to review (the paper reviewed 200).")
    sample_seed: int = Field(default=0, description="Seeds the stratified sample.")
    max_tokens: int = Field(default=200, ge=16, description="Length of a judge answer.")
    temperature: float = 0.0


class HumanReviewConfig(dg.Config):
    export_file: str = Field(description="A Label Studio JSON export of a review set.")


def _journal(store: RoundStore) -> str:
    return str(store.local_dir("journal") / "llm_journal.sqlite")


def _usage(usage: Usage, model: str) -> dict[str, dg.MetadataValue]:
    metadata = {f"llm/{name}": dg.MetadataValue.float(float(value))
                for name, value in usage.as_dict().items()
                if name in ("requests", "journal_hits", "prompt_tokens", "completion_tokens",
                            "cost_usd")}
    metadata["llm/model"] = dg.MetadataValue.text(model)
    return metadata


def _report(store: RoundStore, key: str, name: str, title: str, intro: str,
            table: pd.DataFrame, verdicts: pd.DataFrame,
            agreement: pd.DataFrame | None = None) -> dict[str, dg.MetadataValue]:
    from sipipeline.reporting.review_report import render_review_report

    path = render_review_report(title, intro, table, verdicts,
                                store.local_dir(f"reports/{key}") / f"{name}.html", agreement)
    return {"report": dg.MetadataValue.url(f"file://{path}"),
            "report/html": dg.MetadataValue.path(str(path))}


def _table_metadata(table: pd.DataFrame, heading: str) -> dict[str, dg.MetadataValue]:
    from sipipeline.reporting.review_report import quality_markdown

    return {"quality": dg.MetadataValue.md(f"### {heading}\n\n{quality_markdown(table)}"),
            **metadata_from(quality.table_metadata(table), prefix="quality/")}


@dg.asset(
    partitions_def=bootstrap_rounds,
    group_name=REVIEW_GROUP,
    pool="llm_api",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    kinds={"parquet", "openai"},
    description="A judge model's answers to the paper's three questions (valid instruction, "
                "appropriate input, correct output) for a seeded, stratified sample of the "
                "round's new machine tasks, one instance each; the quality table with 95% "
                "intervals beside the paper's 92% / 79% / 58%. Not part of the round job.",
)
def quality_review(context: dg.AssetExecutionContext, config: QualityReviewConfig,
                   filtered_tasks: pd.DataFrame, judge_llm: ModelResource,
                   round_store: RoundStore) -> dg.Output:
    key = context.partition_key
    records = review.review_sample(filtered_tasks, round_number(key), config.sample_size,
                                   config.sample_seed)
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature,
                            stop=review.JUDGE_STOP_SEQUENCES)
    requests = [CompletionRequest(review.judge_prompt(r.instruction, r.input, r.output), params)
                for r in records.itertuples()]
    client = judge_llm.get_client(journal_path=_journal(round_store))
    try:
        completions = client.complete(requests, purpose=PURPOSE)
    except ModelAccessError as error:
        raise dg.Failure(description=f"{PURPOSE}: {error}",
                         allow_retries=bool(getattr(error, "retryable", True))) from error
    responses = [ModelText(c[0].text, c[0].finish_reason) for c in completions]
    judged = review.judged_records(records, responses, client.model_name)
    table = quality.quality_table(judged)
    unparseable = int(judged["parse_error"].notna().sum())
    context.log.info(f"{key}: judged {len(judged)} records, {unparseable} with an "
                     "unparseable answer")
    extra: dict = {**_table_metadata(table, f"Quality of {key} (judge: {client.model_name})"),
                   "reviewed_records": dg.MetadataValue.int(len(judged)),
                   "records_with_unparseable_answer": dg.MetadataValue.int(unparseable),
                   **_usage(client.usage(PURPOSE), client.model_name)}
    extra.update(_report(round_store, key, "quality_review", f"Quality review of {key}",
                         f"Judge model {client.model_name}; {len(judged)} records sampled "
                         f"(seed {config.sample_seed}).", table, judged))
    return table_output(judged, "quality_review", PREVIEW, extra)


@dg.asset(
    partitions_def=bootstrap_rounds,
    group_name=REVIEW_GROUP,
    deps=[quality_review],
    kinds={"parquet"},
    description="People's answers to the same three questions, imported from a Label Studio "
                "JSON export (`sipipeline review import`); the same quality table and, where "
                "the judge reviewed the same records, Cohen's kappa per question.",
)
def human_review(context: dg.AssetExecutionContext, config: HumanReviewConfig,
                 round_store: RoundStore) -> dg.Output:
    from sipipeline.reporting.label_studio import human_records, read_export
    from sipipeline.reporting.review_report import agreement_markdown

    key = context.partition_key
    every_round = human_records(read_export(config.export_file))
    human = every_round[every_round["round"] == round_number(key)].reset_index(drop=True)
    if human.empty:
        raise dg.Failure(description=f"{config.export_file} has no submitted annotation of a "
                                     f"{key} record")
    table = quality.quality_table(human)
    extra: dict = {**_table_metadata(table, f"Quality of {key} (people)"),
                   "annotations": dg.MetadataValue.int(len(human)),
                   "annotators": dg.MetadataValue.int(human["reviewer"].nunique()),
                   "ratings": dg.MetadataValue.json(
                       {str(r): int((human["rating"] == r).sum()) for r in QualityRating}),
                   "source_file": dg.MetadataValue.path(config.export_file)}
    agreement = None
    if round_store.exists("quality_review", key):
        agreement = quality.agreement_table(human, round_store.read("quality_review", key))
        extra["agreement"] = dg.MetadataValue.md(agreement_markdown(agreement))
        extra.update(metadata_from(
            {f"{r.measure}/kappa": float(r.kappa) for r in agreement.itertuples()},
            prefix="agreement/"))
    extra.update(_report(round_store, key, "human_review", f"Human review of {key}",
                         f"{len(human)} annotations from Label Studio.", table, human,
                         agreement))
    return table_output(human, "human_review", PREVIEW, extra)


REVIEW_ASSETS = [quality_review, human_review]


def judge_filtered_pool(pool: pd.DataFrame, previous_key: str,
                        store: RoundStore) -> tuple[pd.DataFrame, dict[str, dg.MetadataValue]]:
    """The previous round's pool without what its judge review marked invalid (for
    `seed_pool` when `drop_judge_invalid` is on), and the funnel metadata saying what left."""
    if not store.exists("quality_review", previous_key):
        raise MissingRoundError(
            f"drop_judge_invalid is on but quality_review of {previous_key} is not "
            f"materialized: materialize it first, or switch the filter off")
    result = review.drop_judged_invalid(pool, store.read("quality_review", previous_key))
    return result.pool, {
        f"funnel/rejected_{RejectReason.JUDGE_INVALID}": dg.MetadataValue.int(
            len(result.removed_tasks)),
        f"funnel/dropped_instances_{DropReason.JUDGE_INVALID}": dg.MetadataValue.int(
            result.removed_instances),
        f"{RejectReason.JUDGE_INVALID}/task_ids": dg.MetadataValue.json(
            list(result.removed_tasks)),
    }
