"""End to end through the UI server: `dagster dev` on 127.0.0.1 against the fake model.

One module-scoped session starts the fake OpenAI endpoint and `dagster dev`, runs round 1 and
round 2 of `bootstrap_round_job` through GraphQL (as the launchpad would), notes what the UI
reports, then re-runs round 1 with fresh samples. The tests read that session through GraphQL
(assets, partitions, lineage, staleness, checks) and through headless Chromium (the asset graph,
a partition page, the checks tab, the plots and summary of `dataset_stats`), saving screenshots
under `test-artifacts/ui/`. Without Chromium the browser tests are skipped with the reason
printed to the terminal.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sipipeline.defs.storage import read_parquet
from sipipeline_tests.support.chromium import Chromium, chromium_unavailable_reason
from sipipeline_tests.support.dagster_dev import REPO_ROOT, DagsterDev, DagsterDevError
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

LOCATION = "sipipeline.definitions"
REPOSITORY = "__repository__"
JOB = "bootstrap_round_job"
ROUND_ASSETS = ["seed_pool", "generated_instructions", "classification_labels", "instances",
                "filtered_tasks", "dataset_stats", "round_completion"]
CHECKS = {
    "filtered_tasks": {"no_duplicate_instructions", "rouge_l_below_threshold", "pool_schema",
                       "accepted_tasks_have_instances"},
    "instances": {"no_empty_outputs", "input_differs_from_output"},
    "generated_instructions": {"parse_failure_share"},
}
API_KEY = "sk-e2e-not-a-real-key-5f1c"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
RUN_TIMEOUT_S = 300.0
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

REPOSITORY_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

ADD_PARTITION = """
mutation($selector: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: "bootstrap_round",
                      partitionKey: $key) {
    __typename
    ... on PythonError { message }
  }
}"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""

RUN_STATUS = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status runConfigYaml tags { key value } }
  }
}"""

ASSET_NODES = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    groupName
    jobNames
    pools
    isMaterializable
    dependencyKeys { path }
    partitionKeys
    assetPartitionStatuses {
      __typename
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
    }
  }
}"""

STALENESS = """
query($keys: [AssetKeyInput!], $partition: String!) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    staleStatus(partition: $partition)
    staleCauses(partition: $partition) {
      key { path } partitionKey category reason
    }
  }
}"""

DATA_VERSION = """
query($keys: [AssetKeyInput!], $partition: String!) {
  assetNodes(assetKeys: $keys) { assetKey { path } dataVersion(partition: $partition) }
}"""

LINEAGE = """
query {
  handoff: assetNodes(assetKeys: [{path: ["round_handoff"]}]) {
    assetObservations(partitions: ["round_002"]) {
      runId partition
      tags { key value }
      metadataEntries {
        label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue }
      }
    }
  }
  seedPool: assetNodes(assetKeys: [{path: ["seed_pool"]}]) {
    assetMaterializations(partitions: ["round_002"]) {
      runId partition
      metadataEntries { label ... on TextMetadataEntry { text } }
    }
  }
}"""

CHECK_RESULTS = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          blocking
          partitionDefinition { name }
          partitionStatuses {
            __typename
            ... on AssetCheckDefaultPartitionStatuses {
              succeededPartitions failedPartitions executionFailedPartitions
            }
          }
          executionForLatestMaterialization {
            status partition evaluation { success severity }
          }
        }
      }
    }
  }
}"""

# Dagster's UI greets a new browser profile with a newsletter dialog; a person would skip it.
DISMISS_COMMUNITY_DIALOG = """(() => {
  const skip = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Skip');
  if (skip) { skip.click(); return true; }
  return false;
})()"""


def asset_keys(*names: str) -> list[dict]:
    return [{"path": [name]} for name in names]


@dataclass
class UISession:
    dev: DagsterDev
    storage: Path
    run_ids: dict[str, str] = field(default_factory=dict)
    before_rerun: dict[str, object] = field(default_factory=dict)


def add_round(dev: DagsterDev, key: str) -> None:
    answer = dev.graphql(ADD_PARTITION, {"selector": REPOSITORY_SELECTOR, "key": key})
    kind = answer["addDynamicPartition"]["__typename"]
    assert kind in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), answer


def run_round(dev: DagsterDev, key: str, random_seed: int = 0) -> str:
    """Launch a round run the way the launchpad does, wait for it, return its id."""
    add_round(dev, key)
    params = {
        "selector": {**REPOSITORY_SELECTOR, "jobName": JOB},
        "runConfigData": {
            "ops": {"generated_instructions": {
                "config": {"num_prompts": 3, "random_seed": random_seed}}},
            # One process per run instead of one per step: same results, far less start-up.
            "execution": {"config": {"in_process": {}}},
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}]},
    }
    answer = dev.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run_id = answer["run"]["runId"]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        status = dev.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in FINISHED:
            break
        time.sleep(1.0)
    assert status == "SUCCESS", f"{key} run {run_id} ended {status}:\n{dev.log_tail()}"
    return run_id


def staleness(dev: DagsterDev, asset: str, partition: str) -> dict:
    return dev.graphql(STALENESS, {"keys": asset_keys(asset), "partition": partition}
                       )["assetNodes"][0]


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> UISession:
    root = tmp_path_factory.mktemp("ui_e2e")
    storage = root / "storage"
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - started, 1)

    with FakeOpenAIServer(responder=respond) as server:
        env = {"SIPIPELINE_STORAGE": str(storage), "OPENAI_BASE_URL": server.base_url,
               "OPENAI_API_KEY": API_KEY, "SIPIPELINE_LLM_MODEL": "fake-model"}
        dev = DagsterDev(root / "dagster_home", env, root / "dagster_dev.log")
        try:
            dev.start()
            dev.wait_ready()
            lap("dagster_dev_ready_s")
            session = UISession(dev, storage)
            session.run_ids["round_001"] = run_round(dev, "round_001")
            lap("round_001_done_s")
            session.run_ids["round_002"] = run_round(dev, "round_002")
            lap("round_002_done_s")
            session.before_rerun = {
                "seed_pool_round_002": staleness(dev, "seed_pool", "round_002"),
                "filtered_tasks_round_001_version": dev.graphql(
                    DATA_VERSION, {"keys": asset_keys("filtered_tasks"),
                                   "partition": "round_001"})["assetNodes"][0]["dataVersion"],
                "round_1_pool": read_parquet(storage / "filtered_tasks" / "round_001.parquet"),
                "round_2_generated": read_parquet(
                    storage / "generated_instructions" / "round_002.parquet"),
            }
            # Re-run round 1 with fresh samples: round 2 now starts from a pool that is gone.
            session.run_ids["round_001_rerun"] = run_round(dev, "round_001", random_seed=7)
            lap("round_001_rerun_done_s")
            yield session
        except DagsterDevError as error:
            pytest.fail(f"dagster dev: {error}")
        finally:
            dev.stop()
            lap("stopped_s")
            # Kept for whoever reads a CI failure: the server log (the test checks it holds
            # no API key) and where the time went.
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            if dev.log_path.exists():
                shutil.copyfile(dev.log_path, ARTIFACTS / "dagster_dev.log")
            (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1) + "\n",
                                                    encoding="utf-8")
    assert dev.process.poll() is not None, "dagster dev is still running"


# ------------------------------------------------------------------ GraphQL
def test_the_round_assets_and_their_partitions(ui):
    nodes = {n["assetKey"]["path"][0]: n for n in ui.dev.graphql(
        ASSET_NODES, {"keys": asset_keys(*ROUND_ASSETS, "round_handoff")})["assetNodes"]}
    assert set(nodes) == {*ROUND_ASSETS, "round_handoff"}
    for name in ROUND_ASSETS:
        node = nodes[name]
        assert node["groupName"] == "self_instruct" and JOB in node["jobNames"], name
        assert {"round_001", "round_002"} <= set(node["partitionKeys"]), name
        statuses = node["assetPartitionStatuses"]
        assert {"round_001", "round_002"} <= set(statuses["materializedPartitions"]), name
        assert statuses["failedPartitions"] == [], name
    # The last step of round 2's run (round_completion) announced round 3.
    assert "round_003" in nodes["seed_pool"]["partitionKeys"]
    for name in ("generated_instructions", "classification_labels", "instances"):
        assert nodes[name]["pools"] == ["llm_api"], name
    assert nodes["round_handoff"]["isMaterializable"] is False


def test_round_two_traces_back_to_round_one(ui):
    answer = ui.dev.graphql(LINEAGE)
    observations = answer["handoff"][0]["assetObservations"]
    first = next(o for o in observations if o["runId"] == ui.run_ids["round_001"])
    meta = {e["label"]: e.get("text", e.get("intValue")) for e in first["metadataEntries"]}
    tags = {t["key"]: t["value"] for t in first["tags"]}
    # round_001's run handed its pool to round_002, under round_001's data version.
    assert first["partition"] == "round_002" and meta["from_round"] == "round_001"
    assert tags["dagster/data_version"] == ui.before_rerun["filtered_tasks_round_001_version"]
    assert meta["pool_size"] == len(ui.before_rerun["round_1_pool"])
    [materialization] = answer["seedPool"][0]["assetMaterializations"]
    source = {e["label"]: e.get("text") for e in materialization["metadataEntries"]}["source"]
    assert materialization["runId"] == ui.run_ids["round_002"]
    assert source.endswith("filtered_tasks/round_001.parquet")
    # In the data: every round-2 prompt showed two machine tasks accepted in round 1.
    pool = ui.before_rerun["round_1_pool"]
    round_one_tasks = set(pool.loc[pool["origin"] == "machine", "task_id"])
    assert round_one_tasks
    generated = ui.before_rerun["round_2_generated"]
    assert all(len(set(ids) & round_one_tasks) == 2 for ids in generated["in_context_ids"])


def test_rerunning_round_one_makes_round_two_stale(ui):
    assert ui.before_rerun["seed_pool_round_002"]["staleStatus"] == "FRESH"
    after = staleness(ui.dev, "seed_pool", "round_002")
    assert after["staleStatus"] == "STALE"
    assert {(c["key"]["path"][0], c["partitionKey"], c["category"])
            for c in after["staleCauses"]} == {("round_handoff", "round_002", "DATA")}
    assert staleness(ui.dev, "seed_pool", "round_001")["staleStatus"] == "FRESH"


def test_check_results_per_round(ui):
    nodes = ui.dev.graphql(CHECK_RESULTS, {"keys": asset_keys(*CHECKS)})["assetNodes"]
    seen = {}
    for node in nodes:
        asset = node["assetKey"]["path"][0]
        for check in node["assetChecksOrError"]["checks"]:
            seen.setdefault(asset, set()).add(check["name"])
            where = f"{asset}:{check['name']}"
            # All blocking: the parse-failure check only warns, but the round waits for it.
            assert check["blocking"] is True, where
            assert check["partitionDefinition"]["name"] == "bootstrap_round", where
            statuses = check["partitionStatuses"]
            assert set(statuses["succeededPartitions"]) == {"round_001", "round_002"}, where
            assert statuses["failedPartitions"] == [], where
            assert statuses["executionFailedPartitions"] == [], where
            latest = check["executionForLatestMaterialization"]
            assert latest["status"] == "SUCCEEDED" and latest["evaluation"]["success"], where
    assert seen == CHECKS


def test_the_api_key_stays_out_of_runs_and_logs(ui):
    for run_id in ui.run_ids.values():
        run = ui.dev.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]
        assert API_KEY not in run["runConfigYaml"]
        assert all(API_KEY not in tag["value"] for tag in run["tags"])
    assert API_KEY not in ui.dev.log_path.read_text(encoding="utf-8", errors="replace")


# ------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def browser(request):
    reason = chromium_unavailable_reason()
    if reason is not None:
        message = f"browser part of {Path(__file__).name} skipped: {reason}"
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nSKIPPED {message}", flush=True)  # on the terminal, never silently
        pytest.skip(message)
    with Chromium(width=1920, height=1080) as chromium:
        yield chromium


def show(browser: Chromium, url: str, expected: list[str], screenshot: str) -> str:
    """Open a page as a person would, wait for what they look for, keep a screenshot."""
    browser.open(url)
    browser.wait_for_text(expected[:1], timeout_s=90)
    browser.evaluate(DISMISS_COMMUNITY_DIALOG)
    text = browser.wait_for_text(expected, timeout_s=60, settle_s=1.5)
    browser.evaluate(DISMISS_COMMUNITY_DIALOG)
    path = browser.screenshot(ARTIFACTS / screenshot)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank image
    return text


def test_the_asset_graph_shows_the_round_and_its_checks(browser, ui):
    # With the review assets beside the round the graph is drawn smaller: long names are cut
    # ("gene…_instructions") and check badges are left out at that zoom; the checks tab test
    # below reads every check's result.
    shown = [name for name in ROUND_ASSETS if len(name) <= 16]
    text = show(browser, f"{ui.dev.url}/locations/{LOCATION}/asset-groups/self_instruct",
                [*shown, "round_handoff", "quality_review", "_instructions", "_labels"],
                "asset_graph.png")
    assert "Join the Dagster community" not in text
    (ARTIFACTS / "asset_graph.txt").write_text(text, encoding="utf-8")


def test_a_partition_page_shows_round_two_stale_and_fed_by_round_one(browser, ui):
    size = len(ui.before_rerun["round_1_pool"])
    text = show(browser, f"{ui.dev.url}/assets/seed_pool?view=partitions&partition=round_002",
                ["round_002", "round_001", "round_003", "Materialized", "Unsynced",
                 "filtered_tasks/round_001.parquet", JOB, "dagster/row_count"],
                "seed_pool_round_002.png")
    assert f"dagster/row_count\n\t\n{size}\n" in text, text[:2000]
    (ARTIFACTS / "seed_pool_round_002.txt").write_text(text, encoding="utf-8")


def test_the_checks_tab_lists_the_blocking_checks(browser, ui):
    text = show(browser, f"{ui.dev.url}/assets/filtered_tasks?view=checks",
                [*sorted(CHECKS["filtered_tasks"]), "Succeeded", "This is a blocking asset check"],
                "filtered_tasks_checks.png")
    listing = text.split("Execute all", 1)[-1].split("About", 1)[0]
    assert listing.count("Succeeded") == len(CHECKS["filtered_tasks"]), listing
    assert "Failed" not in listing
    (ARTIFACTS / "filtered_tasks_checks.txt").write_text(text, encoding="utf-8")


# The plots of dataset_stats are Markdown metadata with images embedded as data URIs; the UI
# shows a long Markdown entry behind "[Show Markdown]", in a dialog.
FIND_MARKDOWN_LINK = """((label) => {
  const row = [...document.querySelectorAll('tr')].find(
      r => r.cells.length > 1 && r.cells[0].innerText.trim() === label);
  if (!row) return 'no row';
  const links = [...row.querySelectorAll('*')].filter(
      e => e.innerText && e.innerText.trim() === '[Show Markdown]');
  if (!links.length) return 'inline';
  const link = links[links.length - 1];  // the innermost: what the pointer lands on
  link.scrollIntoView({block: 'center'});
  const box = link.getBoundingClientRect();
  return {x: box.left + box.width / 2, y: box.top + box.height / 2};
})(%s)"""


def open_markdown(browser: Chromium, label: str) -> str:
    """Click the entry's "[Show Markdown]" as a person would; "inline" when shown in place."""
    where = browser.evaluate(FIND_MARKDOWN_LINK % json.dumps(label))
    if not isinstance(where, dict):
        return where
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=where["x"], y=where["y"],
                     button="left", clickCount=1)
    return "dialog"


EMBEDDED_IMAGES = """(() => [...document.querySelectorAll('img')]
  .filter(i => i.src.startsWith('data:image/png;base64,'))
  .map(i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))()"""

SUMMARY_TABLE = """(() => [...document.querySelectorAll('table')].map(t => t.innerText)
  .filter(t => t.includes('paper (GPT-3)') && t.includes('instruction words, mean')))()"""


def press_escape(browser: Chromium) -> None:
    for kind in ("keyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape",
                     windowsVirtualKeyCode=27)


PLOTS = ("funnel", "lengths", "rouge_l_to_seed")


def _poll(browser: Chromium, expression: str, ready, timeout_s: float = 60.0):
    """Evaluate until `ready(value)` holds (a wait for rendering, not a speed check)."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if ready(value):
            return value
        time.sleep(0.5)
    return value


def test_dataset_stats_shows_its_plots_as_images_and_a_summary_table(browser, ui):
    show(browser, f"{ui.dev.url}/assets/dataset_stats?view=partitions&partition=round_002",
         ["round_002", "summary", "funnel", *[f"plots/{name}" for name in PLOTS]],
         "dataset_stats_round_002.png")
    for name in PLOTS:
        label = f"plots/{name}"
        where = open_markdown(browser, label)
        assert where == "dialog", f"{label}: {where}"
        images = _poll(browser, EMBEDDED_IMAGES,
                       lambda found: bool(found) and all(i["complete"] for i in found))
        assert images, f"{label}: no embedded image on the page"
        assert all(i["width"] > 0 and i["height"] > 0 for i in images), f"{label}: {images}"
        time.sleep(0.5)
        browser.screenshot(ARTIFACTS / f"dataset_stats_{name}.png")
        press_escape(browser)
        assert _poll(browser, EMBEDDED_IMAGES, lambda found: not found, timeout_s=10) == [], \
            f"{label}: the dialog stays open"

    if open_markdown(browser, "summary") == "dialog":
        tables = _poll(browser, SUMMARY_TABLE, bool)
    else:
        tables = browser.evaluate(SUMMARY_TABLE)
    assert tables, "the summary table is not rendered"
    assert "round 2" in tables[0] and "rounds 1–2" in tables[0]
    browser.screenshot(ARTIFACTS / "dataset_stats_summary.png")
    (ARTIFACTS / "dataset_stats_summary.txt").write_text(tables[0], encoding="utf-8")
