"""Model-calling stages log their progress to the run log: done/total, journal, rate, ETA,
tokens and USD, at most every ~10 s and at the end."""

from __future__ import annotations

import re

from sipipeline.defs.progress_log import stage_progress
from sipipeline.model.progress import Progress, listening

STAGES = ("generated_instructions", "classification_labels", "instances")
LINE = re.compile(r"round_001 progress (?P<purpose>\w+): (?P<done>\d+)/(?P<total>\d+) requests "
                  r"\((?P<journal>\d+) from the journal\), .* req/s, (?P<state>done|ETA \S+), "
                  r"(?P<tokens>[\d,]+) tokens, \$\d+\.\d{4}, \S+ elapsed$")


def _progress_lines(harness, run_id: str) -> list[re.Match]:
    messages = [entry.user_message for entry in harness.instance.all_logs(run_id)]
    return [m for m in map(LINE.match, messages) if m]


def test_every_model_calling_stage_logs_its_progress_and_its_end(harness_for):
    harness = harness_for()
    heard: list[Progress] = []
    with listening(heard.append):
        result = harness.run_round(1, num_prompts=4)
    assert result.success
    lines = _progress_lines(harness, result.run_id)
    for stage in STAGES:
        mine = [m for m in lines if m["purpose"] == stage]
        assert mine, f"no progress line from {stage}"
        last = mine[-1]
        assert last["state"] == "done" and last["done"] == last["total"]
        assert int(last["total"]) > 0 and int(last["tokens"].replace(",", "")) > 0
        assert int(mine[0]["done"]) == 0  # the first report: nothing answered yet
    assert {p.purpose for p in heard} == set(STAGES)  # in-process listeners hear them too

    again = harness.run_round(1, num_prompts=4)  # every answer is in the journal now
    for match in _progress_lines(harness, again.run_id):
        if match["state"] == "done":
            assert match["journal"] == match["done"] == match["total"]


def test_the_run_log_gets_at_most_one_line_per_interval_and_always_the_last():
    class Log:
        def __init__(self):
            self.lines: list[str] = []

        def info(self, text):
            self.lines.append(text)

    class Context:
        has_partition_key = True
        partition_key = "round_007"
        log = Log()

    callback = stage_progress(Context(), interval_s=3600)
    for done in range(5):
        callback(Progress("instances", 5, done, 0, 1.0 + done, 10, 5, 0.001))
    callback(Progress("instances", 5, 5, 0, 9.0, 10, 5, 0.001, finished=True))
    assert len(Context.log.lines) == 2
    assert Context.log.lines[0].startswith("round_007 progress instances: 0/5 requests")
    assert "5/5 requests" in Context.log.lines[1] and ", done," in Context.log.lines[1]
