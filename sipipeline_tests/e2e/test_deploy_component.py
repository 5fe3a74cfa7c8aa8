"""SelfInstructComponent: an example `dg` project (deploy/example) adds the pipeline from YAML.

The example project's defs.yaml is loaded the way Dagster loads any project's defs folder and
a round is materialized with its settings against a fake model on 127.0.0.1; the `dg` CLI
(dagster-dg-cli) lists and checks the project's definitions and scaffolds the component.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from sipipeline.defs.automation import SENSOR_NAME
from sipipeline.defs.batch_sensor import SENSOR_NAME as BATCH_SENSOR_NAME
from sipipeline.defs.component import SelfInstructComponent
from sipipeline.defs.jobs import ROUND_ASSETS
from sipipeline.defs.partitions import bootstrap_rounds, round_key
from sipipeline.defs.storage import RoundStore
from sipipeline_tests.support.dagster_daemon import DEPLOY_DIR, venv_command
from sipipeline_tests.support.dagster_dev import REPO_ROOT

EXAMPLE = DEPLOY_DIR / "example"
EXAMPLE_PACKAGE = EXAMPLE / "src" / "self_instruct_example"
COMPONENT_TYPE = "sipipeline.defs.component.SelfInstructComponent"
ROUND_SIZE_IN_EXAMPLE = 2


@pytest.fixture
def project_env(tmp_path, monkeypatch, server) -> dict[str, str]:
    """The example project's environment: the fake model, temporary storage and instance."""
    settings = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
                "SIPIPELINE_LLM_MODEL": "fake-model",
                "SIPIPELINE_STORAGE": str(tmp_path / "storage"),
                "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SIPIPELINE_LOCAL_DIR", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), str(EXAMPLE / "src"), os.environ.get("PYTHONPATH")) if p)}


def test_the_example_project_loads_the_component_from_yaml_and_materializes_a_round(
        project_env, server, tmp_path):
    defs = dg.load_from_defs_folder(path_within_project=EXAMPLE_PACKAGE)
    assert {a.key.path[-1] for a in ROUND_ASSETS} <= {
        key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert defs.resolve_sensor_def(SENSOR_NAME).default_status == dg.DefaultSensorStatus.STOPPED
    llm = defs.resources["llm"]
    assert llm.base_url == server.base_url and llm.model == "fake-model"

    job = defs.resolve_job_def("bootstrap_round_job")
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(bootstrap_rounds.name, [round_key(1)])
        # No run config: the round size comes from defs.yaml through the job's defaults.
        result = job.execute_in_process(partition_key=round_key(1), instance=instance)
    assert result.success
    store = RoundStore(base_path=str(tmp_path / "storage"))
    generated = store.read("generated_instructions", round_key(1))
    assert generated["request_id"].nunique() == ROUND_SIZE_IN_EXAMPLE
    assert len(store.read("filtered_tasks", round_key(1))) > 175
    # The key was read from the environment at run time and never written anywhere.
    assert "test-key" not in (tmp_path / "storage" / "filtered_tasks" / "round_001.parquet"
                              ).read_bytes().decode("latin-1")


def test_component_settings_reach_the_definitions(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "test-key")  # the sensor builds the model resource
    component = SelfInstructComponent.resolve_from_yaml(
        f"endpoint: http://127.0.0.1:9/v1\nllm_model: m\napi: chat\napi_key_env: MY_KEY\n"
        f"round_size: 5\nsimilarity_threshold: 0.5\nstorage: {tmp_path / 's'}\n"
        f"local_dir: {tmp_path / 'j'}\nsensor: true\n")
    defs = component.build_defs(dg.ComponentTree.for_test().load_context)
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    llm = defs.resources["llm"]
    assert (llm.base_url, llm.model, llm.api) == ("http://127.0.0.1:9/v1", "m", "chat")
    assert defs.resources["round_store"].base_path == str(tmp_path / "s")
    assert defs.resources["round_store"].local_dir("journal") == tmp_path / "j" / "journal"
    defaults = defs.resolve_job_def("bootstrap_round_job").partitioned_config
    generation = defaults.get_run_config_for_partition_key(round_key(1))["ops"][
        "generated_instructions"]["config"]
    assert generation == {"num_prompts": 5, "similarity_threshold": 0.5}
    # The switched-on sensor evaluates like the original one: round 1 on an empty instance.
    # (The sensor context is closed, so the instance it opened is not left current.)
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test())
        context = stack.enter_context(dg.build_sensor_context(
            instance_ref=instance.get_ref(), definitions=defs, sensor_name=SENSOR_NAME))
        stack.enter_context(partition_loading_context(dynamic_partitions_store=instance))
        result = sensor.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == [round_key(1)]
    with pytest.raises(Exception, match="round_size"):
        SelfInstructComponent.resolve_from_yaml("round_size: 0\n")


def _dg(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([venv_command("dg"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)


def test_dg_lists_and_checks_the_example_project_and_scaffolds_the_component(project_env,
                                                                             tmp_path):
    if shutil.which(venv_command("dg")) is None:
        pytest.skip("the dg CLI (dagster-dg-cli, in the deploy extra) is not installed")
    checked = _dg(["check", "defs"], EXAMPLE, project_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = _dg(["list", "defs", "--json"], EXAMPLE, project_env)
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert {a.key.path[-1] for a in ROUND_ASSETS} <= {a["asset_key"] for a in found["assets"]}
    assert [j["name"] for j in found["jobs"]] == ["bootstrap_round_job"]
    assert sorted(s["name"] for s in found["sensors"]) == sorted([SENSOR_NAME,
                                                                  BATCH_SENSOR_NAME])

    # A project adds the pipeline with `dg scaffold defs`: copy the example without its defs.
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    shutil.rmtree(project / "src" / "self_instruct_example" / "defs" / "self_instruct")
    env = {**project_env, "PYTHONPATH": project_env["PYTHONPATH"].replace(
        str(EXAMPLE / "src"), str(project / "src"))}
    scaffolded = _dg(["scaffold", "defs", COMPONENT_TYPE, "self_instruct"], project, env)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    written = (project / "src" / "self_instruct_example" / "defs" / "self_instruct" /
               "defs.yaml").read_text()
    assert f"type: {COMPONENT_TYPE}" in written and "round_size" in written
    checked = _dg(["check", "defs"], project, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
