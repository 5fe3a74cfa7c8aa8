"""Round overhead at scale: whole rounds through Dagster, from the 175 seeds to a target pool.

A fake model in another process (real HTTP on 127.0.0.1, no latency) answers every prompt with
novel text — instructions built from a large invented vocabulary, so nearly every candidate
passes the ROUGE-L filter and rounds keep adding thousands of tasks. Each round is its own
process running `sipipeline run --rounds 1` on a persistent instance and store, as a user or the
sensor's run worker would, so start-up, peak RSS and every read of the pool are counted.

Printed per round: pool size at the start, tasks added, wall time, each step's time split into
model time (inside `ModelClient.complete`) and sipipeline's own time, the round's own overhead
(wall minus model time), the round process's peak RSS, the Parquet store's size and the local
folder's (the response journal, reports). At the end: the ratio of the last round's overhead to
the overhead of the round nearest a 10K pool, and the total wall time.
Process start-up (importing the definitions in a fresh interpreter) is measured separately.

Run: `python benchmarks/round_overhead.py [--target-pool 52000] [--tasks-per-round 4000]
[--max-rounds 200] [--keep]`. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

INSTRUCTIONS_PER_RESPONSE = 7  # items 9..15 of the numbered list
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "zu", "fe", "gi",
             "ho", "ja", "bu", "ce", "wy", "xo", "qi"]


def _vocabulary(size: int = 6000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def novel_responder():
    """A responder for FakeOpenAIServer whose instructions share almost no words."""
    import hashlib

    from sipipeline.method import prompts

    words = _vocabulary()

    def rng_for(prompt: str, index: int) -> random.Random:
        return random.Random(hashlib.sha256(f"{index}|{prompt}".encode()).digest())

    def instruction(rng: random.Random) -> str:
        picked = rng.sample(words, 9)
        return (f"Describe how the {picked[0]} {picked[1]} of {picked[2]} changes the "
                f"{picked[3]} {picked[4]} during {picked[5]} {picked[6]} {picked[7]} "
                f"{picked[8]}.")

    def respond(prompt: str, body: dict, index: int) -> tuple[str, str]:
        rng = rng_for(prompt, index)
        if prompt.startswith(prompts.GENERATION_HEADER):
            items = [instruction(rng) for _ in range(INSTRUCTIONS_PER_RESPONSE)]
            lines = [f" {items[0]}"] + [f"{10 + i}. {text}" for i, text in enumerate(items[1:])]
            return "\n".join(lines), "stop"
        if prompt.startswith(prompts.CLASSIFICATION_HEADER):
            return (" Yes" if rng.random() < 0.2 else " No"), "stop"
        if prompt.startswith(prompts.OUTPUT_FIRST_HEADER):
            return (f"Class label: {rng.choice(words)}\nInput: {' '.join(rng.sample(words, 6))}"
                    "\n\n"), "stop"
        return (f"Example 1\nInput: {' '.join(rng.sample(words, 5))}\n"
                f"Output: {' '.join(rng.sample(words, 8))}\n\n"), "stop"

    return respond


def serve() -> None:
    """`--serve`: run the fake model until stdin closes; print its base URL first."""
    from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer(responder=novel_responder()) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


def start_server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=REPO_ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def startup_seconds() -> float:
    """Importing the code location in a fresh interpreter (what every run worker pays)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sipipeline.definitions"], cwd=REPO_ROOT,
                   check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return time.perf_counter() - started


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class ModelTimer:
    """Wraps `ModelClient.complete` to add up the time spent waiting for the model, per purpose."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)

    def install(self) -> None:
        from sipipeline.model.client import ModelClient

        original = ModelClient.complete
        timer = self

        def timed(client, requests, *args, **kwargs):
            purpose = kwargs.get("purpose", args[0] if args else "model")
            started = time.perf_counter()
            try:
                return original(client, requests, *args, **kwargs)
            finally:
                timer.seconds[purpose] += time.perf_counter() - started

        ModelClient.complete = timed


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Wall seconds of each step of a run, from its event log."""
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            spent[event.step_key] = entry.timestamp - started.get(event.step_key, entry.timestamp)
    return spent


def one_round(num_prompts: int, report: Path) -> None:
    """`--one-round`: what a round's process does — `sipipeline run --rounds 1` — timed."""
    import json

    timer = ModelTimer()
    timer.install()
    from sipipeline.cli import main as cli_main

    status = cli_main(["run", "--rounds", "1", "--num-prompts", str(num_prompts),
                       "--log-level", "ERROR"])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report.write_text(json.dumps({"status": status, "model": dict(timer.seconds),
                                  "rss_mb": rss_mb}), encoding="utf-8")


DONE_LINE = re.compile(r"sipipeline: (round_\d+) done \(run ([\w-]+)\): (\d+) new tasks, "
                       r"pool (\d+) tasks")


def run_round_process(work: Path, env: dict, num_prompts: int) -> dict:
    """One round in a fresh interpreter, like the sensor's run worker or `sipipeline run`."""
    import json

    report = work / "round.json"
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--one-round", "--num-prompts", str(num_prompts),
         "--report", str(report)], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    done = DONE_LINE.search(completed.stdout)
    if completed.returncode != 0 or done is None:
        raise RuntimeError(f"round process failed ({completed.returncode}):\n"
                           f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    facts = json.loads(report.read_text(encoding="utf-8"))
    return {"wall": wall, "key": done.group(1), "run_id": done.group(2),
            "added": int(done.group(3)), "pool": int(done.group(4)), **facts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-pool", type=int, default=12_000)
    parser.add_argument("--tasks-per-round", type=int, default=4_000)
    parser.add_argument("--max-rounds", type=int, default=200)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (instance, store, local files) afterwards")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--num-prompts", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.one_round:
        one_round(args.num_prompts, args.report)
        return

    import dagster as dg

    print(f"process start-up (import sipipeline.definitions): {startup_seconds():.1f} s")
    server, base_url = start_server()
    work = Path(tempfile.mkdtemp(prefix="sipipeline-overhead-"))
    storage, home = work / "storage", work / "home"
    home.mkdir(parents=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "SIPIPELINE_STORAGE": str(storage),
           "SIPIPELINE_LOCAL_DIR": str(work / "local"), "OPENAI_BASE_URL": base_url,
           "OPENAI_API_KEY": "none", "SIPIPELINE_LLM_MODEL": "fake-model",
           "PYTHONPATH": str(REPO_ROOT)}
    num_prompts = max(1, round(args.tasks_per_round / INSTRUCTIONS_PER_RESPONSE))
    rows = []
    pool_size, total_started = 175, time.perf_counter()
    print(f"{'round':>5} {'pool':>7} {'added':>6} {'wall s':>7} {'model s':>7} "
          f"{'own s':>7} {'RSS MB':>7} {'store MB':>8} {'local MB':>8}  "
          "steps (own s / model s)")
    try:
        for number in range(1, args.max_rounds + 1):
            if pool_size >= args.target_pool:
                break
            try:
                done = run_round_process(work, env, num_prompts)
            except RuntimeError as error:
                print(f"round {number} failed; stopping\n{error}")
                break
            model_by_step = done["model"]
            model = sum(model_by_step.values())
            instance = dg.DagsterInstance.from_config(str(home))
            try:
                steps = step_seconds(instance, done["run_id"])
            finally:
                instance.dispose()
            shown = " ".join(
                f"{step}={spent - model_by_step.get(step, 0.0):.1f}/"
                f"{model_by_step.get(step, 0.0):.1f}" for step, spent in sorted(steps.items()))
            size, local = folder_bytes(storage) / 2**20, folder_bytes(work / "local") / 2**20
            wall = done["wall"]
            rows.append((number, pool_size, done["added"], wall, model, wall - model))
            print(f"{number:>5} {pool_size:>7} {done['added']:>6} {wall:>7.1f} "
                  f"{model:>7.1f} {wall - model:>7.1f} {done['rss_mb']:>7.0f} {size:>8.1f} "
                  f"{local:>8.1f}  {shown}", flush=True)
            pool_size = done["pool"]
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    total = time.perf_counter() - total_started
    print(f"total: {len(rows)} rounds, pool {pool_size}, {total / 60:.1f} min wall, "
          f"storage {folder_bytes(storage) / 2**20:.0f} MB")
    if len(rows) >= 2:
        near_10k = min(rows, key=lambda row: abs(row[1] - 10_000))
        last = rows[-1]
        print(f"own overhead at pool {last[1]}: {last[5]:.1f} s; at pool {near_10k[1]}: "
              f"{near_10k[5]:.1f} s; ratio {last[5] / max(near_10k[5], 1e-9):.2f}x")
    if args.keep:
        print(f"work folder kept: {work}")
    else:  # hundreds of MB to GBs per run
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
