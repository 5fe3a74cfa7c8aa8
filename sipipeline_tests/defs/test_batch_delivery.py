"""The delivery setting of the model resource and the batch sensor's defaults."""

from __future__ import annotations

import dagster as dg
import pytest

from sipipeline.defs import build_defs
from sipipeline.defs.batch_sensor import SENSOR_NAME
from sipipeline.defs.resources import (
    DELIVERY_ENV,
    EmbeddedModelResource,
    OpenAIEndpointResource,
    llm_resource_from_env,
)
from sipipeline.model.batch import BatchModelClient
from sipipeline.model.client import ModelClient
from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.fake_batch_server import FakeBatchServer


def test_the_environment_turns_batch_delivery_on(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv(DELIVERY_ENV, "batch")
    resource = llm_resource_from_env()
    assert isinstance(resource.delivery, dg.EnvVar)
    defs = build_defs(str(tmp_path), resource)
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    monkeypatch.delenv(DELIVERY_ENV)
    defs = build_defs(str(tmp_path), llm_resource_from_env())
    assert defs.resolve_sensor_def(SENSOR_NAME).default_status == dg.DefaultSensorStatus.STOPPED


def test_get_client_gives_a_batch_client_in_batch_delivery(tmp_path):
    with FakeBatchServer() as server:
        batch = OpenAIEndpointResource(base_url=server.base_url, api_key="k", delivery="batch")
        online = OpenAIEndpointResource(base_url=server.base_url, api_key="k")
        with batch.get_client(str(tmp_path / "a.sqlite")) as client:
            assert isinstance(client, BatchModelClient)
        with online.get_client(str(tmp_path / "b.sqlite")) as client:
            assert type(client) is ModelClient


def test_unusable_delivery_settings_are_refused(tmp_path):
    with pytest.raises(ModelAccessError, match="delivery must be"):
        OpenAIEndpointResource(base_url="http://127.0.0.1:9/v1", api_key="k",
                               delivery="weekly").get_client(str(tmp_path / "j.sqlite"))
    with pytest.raises(ModelAccessError, match="no Batch API"):
        EmbeddedModelResource(delivery="batch").get_client(str(tmp_path / "j.sqlite"))


def test_without_pending_runs_a_tick_skips_at_once(tmp_path):
    resource = OpenAIEndpointResource(base_url="http://127.0.0.1:9/v1", api_key="k",
                                      delivery="batch")
    defs = build_defs(str(tmp_path), resource)
    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources=defs.resources,
                                 definitions=defs) as context:
        result = defs.resolve_sensor_def(SENSOR_NAME)(context)
    assert isinstance(result, dg.SkipReason)
    assert "no run is waiting" in result.skip_message


def test_batch_wait_and_poll_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SIPIPELINE_LLM_BATCH_WAIT_S", "42")
    monkeypatch.setenv("SIPIPELINE_LLM_BATCH_POLL_S", "0.5")
    resource = llm_resource_from_env()
    assert (resource.batch_wait_s, resource.batch_poll_s) == (42.0, 0.5)
    monkeypatch.setenv("SIPIPELINE_LLM_BATCH_WAIT_S", "a day")
    with pytest.raises(ModelAccessError, match="not a number"):
        llm_resource_from_env()
