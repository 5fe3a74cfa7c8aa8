"""Token prices, the cost of a call, and the budget that stops work before it is exceeded."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sipipeline.model.types import CompletionRequest, ModelAccessError


@dataclass(frozen=True)
class TokenPrice:
    """US dollars per million tokens."""

    prompt: float
    completion: float
    cached_prompt: float | None = None  # defaults to the prompt price


# Public list prices (USD per 1M tokens) of a few models, as a starting point; override them
# with the resource's price settings when they change or for another provider.
DEFAULT_PRICES: dict[str, TokenPrice] = {
    "gpt-3.5-turbo-instruct": TokenPrice(1.50, 2.00),
    "davinci-002": TokenPrice(2.00, 2.00),
    "babbage-002": TokenPrice(0.40, 0.40),
    "gpt-4o-mini": TokenPrice(0.15, 0.60, 0.075),
    "gpt-4o": TokenPrice(2.50, 10.00, 1.25),
    "gpt-4.1-mini": TokenPrice(0.40, 1.60, 0.10),
    "gpt-4.1-nano": TokenPrice(0.10, 0.40, 0.025),
    "gpt-4.1": TokenPrice(2.00, 8.00, 0.50),
}


def cost_usd(price: TokenPrice | None, prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0) -> float:
    """Cost of one call; 0 when the price is unknown (e.g. a local model)."""
    if price is None:
        return 0.0
    cached = min(cached_tokens, prompt_tokens)
    cached_price = price.prompt if price.cached_prompt is None else price.cached_prompt
    return ((prompt_tokens - cached) * price.prompt + cached * cached_price
            + completion_tokens * price.completion) / 1e6


def estimate_prompt_tokens(prompt: str) -> int:
    """A deliberately high token estimate (3 bytes per token) for budget reservations."""
    return math.ceil(len(prompt.encode("utf-8")) / 3) + 16


class Budget:
    """Money spent and reserved by requests in flight, against an optional limit.

    A request reserves its worst-case cost before it is sent (so concurrent requests cannot
    together overshoot), releases the reservation when its answer (or error) is in, and the
    answer's real cost is then spent.
    """

    def __init__(self, limit_usd: float | None, price: TokenPrice | None) -> None:
        self.limit_usd = limit_usd
        self.price = price
        self.spent_usd = 0.0
        self.reserved_usd = 0.0

    def reserve(self, request: CompletionRequest, n: int) -> float:
        """Reserve the worst case of `n` samples of `request`; raise when over the limit."""
        if self.limit_usd is None:
            return 0.0
        worst = cost_usd(self.price, estimate_prompt_tokens(request.prompt),
                         request.params.max_tokens * n)
        if self.spent_usd + self.reserved_usd + worst > self.limit_usd:
            raise ModelAccessError(
                f"stopping before the budget of ${self.limit_usd:.4f} would be exceeded "
                f"(spent ${self.spent_usd:.4f}, in flight ${self.reserved_usd:.4f}, next "
                f"request up to ${worst:.4f}); everything received is journaled, raise "
                "budget_usd and run again to continue")
        self.reserved_usd += worst
        return worst

    def release(self, reservation: float) -> None:
        self.reserved_usd -= reservation

    def spend(self, amount_usd: float) -> None:
        self.spent_usd += amount_usd

    def settle(self, reservation: float, amount_usd: float) -> None:
        """The answer to a reserved request cost `amount_usd`."""
        self.release(reservation)
        self.spend(amount_usd)
