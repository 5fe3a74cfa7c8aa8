"""Journal keys: what makes two requests the same request, hashed."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from urllib.parse import urlsplit, urlunsplit

from sipipeline.model.redaction import split_credentials
from sipipeline.model.types import API_CHAT, CHAT_SYSTEM_MESSAGE, CompletionRequest, SamplingParams

JOURNAL_SCHEMA_VERSION = 2


def prompt_key(endpoint_id: str, model: str, api: str, request: CompletionRequest) -> str:
    """Hash of everything that determines a prompt's answers, except the sample index."""
    digest = hashlib.sha256(_key_header(endpoint_id, model, api, request.params,
                                        request.sampling_seed))
    digest.update(b"\0")
    digest.update(request.prompt.encode("utf-8"))
    if request.messages or request.response_format:
        # Chat messages and the answer schema decide the answers too (absent: the key of a
        # plain prompt is what it always was).
        digest.update(b"\0")
        digest.update(json.dumps([list(request.messages), request.response_format],
                                 ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=4096)
def _key_header(endpoint_id: str, model: str, api: str, params: SamplingParams,
                sampling_seed: int) -> bytes:
    """Canonical JSON of the key's fixed parts; the prompt follows it after a NUL byte."""
    return json.dumps({
        "v": JOURNAL_SCHEMA_VERSION,
        "endpoint": endpoint_id,
        "model": model,
        "api": api,
        "system": CHAT_SYSTEM_MESSAGE if api == API_CHAT else "",
        "params": asdict(params),
        "seed": sampling_seed,
    }, sort_keys=True, ensure_ascii=False).encode("utf-8")


def sample_key(prompt_digest: str, sample_index: int) -> str:
    """Journal key of one sample: the prompt key and the sample index, hashed."""
    return hashlib.sha256(f"{prompt_digest}:{sample_index}".encode()).hexdigest()


def endpoint_id(base_url: str) -> str:
    """How journal keys name an endpoint: scheme://host[:port]/path, never its credentials.

    Credentials, query and fragment are left out, so a changed password keeps every journal
    hit and no secret reaches the journal.
    """
    parts = urlsplit(split_credentials(base_url).url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")).rstrip("/")
