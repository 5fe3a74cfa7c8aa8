"""Journal keys: the same request gives the same key, any change to it a new one."""

from __future__ import annotations

from dataclasses import replace

from sipipeline.model.keys import prompt_key, sample_key
from sipipeline.model.types import API_CHAT, API_COMPLETIONS, CompletionRequest, SamplingParams

REQUEST = CompletionRequest("Tasks:\n1.", SamplingParams(max_tokens=8, temperature=0.7), n=2)


def test_key_depends_on_everything_that_shapes_the_answer() -> None:
    base = prompt_key("http://h/v1", "m", API_COMPLETIONS, REQUEST)
    assert base == prompt_key("http://h/v1", "m", API_COMPLETIONS, replace(REQUEST, n=5))
    variants = {
        prompt_key("http://other/v1", "m", API_COMPLETIONS, REQUEST),
        prompt_key("http://h/v1", "m2", API_COMPLETIONS, REQUEST),
        prompt_key("http://h/v1", "m", API_CHAT, REQUEST),
        prompt_key("http://h/v1", "m", API_COMPLETIONS, replace(REQUEST, sampling_seed=1)),
        prompt_key("http://h/v1", "m", API_COMPLETIONS, replace(REQUEST, prompt="Tasks:\n2.")),
        prompt_key("http://h/v1", "m", API_COMPLETIONS,
                   replace(REQUEST, params=SamplingParams(max_tokens=9, temperature=0.7))),
    }
    assert base not in variants and len(variants) == 6


def test_sample_keys_differ_per_index() -> None:
    digest = prompt_key("http://h/v1", "m", API_COMPLETIONS, REQUEST)
    assert sample_key(digest, 0) != sample_key(digest, 1)
    assert sample_key(digest, 0) == sample_key(digest, 0)
