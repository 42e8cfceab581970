"""Tests of the benchmark driver's plumbing against a fake `odeflow` (stdlib only).

    python3 -m unittest discover -s bench -p 'test_*.py'

They check workload resolution, statistics, JSON parsing, error cells ("n/a" with a
reason) and the files the driver writes — not any timing.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import compare  # noqa: E402
import workloads  # noqa: E402

FAKE = str(BENCH / "testdata" / "fake_odeflow")


def run_driver(*argv: str) -> tuple[str, dict, str]:
    """Runs compare.main with only the fake odeflow; returns (stdout, json, md)."""
    with tempfile.TemporaryDirectory() as out:
        buf, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            rc = compare.main(
                ["--skip-jax", "--skip-torch", "--odeflow", FAKE, "--out-dir", out, *argv]
            )
        assert rc == 0
        files = sorted(os.listdir(out))
        assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".md"), files
        data = json.loads(Path(out, files[0]).read_text())
        md = Path(out, files[1]).read_text()
    return buf.getvalue(), data, md


class WorkloadTests(unittest.TestCase):
    def test_specs_resolve_steps_and_dt(self):
        s = workloads.spec("pendulum-mlp128-euler2")
        self.assertEqual((s["steps"], s["batch"]), (2, 10_000))
        self.assertAlmostEqual(s["dt"], 0.02)
        self.assertEqual(workloads.spec("sphere2-rk4-64")["dt"], 1 / 64)
        r = workloads.spec("resnet-memory", 151)
        self.assertEqual((r["steps"], r["depth"]), (151, 151))

    def test_bad_names_and_depths_are_rejected_by_value(self):
        with self.assertRaisesRegex(ValueError, "'nope'"):
            workloads.spec("nope")
        with self.assertRaisesRegex(ValueError, "got 0"):
            workloads.spec("resnet-memory", 0)
        with self.assertRaisesRegex(ValueError, "--depth 3"):
            workloads.spec("sphere2-euler256", 3)

    def test_expected_loss_is_log_classes(self):
        self.assertAlmostEqual(
            workloads.expected_initial_loss(workloads.spec("mnist-odenet64-euler8")), math.log(10)
        )
        self.assertIsNone(workloads.expected_initial_loss(workloads.spec("pendulum-mlp128-euler2")))

    def test_summary_statistics(self):
        s = workloads.summarize_ms([5.0, 1.0, 3.0, 2.0, 4.0])
        self.assertEqual((s["ms_per_iter"], s["ms_min"], s["ms_max"]), (3.0, 1.0, 5.0))
        self.assertEqual((s["ms_q1"], s["ms_q3"]), (2.0, 4.0))
        self.assertEqual(workloads.summarize_ms([1.0, 2.0])["ms_per_iter"], 1.5)
        with self.assertRaises(ValueError):
            workloads.summarize_ms([])


class DriverTests(unittest.TestCase):
    def test_last_json_object_skips_noise(self):
        text = 'compiling\n{"a": 1}\nnot json {\n{"workload": "x", "ms_per_iter": 2}\n'
        self.assertEqual(compare.last_json_object(text)["workload"], "x")
        self.assertIsNone(compare.last_json_object("no json here\n[1, 2]\n"))

    def test_last_json_object_reads_pretty_printed_output(self):
        text = 'log line\n{\n  "workload": "y",\n  "ms_iters": [\n    1.5,\n    2.0\n  ]\n}\n'
        obj = compare.last_json_object(text)
        self.assertEqual(obj["workload"], "y")
        self.assertEqual(obj["ms_iters"], [1.5, 2.0])

    def test_stats_prefer_raw_iterations(self):
        st = compare.stats_of({"ms_per_iter": 99.0, "ms_iters": [1.0, 2.0, 30.0]})
        self.assertEqual((st["ms_per_iter"], st["ms_max"]), (2.0, 30.0))
        st = compare.stats_of({"ms_per_iter": 7.0})
        self.assertEqual(st, {"ms_per_iter": 7.0})

    def test_odeflow_rows_and_files(self):
        out, data, md = run_driver(
            "--workloads", "sphere2-euler256,resnet-memory", "--iters", "4", "--threads", "1"
        )
        labels = [(r["workload"], r["depth"]) for r in data["rows"]]
        self.assertEqual(
            labels, [("sphere2-euler256", None), ("resnet-memory", 1), ("resnet-memory", 151)]
        )
        rec = data["rows"][0]["runs"]["odeflow"]
        self.assertEqual(
            rec["cmd"][1:], ["bench", "sphere2-euler256", "--iters", "4", "--grad", "backprop"]
        )
        self.assertEqual(rec["result"]["threads"], "1")  # RAYON_NUM_THREADS reached it
        self.assertEqual(data["rows"][2]["runs"]["odeflow"]["cmd"][-2:], ["--depth", "151"])
        # fake: ms = 10 + len(name) (+ depth/10), min = ms - 1, max = ms + 2
        self.assertIn("| sphere2-euler256 | 26 [25–28] | n/a | n/a | n/a | n/a |", out)
        self.assertIn("| resnet-memory (depth 151) | 38.1 [37.1–40.1] |", out)
        self.assertIn(out.strip().splitlines()[2], md)
        self.assertEqual(data["rows"][1]["runs"]["diffrax"]["error"], "skipped (--skip-jax)")

    def test_failures_and_noise_become_cells_not_crashes(self):
        env = {"FAKE_ODEFLOW_FAIL": "sphere2-rk4-64", "FAKE_ODEFLOW_NOISE": "1"}
        with mock.patch.dict(os.environ, env):
            out, data, _ = run_driver("--workloads", "sphere2-euler256,sphere2-rk4-64")
        ok, bad = (r["runs"]["odeflow"] for r in data["rows"])
        self.assertIn("stats", ok)
        self.assertIn("exit status 2", bad["error"])
        self.assertIn("failed on purpose", bad["error"])
        self.assertIn("| sphere2-rk4-64 | n/a |", out)

    def test_missing_binary_without_build_is_na(self):
        with tempfile.TemporaryDirectory() as d:
            out, data, _ = run_driver(
                "--workloads",
                "pendulum-mlp128-euler2",
                "--no-build",
                "--odeflow",
                str(Path(d, "odeflow")),
            )
        self.assertIn("not found", data["rows"][0]["runs"]["odeflow"]["error"])
        self.assertIn("| pendulum-mlp128-euler2 | n/a | n/a | n/a |", out)

    def test_binary_without_bench_json_is_na(self):
        # e.g. an odeflow built before `bench` existed: exits 0 and prints nothing
        out, data, _ = run_driver("--workloads", "pendulum-mlp128-euler2", "--odeflow", "/bin/true")
        self.assertIn("no JSON object", data["rows"][0]["runs"]["odeflow"]["error"])
        self.assertIn("| pendulum-mlp128-euler2 | n/a |", out)

    def test_bad_arguments_name_the_value(self):
        for argv, needle in (
            (["--workloads", "bogus"], "'bogus'"),
            (["--iters", "0"], "got 0"),
            (["--depths", "1,x"], "'1,x'"),
        ):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), self.assertRaises(SystemExit):
                compare.parse_args(argv)
            self.assertIn(needle, err.getvalue())

    def test_numbers_have_no_exponents(self):
        self.assertEqual(
            [compare.fmt_num(x) for x in (0.01234, 12.34, 123.4, 11130.0)],
            ["0.0123", "12.3", "123", "11130"],
        )

    def test_render_reprints_saved_tables(self):
        out, _, _ = run_driver("--workloads", "sphere2-euler256")
        with tempfile.TemporaryDirectory() as d:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
                compare.main(
                    [
                        "--skip-jax",
                        "--skip-torch",
                        "--odeflow",
                        FAKE,
                        "--out-dir",
                        d,
                        "--workloads",
                        "sphere2-euler256",
                    ]
                )
                saved = next(Path(d).glob("*.json"))
                buf.truncate(0)
                buf.seek(0)
                compare.main(["--render", str(saved)])
        self.assertEqual(buf.getvalue().strip(), out.strip())

    def test_child_env_sets_one_thread_count_everywhere(self):
        env = compare.child_env(1)
        self.assertEqual(env["OMP_NUM_THREADS"], "1")
        self.assertEqual(env["RAYON_NUM_THREADS"], "1")
        self.assertIn("--xla_cpu_multi_thread_eigen=false", env["XLA_FLAGS"])
        self.assertIn("--xla_cpu_multi_thread_eigen=true", compare.child_env(2)["XLA_FLAGS"])


if __name__ == "__main__":
    unittest.main()
