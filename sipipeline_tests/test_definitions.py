import dagster as dg

from sipipeline.definitions import defs


def test_definitions_load_with_the_six_round_assets_and_the_job():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"seed_pool", "generated_instructions", "classification_labels", "instances",
            "filtered_tasks", "dataset_stats", "round_handoff"} <= keys
    job = defs.resolve_job_def("bootstrap_round_job")
    assert job.partitions_def is not None and job.partitions_def.name == "bootstrap_round"
    for name in ("generated_instructions", "classification_labels", "instances"):
        assert graph.get(dg.AssetKey(name)).pools == {"llm_api"}
    # Round N's seed_pool depends on the hand-off from round N-1.
    assert dg.AssetKey("round_handoff") in graph.get(dg.AssetKey("seed_pool")).parent_keys
