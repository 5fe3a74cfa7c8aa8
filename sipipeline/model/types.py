"""What goes into and comes out of the model client: requests, completions, the error."""

from __future__ import annotations

from dataclasses import dataclass

API_COMPLETIONS = "completions"
API_CHAT = "chat"
API_MODES = (API_COMPLETIONS, API_CHAT)

#: The request field that limits the answer's tokens. Newer OpenAI models accept only
#: `max_completion_tokens`; most other endpoints only `max_tokens`.
MAX_TOKENS = "max_tokens"
MAX_COMPLETION_TOKENS = "max_completion_tokens"
TOKEN_LIMIT_FIELDS = (MAX_TOKENS, MAX_COMPLETION_TOKENS)

CHAT_SYSTEM_MESSAGE = (
    "You continue text. The user message is the beginning of a document. Reply with only the "
    "text that comes next, starting exactly where the document stops, in the same format. "
    "Do not repeat the document, do not comment, do not add a preamble."
)


class ModelAccessError(RuntimeError):
    """The model could not be reached, refused us, or the budget would be exceeded.

    Its message states the cause and never contains the API key. `retryable` is False when
    running again unchanged cannot help (bad credentials, a rejected request, the budget), so
    a caller can fail without a retry storm; True after transient errors outlasted the retries.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()


#: (role, content) pairs of a chat request, in order.
ChatMessages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CompletionRequest:
    """One prompt to sample `n` times.

    In chat mode a request with `messages` sends them as they are; without, `prompt` is sent
    as a document to continue (the system message `CHAT_SYSTEM_MESSAGE`). `response_format`
    is the JSON text of an OpenAI `response_format` object (structured output), or empty.
    """

    prompt: str
    params: SamplingParams
    n: int = 1
    sampling_seed: int = 0
    messages: ChatMessages = ()
    response_format: str = ""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    request_key: str
    sample_index: int
    prompt_tokens: int
    completion_tokens: int
    from_journal: bool


@dataclass
class Usage:
    """Requests, tokens and money of one purpose (or of all of them, added up)."""

    requests: int = 0
    samples: int = 0
    journal_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    retries: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: value + getattr(other, name)
                        for name, value in self.as_dict().items()})

    def as_dict(self) -> dict[str, float]:
        """Field name -> value, e.g. for asset metadata."""
        return dict(vars(self))
