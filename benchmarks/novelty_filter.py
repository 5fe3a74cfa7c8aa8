"""Benchmark: the exact fast ROUGE-L novelty filter against rouge-score, in one run.

Builds a bootstrap-like workload from the seed instructions: new instructions sampled from a
word-bigram model of the seeds with a Zipf-distributed open vocabulary mixed in, and ~35%
near-duplicates (a few words dropped, inserted, replaced or repeated) of earlier instructions,
so some pairs exceed the 0.7 threshold and some land exactly on it. Then it

1. times rouge-score (the reference) on a sample of pairs and of whole candidates,
2. checks the fast filter's output equals the reference on a sample (decisions, max, mean,
   top-10),
3. times the fast filter's keep/drop decision per candidate against pools of 10K and 52K,
4. runs the whole bootstrap, 175 seeds → 52K pool (~2 candidates per kept one), with the
   top-10 metadata of every kept candidate, in one call,

and prints pairs/s, per-candidate times and the speed-up.

    .venv/bin/python benchmarks/novelty_filter.py [--quick] [--python]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from sipipeline.paths import DEFAULT_SEED_FILE  # noqa: E402
from sipipeline.similarity import fast, kernels, novelty_filter, rouge_tokens  # noqa: E402
from sipipeline.similarity.index import encode  # noqa: E402
from sipipeline.similarity.oracle import (  # noqa: E402
    reference_novelty_filter,
    reference_tokens,
)

_START, _END = "<s>", "</s>"


class InstructionGenerator:
    """Seed-like instructions: bigram walks over the seeds, open vocabulary, near-duplicates."""

    def __init__(self, seeds: list[str], seed: int = 0, duplicate_rate: float = 0.35) -> None:
        self.rng = random.Random(seed)
        self.duplicate_rate = duplicate_rate
        self.successors: dict[str, list[str]] = {}
        for text in seeds:
            words = [_START, *text.split(), _END]
            for left, right in zip(words, words[1:], strict=False):
                self.successors.setdefault(left, []).append(right)
        self.history = list(seeds)

    def _novel_word(self) -> str:
        """A word from a large open vocabulary with a Zipf-like frequency."""
        rank = int(self.rng.paretovariate(0.8))
        letters = "abcdefghijklmnopqrstuvwxyz"
        word, value = "", rank * 7919
        while True:
            word += letters[value % 26]
            value //= 26
            if not value:
                return word + "ing"[: rank % 4]

    def _walk(self) -> str:
        words, current = [], _START
        while len(words) < 60:
            current = self.rng.choice(self.successors[current])
            if current == _END:
                if len(words) >= 4:
                    break
                current = _START
                continue
            words.append(self._novel_word() if self.rng.random() < 0.15 else current)
        return " ".join(words)

    def _near_duplicate(self) -> str:
        words = self.rng.choice(self.history).split()
        for _ in range(self.rng.randint(0, 4)):
            at = self.rng.randrange(len(words))
            operation = self.rng.randrange(4)
            if operation == 0 and len(words) > 2:
                del words[at]
            elif operation == 1:
                words.insert(at, self._novel_word())
            elif operation == 2:
                words[at] = self._novel_word()
            else:
                words.insert(at, words[at])
        return " ".join(words)

    def next(self) -> str:
        text = self._near_duplicate() if self.rng.random() < self.duplicate_rate else self._walk()
        self.history.append(text)
        return text

    def batch(self, count: int) -> list[str]:
        return [self.next() for _ in range(count)]


def grow_pool(seeds: list[str], size: int, seed: int) -> list[str]:
    """A pool of `size` instructions kept by the filter's own decisions (so it is realistic)."""
    generator = InstructionGenerator(seeds, seed=seed)
    candidates = generator.batch(int(2.2 * size) + 1000)
    keep = _decisions(candidates, seeds)
    pool = list(seeds) + [text for text, kept in zip(candidates, keep, strict=True) if kept]
    return pool[:size]


def _decisions(candidates: list[str], pool: list[str]):  # noqa: ANN202
    tokens = [rouge_tokens(text) for text in pool + candidates]
    sequences, codes = encode(tokens)
    keep, _ = fast.decide(
        sequences, codes, [len(t) for t in tokens], len(pool), 0.7
    )
    return keep


def time_reference_pairs(pool: list[str], candidates: list[str], pairs: int) -> float:
    """rouge-score pairs per second, as the reference scripts call it (scorer.score)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(1)
    sample = [(rng.choice(candidates), rng.choice(pool)) for _ in range(pairs)]
    start = time.perf_counter()
    for candidate, item in sample:
        scorer.score(candidate, item)
    return pairs / (time.perf_counter() - start)


def time_reference_pretokenised(pool: list[str], candidates: list[str], pairs: int) -> float:
    """rouge-score's `_score_lcs` on pre-tokenised lists (the faster reference variant)."""
    from rouge_score import rouge_scorer

    rng = random.Random(2)
    sample = [
        (reference_tokens(rng.choice(candidates)), reference_tokens(rng.choice(pool)))
        for _ in range(pairs)
    ]
    start = time.perf_counter()
    for candidate, item in sample:
        rouge_scorer._score_lcs(candidate, item)
    return pairs / (time.perf_counter() - start)


def time_decisions(pool: list[str], candidates: list[str]) -> tuple[float, float]:
    """Seconds per candidate for keep/drop (and the max of dropped ones), setup included.

    Runs the decision step on the pool alone and on pool + candidates and attributes the
    difference to the candidates, so tokenising/indexing the pool cancels out but the
    candidates' own share of it (tokenising, ranking) counts. Best of three.
    """
    tokens = [rouge_tokens(text) for text in pool + candidates]
    sequences, codes = encode(tokens)
    lengths = [len(t) for t in tokens]
    num_pool = len(pool)
    timings = []
    for count in (1, len(candidates)):
        texts = num_pool + count
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            keep, _ = fast.decide(
                sequences[:texts], codes[: sum(lengths[:texts])], lengths[:texts], num_pool, 0.7
            )
            best = min(best, time.perf_counter() - start)
        timings.append(best)
    return (timings[1] - timings[0]) / (len(candidates) - 1), float(keep.mean())


def time_full_scores(pool: list[str], candidates: list[str]) -> float:
    """Seconds per candidate for every score (max, mean, top-10) against the whole pool.

    threshold=2.0 keeps every candidate, so each gets full scores; like `time_decisions`, the
    time for one candidate is subtracted so the pool's setup cancels out. Best of two.
    """
    timings = []
    for count in (1, len(candidates)):
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            novelty_filter(candidates[:count], pool, threshold=2.0)
            best = min(best, time.perf_counter() - start)
        timings.append(best)
    return (timings[1] - timings[0]) / (len(candidates) - 1)


def check_agreement(candidates: list[str], pool: list[str]) -> tuple[int, float]:
    """Compare fast and reference filters on one workload; returns rows checked, ref seconds."""
    start = time.perf_counter()
    expected = reference_novelty_filter(candidates, pool)
    reference_seconds = time.perf_counter() - start
    actual = novelty_filter(candidates, pool)
    assert actual["keep"].tolist() == expected["keep"].tolist(), "keep flags differ"
    assert actual["max_rouge_l"].tolist() == expected["max_rouge_l"].tolist(), "max differs"
    for got, want in zip(actual["mean_rouge_l"], expected["mean_rouge_l"], strict=True):
        assert (got != got and want != want) or abs(got - want) <= 1e-12, "mean differs"
    for got, want in zip(actual["most_similar"], expected["most_similar"], strict=True):
        assert got == want, f"top-10 differs: {got} != {want}"
    return len(candidates), reference_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~20 s)")
    parser.add_argument(
        "--python", action="store_true", help="measure the loops used when numba is absent"
    )
    args = parser.parse_args()
    quick = args.quick
    # Measure one engine throughout (by default the filter picks per call by size).
    fast.USE_NUMBA = not args.python and kernels.numba is not None
    seeds = [json.loads(line)["instruction"] for line in DEFAULT_SEED_FILE.open()]
    big, small = (10_000, 2_000) if quick else (52_000, 10_000)

    print(f"# novelty filter benchmark ({'quick' if quick else 'full'})")
    start = time.perf_counter()
    pool_big = grow_pool(seeds, big, seed=11)
    pool_small = pool_big[:small]
    probes = InstructionGenerator(pool_big, seed=12).batch(2_000 if quick else 5_000)
    lengths = [len(reference_tokens(text)) for text in pool_big]
    print(
        f"workload: pool {len(pool_big)} instructions built in {time.perf_counter() - start:.1f} s"
        f", tokens mean {statistics.mean(lengths):.1f} / max {max(lengths)}"
        f", {len(probes)} probe candidates"
    )

    reference_pairs = time_reference_pairs(pool_big, probes, 2_000 if quick else 20_000)
    reference_pretok = time_reference_pretokenised(pool_big, probes, 2_000 if quick else 20_000)
    reference_per_candidate = {size: size / reference_pairs for size in (small, big)}
    print(f"reference rouge-score: {reference_pairs:,.0f} pairs/s (scorer.score), "
          f"{reference_pretok:,.0f} pairs/s pre-tokenised")

    agreement_pool = pool_big[: 300 if quick else 1_000]
    agreement_candidates = InstructionGenerator(agreement_pool, seed=13).batch(
        60 if quick else 150
    )
    rows, seconds = check_agreement(agreement_candidates, agreement_pool)
    measured = rows * len(agreement_pool) / seconds
    print(f"agreement: fast == reference on {rows} candidates vs a {len(agreement_pool)} pool "
          f"(keep, max, mean, top-10); reference filter ran {measured:,.0f} pairs/s there")

    print("\n(pairs/s of the decision = pool size / time per candidate: pairs it answers for)")
    print("| pool | decision (keep/drop + max) | full scores (mean, top-10) "
          "| reference per candidate | speed-up decision | speed-up full |")
    print("|---|---|---|---|---|---|")
    for pool in (pool_small, pool_big):
        decision, keep_rate = time_decisions(pool, probes)
        full = time_full_scores(pool, probes[: 500 if quick else 1_000])
        reference = reference_per_candidate[len(pool)]
        print(f"| {len(pool):,} | {decision * 1e3:.3f} ms ({len(pool) / decision:,.0f} pairs/s)"
              f" | {full * 1e3:.3f} ms ({len(pool) / full:,.0f} pairs/s) | {reference:.2f} s "
              f"| {reference / decision:,.0f}× | {reference / full:,.0f}× |")
    print(f"(probe keep rate {keep_rate:.0%}; reference per candidate = pool / reference "
          "pairs/s)")

    # The bootstrap: candidates in generation order until the pool reaches the target size.
    generator = InstructionGenerator(seeds, seed=21)
    stream = generator.batch(int(big * 2.3))
    needed = big - len(seeds)
    kept_so_far = _decisions(stream, seeds).cumsum()
    bootstrap_candidates = stream[: int(np.searchsorted(kept_so_far, needed)) + 1]
    start = time.perf_counter()
    result = novelty_filter(bootstrap_candidates, seeds)
    seconds = time.perf_counter() - start
    kept = int(result["keep"].sum())
    kept_before = np.concatenate([[0], np.cumsum(result["keep"].to_numpy())[:-1]])
    pairs = int((len(seeds) + kept_before).sum())
    reference_hours = pairs / reference_pairs / 3600
    print(f"\nbootstrap: {len(seeds)} seeds + {len(bootstrap_candidates):,} candidates → "
          f"pool {len(seeds) + kept:,} (kept {kept / len(bootstrap_candidates):.0%}), "
          f"with max, mean and top-10 of every kept one: {seconds:.1f} s "
          f"({pairs / seconds:,.0f} pairs/s over {pairs:,} pairs; "
          f"rouge-score ≈ {reference_hours:.1f} h → {reference_hours * 3600 / seconds:,.0f}×)")
    engine = kernels.numba
    print("engine: " + (
        f"numba {engine.__version__}" if fast.USE_NUMBA else "Python + rapidfuzz"
    ))


if __name__ == "__main__":
    main()
