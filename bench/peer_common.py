"""Command line, timing loop and JSON report shared by the peer scripts (stdlib only).

Each peer script prints exactly one JSON object on stdout (progress goes to stderr), in
the shape `odeflow bench` uses: ``workload``, ``ms_per_iter`` (median), ``peak_mib``
(peak RSS of the process), ``iters``, plus the spread (``ms_min``, ``ms_max``,
``ms_q1``, ``ms_q3``), the raw per-iteration times ``ms_iters`` and ``initial_loss``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable

import workloads


def build_parser(framework: str) -> argparse.ArgumentParser:
    """The common peer command line: WORKLOAD [--iters N] [--warmup W] [--depth D] ..."""
    p = argparse.ArgumentParser(
        description=f"Time one training iteration of a workload with {framework}."
    )
    p.add_argument("workload", choices=sorted(workloads.WORKLOADS))
    p.add_argument("--iters", type=int, default=20, help="timed iterations (default 20)")
    p.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed iterations first (JIT compilation, allocator warm-up; default 3)",
    )
    p.add_argument("--depth", type=int, default=None, help="depth for resnet-memory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="intra-op threads (default: all)"
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where to run: cpu (default) or cuda (the first NVIDIA GPU; full f32 matmuls "
        "and convolutions, no TF32)",
    )
    return p



def check_counts(args: argparse.Namespace) -> None:
    """Rejects non-positive iteration counts with a message naming the value."""
    if args.iters < 1:
        sys.exit(f"--iters must be >= 1, got {args.iters}")
    if args.warmup < 1:
        sys.exit(f"--warmup must be >= 1 (the first call compiles), got {args.warmup}")


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_iterations(step: Callable[[], None], warmup: int, iters: int) -> list[float]:
    """Runs `step` warmup times untimed, then iters times timed; returns ms per call.

    `step` must return only once its work is finished (block_until_ready for JAX)."""
    for i in range(warmup):
        t = time.perf_counter()
        step()
        log(f"warm-up {i + 1}/{warmup}: {1e3 * (time.perf_counter() - t):.1f} ms")
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        ms.append(1e3 * (time.perf_counter() - t))
    return ms


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def report(spec: dict, ms: list[float], fields: dict) -> None:
    """Prints the one-line JSON result on stdout."""
    out = {
        "workload": spec["name"],
        **workloads.summarize_ms(ms),
        "peak_mib": round(peak_rss_mib(), 1),
        "iters": len(ms),
        "ms_iters": [round(x, 4) for x in ms],
        "expected_initial_loss": workloads.expected_initial_loss(spec),
        "steps": spec["steps"],
        "solver": spec["solver"],
        "dtype": "float32",
        "python": platform.python_version(),
        **fields,
    }
    if "depth" in spec:
        out["depth"] = spec["depth"]
    print(json.dumps(out), flush=True)
