"""Runs `bootstrap_round_job` (assets + checks) in process on a persistent test instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from sipipeline.definitions import ROUND_ASSETS, bootstrap_round_job
from sipipeline.defs import assets
from sipipeline.defs.automation import AUTOMATION_SCHEDULES, AUTOMATION_SENSORS
from sipipeline.defs.checks import ROUND_CHECKS
from sipipeline.defs.partitions import bootstrap_rounds, round_key
from sipipeline.defs.resources import LLMResource
from sipipeline.defs.round_store import RoundStore
from sipipeline.defs.storage import ParquetIOManager, read_parquet
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer


class RoundJobHarness:
    """The project's job, checks and automation, wired to a fake model and temp storage."""

    def __init__(self, home: Path, storage: Path, server: FakeOpenAIServer,
                 llm: LLMResource | None = None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.instance = dg.DagsterInstance.local_temp(tempdir=str(home))
        self.defs = dg.Definitions(
            assets=[assets.round_handoff, *ROUND_ASSETS],
            asset_checks=ROUND_CHECKS,
            jobs=[bootstrap_round_job],
            sensors=AUTOMATION_SENSORS,
            schedules=AUTOMATION_SCHEDULES,
            resources={
                "io_manager": ParquetIOManager(base_path=str(storage)),
                "round_store": RoundStore(base_path=str(storage)),
                "llm": llm or LLMResource(base_url=server.base_url, api_key="test-key",
                                          model="fake-model", max_in_flight=4),
            },
        )
        self.job = self.defs.resolve_job_def(bootstrap_round_job.name)

    def run_round(self, number: int, num_prompts: int = 3, random_seed: int = 0,
                  extra_config: dict | None = None,
                  tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        key = round_key(number)
        self.instance.add_dynamic_partitions(bootstrap_rounds.name, [key])
        config: dict = {"ops": {"generated_instructions": {
            "config": {"num_prompts": num_prompts, "random_seed": random_seed}}}}
        for op, op_config in (extra_config or {}).items():
            config["ops"][op] = op_config
        return self.job.execute_in_process(partition_key=key, instance=self.instance,
                                           run_config=config, raise_on_error=False,
                                           tags=tags)

    def read(self, asset: str, number: int):
        return read_parquet(self.storage / asset / f"{round_key(number)}.parquet")

    def close(self) -> None:
        self.instance.dispose()
