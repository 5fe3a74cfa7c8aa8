"""The embedded model: a real llama.cpp server in this process, no network, no key.

Small on purpose (a handful of short completions); the model is Gemma 3 270M, so only the
plumbing is checked, not the quality of what it writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipipeline.defs.resources import EmbeddedModelResource
from sipipeline.model import embedded
from sipipeline.model.types import CompletionRequest, SamplingParams

PROMPT = ("Come up with a series of tasks:\n1. Write a haiku about autumn.\n"
          "2. Summarize the following article in one sentence.\n3.")


@pytest.fixture(scope="module")
def embedded_resource():
    yield EmbeddedModelResource(embedded_parallel=2)
    embedded.stop_all()


def test_embedded_model_answers_and_journals(embedded_resource, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.sqlite")
    params = SamplingParams(max_tokens=12, temperature=0.7, top_p=0.5, stop=("\n\n",))
    batch = [CompletionRequest(PROMPT, params, n=2),
             CompletionRequest("Is the sky blue? Answer Yes or No.\nAnswer:",
                               SamplingParams(max_tokens=3, stop=("\n",)))]
    client = embedded_resource.get_client(journal)
    assert client.config.base_url.startswith("http://127.0.0.1:")
    assert client.config.endpoint_id.startswith("embedded:")
    results = client.complete(batch, purpose="generated_instructions")
    assert [len(row) for row in results] == [2, 1]
    for row in results:
        for completion in row:
            assert isinstance(completion.text, str)
            assert completion.finish_reason in {"stop", "length"}
            assert completion.completion_tokens <= 12 and completion.prompt_tokens > 0
    usage = client.usage("generated_instructions")
    assert usage.requests == 3 and usage.cost_usd == 0.0
    client.close()

    # The same server serves the next client (one per process); the journal answers it.
    again = embedded_resource.get_client(journal)
    assert again.config.base_url == client.config.base_url
    repeat = again.complete(batch, purpose="generated_instructions")
    assert all(c.from_journal for row in repeat for c in row)
    assert [[c.text for c in row] for row in repeat] == [[c.text for c in row]
                                                         for row in results]
    embedded_resource.teardown_after_execution(None)


def test_missing_model_path_is_reported(tmp_path: Path) -> None:
    resource = EmbeddedModelResource(model_path=str(tmp_path / "nope.gguf"))
    with pytest.raises(FileNotFoundError, match="model_path"):
        resource.get_client(str(tmp_path / "journal.sqlite"))
