"""The project's definitions (`build_defs`) on a persistent test instance, a fake model and
temporary storage: runs the round job (assets + checks) in process and reads what it stored."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from sipipeline.defs import build_defs
from sipipeline.defs.jobs import bootstrap_round_job
from sipipeline.defs.partitions import bootstrap_rounds, round_key
from sipipeline.defs.resources import ModelResource, OpenAIEndpointResource
from sipipeline.defs.storage import RoundStore
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer


class RoundJobHarness:
    """One instance, one storage folder, one fake model endpoint; the real definitions."""

    def __init__(self, home: Path, storage: Path, server: FakeOpenAIServer,
                 llm: ModelResource | None = None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.server = server
        self.store = RoundStore(base_path=str(storage))
        self.instance = dg.DagsterInstance.local_temp(tempdir=str(home))
        self.use_model(llm or OpenAIEndpointResource(
            base_url=server.base_url, api_key="test-key", model="fake-model", max_in_flight=4))

    def use_model(self, llm: ModelResource) -> None:
        """Rebuild the definitions around another model resource."""
        self.defs = build_defs(str(self.storage), llm)
        self.resources = self.defs.resources
        self.job = self.defs.resolve_job_def(bootstrap_round_job.name)

    def run_round(self, number: int, num_prompts: int = 3, random_seed: int = 0,
                  extra_config: dict | None = None, tags: dict[str, str] | None = None,
                  raise_on_error: bool = False) -> dg.ExecuteInProcessResult:
        """The whole round job (six assets and their checks) for round `number`."""
        key = round_key(number)
        self.instance.add_dynamic_partitions(bootstrap_rounds.name, [key])
        config: dict = {"ops": {"generated_instructions": {
            "config": {"num_prompts": num_prompts, "random_seed": random_seed}}}}
        for op, op_config in (extra_config or {}).items():
            config["ops"][op] = op_config
        return self.job.execute_in_process(partition_key=key, instance=self.instance,
                                           run_config=config, raise_on_error=raise_on_error,
                                           tags=tags)

    def materialize(self, assets: list, partition_key: str | None = None,
                    run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        """A subset of the assets, with the definitions' resources."""
        return dg.materialize(assets, partition_key=partition_key, instance=self.instance,
                              resources=self.resources, run_config=run_config,
                              raise_on_error=False)

    def read(self, asset: str, number: int) -> pd.DataFrame:
        return self.store.read(asset, round_key(number))

    def status(self, asset: str, number: int) -> StaleStatus:
        """Dagster's staleness of one round partition (as the UI shows it)."""
        graph = self.defs.resolve_asset_graph()
        view = AssetGraphView(
            temporal_context=TemporalContext(effective_dt=get_current_datetime(),
                                             last_event_id=None),
            instance=self.instance, asset_graph=graph)
        resolver = CachingStaleStatusResolver(self.instance, graph, loading_context=view)
        return resolver.get_status(dg.AssetKey(asset), round_key(number))

    def close(self) -> None:
        self.instance.dispose()
