"""Round size and threshold of unattended rounds, and how launched runs execute their steps."""

from __future__ import annotations

import pytest

from sipipeline.defs import build_defs
from sipipeline.defs.jobs import ROUND_JOB_NAME
from sipipeline.defs.partitions import round_key
from sipipeline.defs.resources import EmbeddedModelResource
from sipipeline.defs.round_defaults import (
    NUM_PROMPTS_ENV,
    SIMILARITY_THRESHOLD_ENV,
    RoundDefaultsError,
    round_run_config,
    round_run_config_from_env,
)


def test_round_defaults_come_from_the_environment():
    assert round_run_config_from_env({}) == {}
    config = round_run_config_from_env({NUM_PROMPTS_ENV: " 3 ", SIMILARITY_THRESHOLD_ENV: "0.6"})
    assert config == {"ops": {"generated_instructions": {
        "config": {"num_prompts": 3, "similarity_threshold": 0.6}}}}


@pytest.mark.parametrize("environ, message", [
    ({NUM_PROMPTS_ENV: "many"}, NUM_PROMPTS_ENV),
    ({NUM_PROMPTS_ENV: "0"}, "at least 1"),
    ({SIMILARITY_THRESHOLD_ENV: "1.5"}, "(0, 1]"),
    ({SIMILARITY_THRESHOLD_ENV: "high"}, SIMILARITY_THRESHOLD_ENV),
])
def test_unusable_round_defaults_are_refused_by_name(environ, message):
    with pytest.raises(RoundDefaultsError, match=message.replace("(", r"\(").replace("]", r"\]")):
        round_run_config_from_env(environ)


def test_the_round_job_carries_the_defaults_and_launched_runs_fork_their_steps(tmp_path):
    defs = build_defs(str(tmp_path), EmbeddedModelResource(),
                      round_config=round_run_config(num_prompts=4))
    job = defs.resolve_job_def(ROUND_JOB_NAME)
    defaults = job.partitioned_config.get_run_config_for_partition_key(round_key(2))
    assert defaults["ops"]["generated_instructions"]["config"] == {"num_prompts": 4}
    assert job.executor_def.name == "multiprocess_forkserver"
    plain = build_defs(str(tmp_path), EmbeddedModelResource()).resolve_job_def(ROUND_JOB_NAME)
    # Without defaults the round runs with the paper's values (GenerationConfig's defaults).
    assert plain.partitioned_config.get_run_config_for_partition_key(round_key(2)) == {}
