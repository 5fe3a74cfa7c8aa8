"""ROUGE-L to the nearest of a fixed reference set equals rouge-score's best pair score."""

from __future__ import annotations

from rouge_score import rouge_scorer

from sipipeline.similarity import max_rouge_l_to

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def test_max_rouge_l_to_fixed_references_matches_rouge_score():
    seeds = ["Write a poem about the ocean.", "Give me a list of three red fruits.",
             "Naïve café ﬁle: 3.14 don't", "", "一二三"]
    candidates = ["Write a short poem about the sea and the ocean.", "three fruits, red",
                  "A list of fruits; give me three!", "café 3 14 dont", "一二三", "",
                  "Write a poem about the ocean.", "ocean the about poem a write"]
    got = max_rouge_l_to(candidates, seeds)
    for candidate, value in zip(candidates, got, strict=True):
        expected = max(SCORER.score(candidate, seed)["rougeL"].fmeasure for seed in seeds)
        assert value == expected, candidate
