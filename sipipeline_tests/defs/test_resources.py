"""The model resources: chosen from the environment, key handling, the Dagster seam."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from sipipeline.defs.resources import (
    API_KEY_ENV,
    BASE_URL_ENV,
    MODEL_ENV,
    MODEL_PATH_ENV,
    EmbeddedModelResource,
    ModelResource,
    OpenAIEndpointResource,
    llm_resource_from_env,
)
from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

SECRET = "sk-proj-TOPSECRET0123456789abcdef"


def test_from_env_without_variables_uses_the_embedded_model(monkeypatch) -> None:
    for name in (BASE_URL_ENV, API_KEY_ENV, MODEL_ENV):
        monkeypatch.delenv(name, raising=False)
    resource = llm_resource_from_env()
    assert isinstance(resource, EmbeddedModelResource)
    assert resource.describe()["endpoint"] == "embedded"
    # Definitions holding it load without any variable set.
    defs = dg.Definitions(resources={"llm": resource})
    assert defs.resolve_all_asset_specs() == []


def test_from_env_reads_variables_through_envvar(monkeypatch) -> None:
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9/v1")
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    resource = llm_resource_from_env()
    assert isinstance(resource, OpenAIEndpointResource)
    assert isinstance(resource.api_key, dg.EnvVar)
    assert SECRET not in repr(resource) and SECRET not in str(resource)


def test_from_env_picks_the_embedded_model_with_a_model_file(monkeypatch) -> None:
    for name in (BASE_URL_ENV, API_KEY_ENV, MODEL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(MODEL_PATH_ENV, "/models/any.gguf")
    resource = llm_resource_from_env(embedded_parallel=1)
    assert isinstance(resource, EmbeddedModelResource)
    assert isinstance(resource.model_path, dg.EnvVar) and resource.embedded_parallel == 1


def test_endpoint_without_key_fails_before_any_request(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        resource = OpenAIEndpointResource(base_url=server.base_url, model="fake-model")
        with pytest.raises(ModelAccessError, match=API_KEY_ENV):
            resource.get_client(str(tmp_path / "j.sqlite"))
        assert server.request_log == []


def test_asset_run_never_exposes_the_key(tmp_path: Path, monkeypatch) -> None:
    journal = str(tmp_path / "journal" / "llm_journal.sqlite")
    with FakeOpenAIServer(require_api_key=SECRET) as server:
        monkeypatch.setenv(BASE_URL_ENV, server.base_url)
        monkeypatch.setenv(API_KEY_ENV, SECRET)
        monkeypatch.setenv(MODEL_ENV, "fake-model")

        @dg.asset
        def answers(context, llm: ModelResource) -> list[str]:
            client = llm.get_client(journal)
            rows = client.complete([CompletionRequest("Say hi", SamplingParams(max_tokens=4),
                                                      n=2)], purpose="answers")
            context.log.info(f"resource {llm!r} client {client!r}")
            context.add_output_metadata({**llm.describe(), **client.usage("answers").as_dict()})
            return [c.text for c in rows[0]]

        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize([answers], resources={"llm": llm_resource_from_env()},
                                instance=instance)
        assert result.success
        assert len(result.output_for_node("answers")) == 2
        records = instance.all_logs(result.run_id)
        everything = "\n".join(str(r) for r in records)
        everything += str(instance.get_run_by_id(result.run_id).run_config)
        assert "fake-model" in everything  # the metadata did get recorded
        assert SECRET not in everything and "TOPSECRET" not in everything
        # The key did reach the endpoint, as a bearer token only.
        assert server.paid_log()
        assert not Path(journal).read_bytes().count(SECRET.encode())


def test_authentication_error_surfaces_as_a_failed_asset(tmp_path: Path) -> None:
    with FakeOpenAIServer(require_api_key="the-right-one") as server:
        resource = OpenAIEndpointResource(base_url=server.base_url, api_key=SECRET,
                                          model="fake-model")

        @dg.asset
        def answers(llm: ModelResource) -> None:
            llm.get_client(str(tmp_path / "j.sqlite")).complete(
                [CompletionRequest("x", SamplingParams(max_tokens=2))] * 20, purpose="answers")

        result = dg.materialize([answers], resources={"llm": resource},
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        assert not result.success
        failure = result.failure_data_for_node("answers")
        text = str(failure.error.to_string())
        assert "401" in text and "OPENAI_API_KEY" in text and SECRET not in text
        assert len(server.completion_log()) == 1


def test_credentials_in_the_url_work_and_stay_out_of_everything_the_run_wrote(
        tmp_path: Path, monkeypatch) -> None:
    password = "proxy-PASSWORD-4711"
    home = tmp_path / "dagster_home"
    journal = str(tmp_path / "journal" / "llm_journal.sqlite")
    with FakeOpenAIServer(require_basic_auth=("alice", password)) as server:
        url = server.base_url.replace("http://", f"http://alice:{password}@")
        monkeypatch.setenv(BASE_URL_ENV, url)
        monkeypatch.delenv(API_KEY_ENV, raising=False)
        monkeypatch.setenv(MODEL_ENV, "fake-model")

        @dg.asset
        def answers(context, llm: ModelResource) -> list[str]:
            client = llm.get_client(journal)
            rows = client.complete([CompletionRequest("Say hi", SamplingParams(max_tokens=4),
                                                      n=2)], purpose="answers")
            context.log.info(f"resource {llm!r} client {client!r} config {client.config!r}")
            context.add_output_metadata({**llm.describe(),
                                         **client.usage("answers").as_dict()})
            return [c.text for c in rows[0]]

        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            result = dg.materialize([answers], resources={"llm": llm_resource_from_env()},
                                    instance=instance)
            assert result.success
            records = instance.all_logs(result.run_id)
            everything = "\n".join(str(r) for r in records)
            everything += str(instance.get_run_by_id(result.run_id).run_config)
        assert server.base_url in everything  # the credential-free endpoint is shown
        assert password not in everything
        assert {e["auth_scheme"] for e in server.completion_log()} == {"Basic"}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("llm_journal") for p in written)
    for path in written:
        assert password.encode() not in path.read_bytes(), path


def test_packing_and_budget_settings_from_the_environment(monkeypatch) -> None:
    import dagster as dg

    from sipipeline.defs.resources import llm_resource_from_env

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with dg.build_resources({"llm": llm_resource_from_env()}) as resources:
        assert resources.llm.prompts_per_call() == 8  # on by default for completions
        assert resources.llm.effective_budget_usd() is None
    monkeypatch.setenv("SIPIPELINE_PROMPTS_PER_REQUEST", "1")
    monkeypatch.setenv("SIPIPELINE_BUDGET_USD", "2.5")
    with dg.build_resources({"llm": llm_resource_from_env()}) as resources:
        assert resources.llm.prompts_per_call() == 1
        assert resources.llm.effective_budget_usd() == 2.5
    with dg.build_resources({"llm": llm_resource_from_env(api="chat")}) as resources:
        assert resources.llm.prompts_per_call() == 1  # chat requests carry one prompt
