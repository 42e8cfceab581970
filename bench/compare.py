"""Runs odeflow, diffrax and torchdiffeq on the same workloads and tabulates ms/iteration.

    python bench/compare.py --workloads sphere2-euler256,sphere2-rk4-64 --iters 20

Each (workload, framework) pair runs in its own subprocess (isolation: no shared thread
pools, allocators or JIT caches; peak RSS is per process). The thread count (default: all
cores) is passed to every framework through the environment (OMP/MKL/OpenBLAS/Rayon
threads, XLA_FLAGS) and to the peers' --threads. A framework that is skipped, missing or
fails shows as "n/a"; the reason is kept in the JSON.

Writes bench/results/compare-<date>-<time>.json (every raw result) and .md (the tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import workloads  # noqa: E402

FRAMEWORKS = ("odeflow", "diffrax", "torchdiffeq")
DEFAULT_WORKLOADS = "sphere2-euler256,sphere2-rk4-64,pendulum-mlp128-euler2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--workloads",
        default=DEFAULT_WORKLOADS,
        help=f"comma-separated list (default {DEFAULT_WORKLOADS}); 'all' for every "
        f"workload: {', '.join(workloads.WORKLOADS)}",
    )
    p.add_argument("--iters", type=int, default=20, help="timed iterations per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed peer iterations (JIT etc.)")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="intra-op threads for every framework (default: all cores)",
    )
    p.add_argument(
        "--depths",
        default=",".join(map(str, workloads.RESNET_MEMORY_DEPTHS)),
        help="depths for resnet-memory (default 1,151)",
    )
    p.add_argument("--skip-odeflow", action="store_true")
    p.add_argument("--skip-jax", action="store_true", help="skip diffrax")
    p.add_argument("--skip-torch", action="store_true", help="skip torchdiffeq")
    p.add_argument(
        "--odeflow",
        default=str(ROOT / "target" / "release" / "odeflow"),
        help="odeflow binary (default target/release/odeflow, built if missing)",
    )
    p.add_argument(
        "--no-build",
        action="store_true",
        help="don't run cargo build --release -p odeflow-cli when the binary is missing",
    )
    p.add_argument(
        "--grad",
        default="backprop",
        choices=("backprop", "adjoint", "reversible"),
        help="odeflow gradient method (default backprop, like the peers)",
    )
    p.add_argument(
        "--torch-rk4",
        default="classic",
        choices=("classic", "38"),
        help="torchdiffeq RK4 variant (classic = odeflow rk4; 38 = torchdiffeq 'rk4')",
    )
    p.add_argument(
        "--diffrax-checkpoints",
        default="default",
        choices=("default", "all"),
        help="RecursiveCheckpointAdjoint checkpoints (default: diffrax's own)",
    )
    p.add_argument(
        "--diffrax-conv",
        default="matmul",
        choices=("matmul", "eqx"),
        help="diffrax conv fields: matmul (channels-last, default) or eqx "
        "(vmapped eqx.nn.Conv, slow in XLA:CPU loops: jax-ml/jax#12868)",
    )
    p.add_argument("--python", default=sys.executable, help="interpreter for the peer scripts")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--out-dir", default=str(BENCH / "results"))
    p.add_argument(
        "--render",
        metavar="JSON",
        help="only print the tables of an earlier compare-*.json and exit",
    )
    args = p.parse_args(argv)
    names = (
        list(workloads.WORKLOADS)
        if args.workloads == "all"
        else [w.strip() for w in args.workloads.split(",") if w.strip()]
    )
    for w in names:
        if w not in workloads.WORKLOADS:
            p.error(f"unknown workload {w!r}; known: {', '.join(workloads.WORKLOADS)}")
    args.workload_list = names
    args.odeflow = str(Path(args.odeflow).resolve())
    try:
        args.depth_list = [int(d) for d in args.depths.split(",") if d.strip()]
    except ValueError:
        p.error(f"--depths must be comma-separated integers, got {args.depths!r}")
    if any(d < 1 for d in args.depth_list):
        p.error(f"--depths must be >= 1, got {args.depths!r}")
    for name in ("iters", "warmup", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def child_env(threads: int) -> dict:
    """Environment for every benchmark subprocess: one thread count for all libraries."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(threads)
    xla = (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if threads == 1
        else "--xla_cpu_multi_thread_eigen=true"
    )
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + xla).strip()
    env["PYTHONUNBUFFERED"] = "1"
    return env


def last_json_object(text: str) -> dict | None:
    """The last JSON object in `text` that starts at the beginning of a line, whether it is
    printed on one line or pretty-printed over many (tolerates log noise around it)."""
    decoder = json.JSONDecoder()
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    for start in reversed(starts):
        chunk = text[start:].lstrip(" \t")
        if not chunk.startswith("{"):
            continue
        try:
            obj, _ = decoder.raw_decode(chunk)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def stats_of(result: dict) -> dict:
    """Median/min/max/quartiles: from raw ms_iters when given, else the reported fields."""
    if isinstance(result.get("ms_iters"), list) and result["ms_iters"]:
        return workloads.summarize_ms([float(x) for x in result["ms_iters"]])
    out = {"ms_per_iter": float(result["ms_per_iter"])}
    for k in ("ms_min", "ms_max", "ms_q1", "ms_q3"):
        if isinstance(result.get(k), (int, float)):
            out[k] = float(result[k])
    return out


def run_one(cmd: list[str], env: dict, timeout: float) -> dict:
    """Runs one benchmark subprocess; returns its JSON plus bookkeeping, or an error."""
    rec: dict = {"cmd": cmd, "loadavg_before": list(os.getloadavg())}
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        rec["error"] = f"timed out after {timeout:.0f} s"
        return rec
    except OSError as e:
        rec["error"] = f"could not start {cmd[0]}: {e}"
        return rec
    rec["wall_s"] = round(time.perf_counter() - t, 2)
    rec["loadavg_after"] = list(os.getloadavg())
    rec["stderr_tail"] = proc.stderr[-2000:]
    result = last_json_object(proc.stdout)
    if proc.returncode != 0:
        rec["error"] = f"exit status {proc.returncode}: {proc.stderr.strip()[-400:]}"
    elif result is None:
        rec["error"] = f"no JSON object on stdout: {proc.stdout.strip()[-400:]!r}"
    elif not isinstance(result.get("ms_per_iter"), (int, float)) and not result.get("ms_iters"):
        rec["error"] = f"JSON has no ms_per_iter: {result}"
    else:
        rec["result"] = result
        rec["stats"] = stats_of(result)
    return rec


class OdeflowBinary:
    """Finds (or builds once) the odeflow binary; remembers why it is unavailable."""

    def __init__(self, path: str, build: bool):
        self.path = Path(path)
        self.build = build
        self.error: str | None = None
        self.checked = False

    def ready(self) -> bool:
        if self.checked:
            return self.error is None
        self.checked = True
        if not self.path.exists() and self.build:
            cargo = shutil.which("cargo")
            if cargo is None:
                self.error = f"{self.path} missing and cargo not found"
                return False
            print("building odeflow: cargo build --release -p odeflow-cli", file=sys.stderr)
            proc = subprocess.run(
                [cargo, "build", "--release", "-p", "odeflow-cli"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                self.error = f"cargo build failed: {proc.stderr.strip()[-400:]}"
                return False
        if not self.path.exists():
            self.error = f"odeflow binary {self.path} not found"
            return False
        return True


def commands(args, workload: str, depth: int | None, odeflow: OdeflowBinary) -> dict:
    """The command line per framework for one row, or a reason string when skipped."""
    depth_args = ["--depth", str(depth)] if depth is not None else []
    peer_common = [
        workload,
        "--iters",
        str(args.iters),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        *depth_args,
    ]
    cmds: dict = {}
    if args.skip_odeflow:
        cmds["odeflow"] = "skipped (--skip-odeflow)"
    elif not odeflow.ready():
        cmds["odeflow"] = odeflow.error
    else:
        cmds["odeflow"] = [
            str(odeflow.path),
            "bench",
            workload,
            "--iters",
            str(args.iters),
            "--grad",
            args.grad,
            *depth_args,
        ]
    cmds["diffrax"] = (
        "skipped (--skip-jax)"
        if args.skip_jax
        else [
            args.python,
            str(BENCH / "peers_diffrax.py"),
            *peer_common,
            "--checkpoints",
            args.diffrax_checkpoints,
            "--conv",
            args.diffrax_conv,
        ]
    )
    cmds["torchdiffeq"] = (
        "skipped (--skip-torch)"
        if args.skip_torch
        else [
            args.python,
            str(BENCH / "peers_torchdiffeq.py"),
            *peer_common,
            "--rk4",
            args.torch_rk4,
        ]
    )
    return cmds


def fmt_num(x: float) -> str:
    """Three significant figures without exponents: 0.123, 12.3, 123, 12345."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def fmt_ms(rec: dict) -> str:
    if "stats" not in rec:
        return "n/a"
    s = rec["stats"]
    cell = fmt_num(s["ms_per_iter"])
    if "ms_min" in s and "ms_max" in s:
        cell += f" [{fmt_num(s['ms_min'])}–{fmt_num(s['ms_max'])}]"
    return cell


def ratio(rows_rec: dict, peer: str) -> str:
    a, b = rows_rec.get(peer, {}), rows_rec.get("odeflow", {})
    if "stats" not in a or "stats" not in b or b["stats"]["ms_per_iter"] <= 0:
        return "n/a"
    return f"{a['stats']['ms_per_iter'] / b['stats']['ms_per_iter']:.2f}"


def row_label(row: dict) -> str:
    return row["workload"] + (f" (depth {row['depth']})" if row["depth"] is not None else "")


def render_tables(rows: list[dict], args) -> str:
    lines = [
        f"ms per training iteration (forward + backward + Adam), median [min–max] over "
        f"{args.iters} timed iterations, {args.threads} thread(s):",
        "",
        "| workload | odeflow ms | diffrax ms | torchdiffeq ms | diffrax/odeflow | "
        "torchdiffeq/odeflow |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row["runs"]
        lines.append(
            f"| {row_label(row)} | "
            + " | ".join(fmt_ms(r[f]) for f in FRAMEWORKS)
            + f" | {ratio(r, 'diffrax')} | {ratio(r, 'torchdiffeq')} |"
        )
    lines += [
        "",
        "Peak RSS (MiB) and initial loss (sanity check: same architecture → "
        "similar loss; cross-entropy ≈ ln(classes)):",
        "",
        "| workload | odeflow MiB | diffrax MiB | torchdiffeq MiB | expected loss | "
        "odeflow loss | diffrax loss | torchdiffeq loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row["runs"]
        mib, loss = [], []
        for f in FRAMEWORKS:
            res = r[f].get("result", {})
            mib.append(
                f"{res['peak_mib']:.0f}" if isinstance(res.get("peak_mib"), (int, float)) else "n/a"
            )
            loss.append(
                f"{res['initial_loss']:.4f}"
                if isinstance(res.get("initial_loss"), (int, float))
                else "n/a"
            )
        exp = row["expected_initial_loss"]
        lines.append(
            f"| {row_label(row)} | "
            + " | ".join(mib)
            + f" | {f'{exp:.4f}' if exp is not None else '—'} | "
            + " | ".join(loss)
            + " |"
        )
    notes, busy = [], []
    for row in rows:
        for f in FRAMEWORKS:
            rec = row["runs"][f]
            if "error" in rec:
                if not rec["error"].startswith("skipped"):
                    first = rec["error"].splitlines()[0][:300]
                    notes.append(f"- {row_label(row)} / {f}: n/a — {first}")
                continue
            busy.append(
                max(rec.get("loadavg_before", [0.0])[0], rec.get("loadavg_after", [0.0])[0])
            )
            exp = row["expected_initial_loss"]
            loss = rec.get("result", {}).get("initial_loss")
            if exp is not None and isinstance(loss, (int, float)) and abs(loss - exp) > 0.5 * exp:
                notes.append(
                    f"- {row_label(row)} / {f}: initial loss {loss:.4f} is far from "
                    f"ln(classes) = {exp:.4f}: check the architecture"
                )
    cores = os.cpu_count() or 1
    loaded = [x for x in busy if x > cores]
    if loaded:
        notes.append(
            f"- machine busy during {len(loaded)} of {len(busy)} runs (1-min load up "
            f"to {max(loaded):.1f} on {cores} cores): timings are inflated and noisy"
        )
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def host_info() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        print(render_tables(saved["rows"], argparse.Namespace(**saved["args"])))
        return 0
    env = child_env(args.threads)
    odeflow = OdeflowBinary(args.odeflow, build=not args.no_build)
    started = dt.datetime.now()
    host = host_info()
    rows = []
    for w in args.workload_list:
        spec = workloads.spec(
            w, args.depth_list[0] if workloads.WORKLOADS[w]["steps"] is None else None
        )
        depths = args.depth_list if workloads.WORKLOADS[w]["steps"] is None else [None]
        for depth in depths:
            row = {
                "workload": w,
                "depth": depth,
                "runs": {},
                "expected_initial_loss": workloads.expected_initial_loss(spec),
            }
            for f, cmd in commands(args, w, depth, odeflow).items():
                if isinstance(cmd, str):
                    row["runs"][f] = {"error": cmd}
                    continue
                print(f"[{row_label(row)}] {f}: {' '.join(cmd)}", file=sys.stderr, flush=True)
                rec = run_one(cmd, env, args.timeout)
                row["runs"][f] = rec
                print(
                    f"    → {fmt_ms(rec)} ms"
                    + (f"  ({rec['error'][:200]})" if "error" in rec else ""),
                    file=sys.stderr,
                    flush=True,
                )
            rows.append(row)

    table = render_tables(rows, args)
    print(table)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"compare-{started:%Y-%m-%d-%H%M%S}"
    host["loadavg_end"] = list(os.getloadavg())
    header = (
        f"# odeflow vs diffrax vs torchdiffeq — {started:%Y-%m-%d %H:%M}\n\n"
        f"Host: {host['cpu']}, {host['cores']} cores, Python {host['python']}; "
        f"command: `{' '.join(sys.argv)}`\n\n"
    )
    stem.with_suffix(".md").write_text(header + table)
    stem.with_suffix(".json").write_text(
        json.dumps(
            {
                "started": started.isoformat(timespec="seconds"),
                "host": host,
                "args": {k: v for k, v in vars(args).items()},
                "env_threads": {
                    k: env[k] for k in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS", "XLA_FLAGS")
                },
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
