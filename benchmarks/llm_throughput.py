"""Model-access throughput: requests/s against a fixed-latency fake endpoint, and the embedded
model's tokens/s.

1. A fake OpenAI-compatible server (another process, real HTTP on 127.0.0.1) answers every
   request after a fixed latency. `ModelClient` sends a batch with a bounded number in flight;
   the ideal rate is in_flight / latency. Printed: achieved requests/s and the ratio to ideal.
2. Overhead per request: client CPU time per request through ModelClient (both HTTP
   transports) and through a bare aiohttp loop posting the same JSON; the difference is what
   sipipeline adds. The official SDK's typed `completions.create` is shown for reference.
3. An endpoint enforcing token buckets of requests and tokens per minute (429 beyond them),
   with `x-ratelimit-*` headers and without (429 + Retry-After only): the throughput the shared
   limiter sustains as a fraction of the enforced limit, and the share of requests answered 429.
4. The embedded model (Gemma 3 270M in llama.cpp, in process): completion tokens/s for one
   stream and for the default parallel setting.

Run: `python benchmarks/llm_throughput.py [--latency 0.2] [--in-flight 16,64] [--rounds 12]
[--rpm 3000] [--tpm 200000] [--bucket-seconds 60] [--rate-seconds 20] [--skip-embedded]`.
Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import aiohttp  # noqa: E402
import openai  # noqa: E402

from sipipeline.model.client import ModelClient  # noqa: E402
from sipipeline.model.config import ModelClientConfig  # noqa: E402
from sipipeline.model.types import CompletionRequest, SamplingParams  # noqa: E402
from sipipeline_tests.support.fake_openai_server import (  # noqa: E402
    FakeOpenAIServer,
    RateLimit,
)

PARAMS = SamplingParams(max_tokens=64, temperature=0.7, top_p=0.5, stop=("\n\n",))


def start_fake_server(latency_s: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sipipeline_tests.support.fake_openai_server", "--latency",
         str(latency_s)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    base_url = process.stdout.readline().strip()
    return process, base_url


def stop_fake_server(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(timeout=10)


def batch(count: int, tag: str) -> list[CompletionRequest]:
    return [CompletionRequest(f"{tag} prompt {i}: list some tasks\n1.", PARAMS)
            for i in range(count)]


def run_client(base_url: str, in_flight: int, requests: list[CompletionRequest],
               journal_dir: str, transport: str) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for one batch through ModelClient."""
    config = ModelClientConfig(base_url=base_url, model="fake-model", api_key="none",
                               journal_path=f"{journal_dir}/journal-{transport}.sqlite",
                               max_in_flight=in_flight, timeout_s=30,
                               http_transport=transport)
    with ModelClient(config) as client:
        client.complete(batch(in_flight, f"warm-up {transport}"), purpose="warm_up")
        wall, cpu = time.perf_counter(), time.process_time()
        results = client.complete(requests, purpose="benchmark")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert len(results) == len(requests)
        assert client.usage("benchmark").requests == len(requests)
    return wall, cpu


def body_of(request: CompletionRequest) -> dict:
    return {"model": "fake-model", "prompt": request.prompt, "max_tokens": PARAMS.max_tokens,
            "temperature": PARAMS.temperature, "top_p": PARAMS.top_p,
            "presence_penalty": PARAMS.presence_penalty,
            "frequency_penalty": PARAMS.frequency_penalty, "stop": list(PARAMS.stop)}


def run_bare(base_url: str, in_flight: int, requests: list[CompletionRequest],
             kind: str) -> tuple[float, float]:
    """The same requests with no journal, keys, retries or accounting.

    kind "aiohttp": a bare aiohttp session posting the same JSON (what ModelClient's default
    transport does underneath); "openai": the SDK's typed `completions.create` on its default
    transport, as most code calls it.
    """

    async def go() -> tuple[float, float]:
        if kind == "aiohttp":
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                headers={"Authorization": "Bearer none", "Content-Type": "application/json"})

            async def send(body: dict) -> None:
                async with session.post(f"{base_url}/completions",
                                        data=json.dumps(body).encode()) as response:
                    json.loads(await response.read())

            close = session.close
        else:
            client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0,
                                        timeout=30)

            async def send(body: dict) -> None:
                await client.completions.create(**body)

            close = client.close
        work = iter([body_of(r) for r in requests])

        async def worker() -> None:
            for body in work:
                await send(body)

        await asyncio.gather(*(send(body_of(r)) for r in batch(in_flight, f"{kind} warm-up")))
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await close()
        return wall, cpu

    return asyncio.run(go())


def bench_endpoint(latency_s: float, in_flight: int, rounds: int) -> None:
    count = in_flight * rounds
    ideal = in_flight / latency_s
    process, base_url = start_fake_server(latency_s)
    measured: dict[str, tuple[float, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as journal_dir:
            for transport in ("aiohttp", "openai"):
                measured[f"ModelClient, {transport} transport"] = run_client(
                    base_url, in_flight, batch(count, transport), journal_dir, transport)
            # A second pass over the same batch is answered from the journal alone.
            config = ModelClientConfig(base_url=base_url, model="fake-model", api_key="none",
                                       journal_path=f"{journal_dir}/journal-aiohttp.sqlite")
            with ModelClient(config) as client:
                start = time.perf_counter()
                client.complete(batch(count, "aiohttp"), purpose="benchmark")
                replay = time.perf_counter() - start
        measured["bare aiohttp, same JSON"] = run_bare(base_url, in_flight,
                                                       batch(count, "bare"), "aiohttp")
        measured["bare openai SDK create()"] = run_bare(base_url, in_flight,
                                                        batch(count, "typed"), "openai")
    finally:
        stop_fake_server(process)
    print(f"fake endpoint: latency {latency_s * 1000:.0f} ms, {in_flight} in flight, "
          f"{count} requests; ideal {ideal:.1f} req/s")
    for name, (wall, cpu) in measured.items():
        print(f"  {name:34s} {count / wall:7.1f} req/s  ratio to ideal {count / wall / ideal:.3f}"
              f"  client CPU {cpu / count * 1000:.3f} ms/request")
    ours = measured["ModelClient, aiohttp transport"][1]
    bare = measured["bare aiohttp, same JSON"][1]
    print(f"  sipipeline's own CPU per request (ModelClient minus bare aiohttp): "
          f"{(ours - bare) / count * 1000:.3f} ms (journal, keys, retries, accounting)")
    print(f"  journal replay: {replay / count * 1000:.3f} ms per request "
          f"({count} answered from the journal in {replay:.2f} s)")
    print(f"  load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def bench_rate_limited(rpm: float, tpm: float, bucket_s: float, seconds: float,
                       latency_s: float, headers: bool) -> None:
    """Throughput against enforced RPM/TPM buckets, as a fraction of the binding limit.

    The buckets start full (a burst any client gets for free), so throughput is measured from
    the end of the first bucket period to the last accepted request, from the server's log.
    """
    limits = RateLimit(requests=rpm * bucket_s / 60, tokens=tpm * bucket_s / 60,
                       period_s=bucket_s, headers=headers)
    params = SamplingParams(max_tokens=16)
    probe = CompletionRequest("rate limited prompt number 0", params)
    tokens_per_request = len(probe.prompt.split()) + params.max_tokens
    limit_rps = min(rpm / 60, tpm / 60 / tokens_per_request)
    count = int(limit_rps * (seconds + bucket_s)) + int(rpm * bucket_s / 60)
    requests = [CompletionRequest(f"rate limited prompt number {i}", params)
                for i in range(count)]
    with tempfile.TemporaryDirectory() as journal_dir, \
            FakeOpenAIServer(rate_limit=limits, latency_s=latency_s) as server:
        config = ModelClientConfig(base_url=server.base_url, model="fake-model", api_key="none",
                                   journal_path=f"{journal_dir}/j.sqlite", max_in_flight=64,
                                   max_retries=1000, backoff_max_s=5.0, timeout_s=30)
        with ModelClient(config) as client:
            client.complete(requests, purpose="benchmark")
        log = server.completion_log()
    accepted = sorted(e["time"] for e in log if e["status"] == 200)
    start = accepted[0] + bucket_s
    measured = [t for t in accepted if t >= start]
    rate = (len(measured) - 1) / (measured[-1] - start) if len(measured) > 1 else 0.0
    rejected = sum(1 for e in log if e.get("rate_limited")) / len(log)
    binding = "requests" if rpm / 60 <= tpm / 60 / tokens_per_request else "tokens"
    print(f"rate-limited endpoint ({'with' if headers else 'without'} x-ratelimit headers): "
          f"{rpm:g} RPM, {tpm:g} TPM ({tokens_per_request} tokens per request: the {binding} "
          f"limit binds at {limit_rps:.1f} req/s), {count} requests")
    print(f"  {rate:7.1f} req/s = {rate / limit_rps:.3f} of the enforced limit; "
          f"{rejected:.1%} of requests answered 429")


def bench_embedded(max_tokens: int) -> None:
    from sipipeline import embedded

    endpoint = embedded.ensure_server()
    prompt = ("Come up with a series of tasks:\n1. Write a haiku about autumn.\n"
              "2. Summarize the following article in one sentence.\n"
              "3. Give three reasons to learn a second language.\n4.")
    params = SamplingParams(max_tokens=max_tokens, temperature=0.7, top_p=0.5)
    print(f"embedded model {endpoint.model} ({Path(endpoint.model_path).name}), "
          f"{embedded.DEFAULT_N_PARALLEL} parallel slots, {max_tokens} new tokens per request")
    with tempfile.TemporaryDirectory() as journal_dir:
        for in_flight in (1, embedded.DEFAULT_N_PARALLEL):
            config = ModelClientConfig(base_url=endpoint.base_url, model=endpoint.model,
                                       api_key="", journal_path=f"{journal_dir}/j.sqlite",
                                       endpoint_id=endpoint.endpoint_id,
                                       max_in_flight=in_flight, max_n_per_request=1,
                                       timeout_s=600)
            requests = [CompletionRequest(prompt, params, sampling_seed=in_flight * 100 + i)
                        for i in range(in_flight * 2)]
            with ModelClient(config) as client:
                start = time.perf_counter()
                client.complete(requests, purpose="embedded")
                wall = time.perf_counter() - start
                usage = client.usage("embedded")
            tokens = usage.completion_tokens
            print(f"  {in_flight} in flight: {tokens:.0f} completion tokens in {wall:.1f} s = "
                  f"{tokens / wall:.1f} tokens/s ({usage.prompt_tokens:.0f} prompt tokens)")
    embedded.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-flight", default="16,64",
                        help="comma-separated in-flight counts to measure")
    parser.add_argument("--rounds", type=int, default=12,
                        help="requests per in-flight slot")
    parser.add_argument("--rpm", type=float, default=3000, help="enforced requests per minute")
    parser.add_argument("--tpm", type=float, default=200_000, help="enforced tokens per minute")
    parser.add_argument("--bucket-seconds", type=float, default=60,
                        help="how many seconds of the limits a full bucket holds (60 like "
                             "OpenAI; less for a quicker run)")
    parser.add_argument("--rate-seconds", type=float, default=20,
                        help="how long to measure past the first bucket")
    parser.add_argument("--embedded-tokens", type=int, default=64)
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    for in_flight in (int(v) for v in args.in_flight.split(",")):
        bench_endpoint(args.latency, in_flight, args.rounds)
    for headers in (True, False):
        bench_rate_limited(args.rpm, args.tpm, args.bucket_seconds, args.rate_seconds,
                           args.latency, headers)
    if not args.skip_embedded:
        bench_embedded(args.embedded_tokens)


if __name__ == "__main__":
    main()
