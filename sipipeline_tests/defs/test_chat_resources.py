"""The model resource's chat settings: prompt style, structured output, token limit field."""

from __future__ import annotations

import dagster as dg
import pytest

from sipipeline.defs.resources import OpenAIEndpointResource, llm_resource_from_env
from sipipeline.method.vocabulary import PromptStyle
from sipipeline.model.types import ModelAccessError


def _endpoint(**fields) -> OpenAIEndpointResource:
    return OpenAIEndpointResource(base_url="http://127.0.0.1:9/v1", api_key="k", **fields)


def test_the_api_mode_and_structured_output_choose_the_prompt_style():
    assert _endpoint().prompt_style() == PromptStyle.COMPLETION
    assert _endpoint(structured_output=True).prompt_style() == PromptStyle.COMPLETION
    assert _endpoint(api="chat").prompt_style() == PromptStyle.CHAT
    assert _endpoint(api="chat", structured_output=True).prompt_style() == PromptStyle.CHAT_JSON


def test_the_token_limit_field_reaches_the_client_config_and_is_checked(tmp_path):
    journal = str(tmp_path / "j.sqlite")
    config = _endpoint(token_limit_field="max_completion_tokens").client_config(journal)
    assert config.token_limit_field == "max_completion_tokens"
    assert _endpoint().client_config(journal).token_limit_field == "max_tokens"
    with pytest.raises(ModelAccessError, match="token_limit_field"):
        _endpoint(token_limit_field="max_new_tokens").client_config(journal)


def test_the_environment_sets_the_chat_settings(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("SIPIPELINE_LLM_API", "chat")
    monkeypatch.setenv("SIPIPELINE_TOKEN_LIMIT_FIELD", "max_completion_tokens")
    monkeypatch.setenv("SIPIPELINE_STRUCTURED_OUTPUT", "true")
    resource = llm_resource_from_env()
    assert resource.token_limit_field == dg.EnvVar("SIPIPELINE_TOKEN_LIMIT_FIELD")
    assert resource.structured_output is True
    monkeypatch.setenv("SIPIPELINE_STRUCTURED_OUTPUT", "no")
    assert llm_resource_from_env().structured_output is False
