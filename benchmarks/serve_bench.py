"""Throughput and latency of `ademvl serve`, with and without batching, side by side in one run.

Two servers on the same adapter are started at once: `--max-batch 1` (requests
run one after another) and `--max-batch 8` (concurrent requests share one
`generate` call). Rounds alternate between them, so both see the same machine
load. Each round sends easy-VQA test questions (image + question, greedy,
the demo evaluation's 8-token budget) from 1 and from 8 concurrent clients using
the official `openai` client, each client sending its next request when the last
one is answered. Reported: requests/s, median and p95 latency per (server,
clients), the speed-up from batching (req/s of max-batch 8 / max-batch 1 at 8
clients), and whether the two servers gave the same answers.

    python benchmarks/serve_bench.py                      # the demo adapter (after `ademvl demo`)
    python benchmarks/serve_bench.py --requests 16 --rounds 1 --checkpoint DIR

Writes benchmarks/serve_results.json and benchmarks/serve_results.md.
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def served_model(url: str) -> str:
    with urllib.request.urlopen(f"{url}/v1/models") as response:
        return json.loads(response.read())["data"][0]["id"]


def workload(n: int) -> list[tuple[str, str]]:
    """The first `n` easy-VQA test questions as (data URL of the image, question)."""
    from ademvl.data.easyvqa import easyvqa_data_dir

    root = Path(easyvqa_data_dir()) / "test"
    questions = json.loads((root / "questions.json").read_text())[:n]
    out = []
    for question, _answer, image_id in questions:
        data = base64.b64encode((root / "images" / f"{image_id}.png").read_bytes()).decode()
        out.append((f"data:image/png;base64,{data}", question))
    return out


def run_clients(url: str, model: str, requests: list, clients: int, max_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

    def one(item):
        image, question = item
        start = time.perf_counter()
        content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": question}]
        reply = client.chat.completions.create(model=model, max_tokens=max_tokens,
                                               messages=[{"role": "user", "content": content}])
        return time.perf_counter() - start, reply.choices[0].message.content

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, requests))
    wall = time.perf_counter() - start
    return {"wall_s": wall, "latencies": [r[0] for r in results], "answers": [r[1] for r in results]}


def summarise(runs: list[dict], n: int) -> dict:
    latencies = sorted(x for run in runs for x in run["latencies"])
    rates = [n / run["wall_s"] for run in runs]
    return {"requests_per_s": statistics.median(rates), "requests_per_s_rounds": [round(r, 3) for r in rates],
            "median_latency_s": statistics.median(latencies),
            "p95_latency_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/ademvl/adapter")
    parser.add_argument("--requests", type=int, default=32, help="requests per (server, clients) per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median req/s is reported)")
    parser.add_argument("--max-tokens", type=int, default=8, help="answer budget (the demo evaluation's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each server")
    parser.add_argument("--batch-wait-ms", type=float, help="the batching server's --batch-wait-ms (default: serve's)")
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument("--out", default=str(HERE), help="folder for serve_results.{json,md}")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE.parent / "tests"))  # the server-in-a-child-process helper the server tests use
    from child_process import running_server

    requests = workload(args.requests)
    with contextlib.ExitStack() as stack:
        wait = [] if args.batch_wait_ms is None else ["--batch-wait-ms", str(args.batch_wait_ms)]
        servers = {batch: stack.enter_context(running_server(
            "--checkpoint", args.checkpoint, "--max-batch", str(batch), "--device", "cpu", *wait, threads=args.threads))
            for batch in (1, 8)}
        names = {batch: served_model(url) for batch, url in servers.items()}
        for batch, url in servers.items():  # warm-up: first-call costs out of the timings
            run_clients(url, names[batch], requests[:8], 8, args.max_tokens)
        runs = {(batch, clients): [] for batch in (1, 8) for clients in (1, 8)}
        for round_ in range(args.rounds):
            for clients in (1, 8):
                for batch in (1, 8):
                    runs[batch, clients].append(run_clients(servers[batch], names[batch], requests, clients,
                                                            args.max_tokens))
                    print(f"round {round_ + 1}: max-batch {batch}, {clients} clients: "
                          f"{args.requests / runs[batch, clients][-1]['wall_s']:.2f} req/s", flush=True)
        batches = {batch: json.loads(urllib.request.urlopen(f"{url}/info").read())["batches"]
                   for batch, url in servers.items()}

    rows = {f"max_batch={batch},clients={clients}": summarise(r, args.requests) for (batch, clients), r in runs.items()}
    reference = runs[1, 1][0]["answers"]
    same = {key: sum(a == b for run in r for a, b in zip(run["answers"], reference)) / (len(r) * len(reference))
            for key, r in ((f"max_batch={b},clients={c}", r) for (b, c), r in runs.items())}
    speedup = rows["max_batch=8,clients=8"]["requests_per_s"] / rows["max_batch=1,clients=8"]["requests_per_s"]
    result = {"checkpoint": args.checkpoint, "requests": args.requests, "rounds": args.rounds,
              "batch_wait_ms": args.batch_wait_ms,
              "max_tokens": args.max_tokens, "threads": args.threads,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "note": args.note, "results": rows,
              "batching_speedup_8_clients": speedup, "answers_equal_to_unbatched_1_client": same,
              "batch_sizes_seen": batches, "example_answers": list(zip([q for _, q in requests[:4]], reference[:4]))}
    out = Path(args.out)
    (out / "serve_results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# `ademvl serve` throughput (benchmarks/serve_bench.py)", "",
        f"Adapter `{args.checkpoint}`, easy-VQA test questions with their image, greedy, max_tokens {args.max_tokens}, "
        f"{args.requests} requests per cell, median of {args.rounds} alternating rounds; each server "
        f"{args.threads} torch threads on {os.cpu_count()} CPUs. {args.note}".rstrip(), "",
        "| server | clients | requests/s | median latency (s) | p95 latency (s) | answers = unbatched |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (batch, clients) in runs:
        key = f"max_batch={batch},clients={clients}"
        row = rows[key]
        lines.append(f"| --max-batch {batch} | {clients} | {row['requests_per_s']:.2f} | {row['median_latency_s']:.3f} "
                     f"| {row['p95_latency_s']:.3f} | {same[key]:.0%} |")
    lines += ["", f"**Speed-up from batching, 8 concurrent clients: {speedup:.2f}x** requests/s "
                  "(--max-batch 8 over --max-batch 1, same run).", "",
              f"Batch sizes the servers ran ({{size: count}}): {json.dumps(batches)}", ""]
    (out / "serve_results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
