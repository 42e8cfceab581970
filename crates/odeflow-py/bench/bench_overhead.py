"""Overheads of the Python package (issue #13), printed as JSON lines.

1. ``solve_noop``: the cost per field evaluation of calling a no-op Python callable from the
   solve loop (GIL reacquired, the state handed over as a numpy array and the answer copied
   back): a fixed-step Euler solve of ``f(t, y) = y`` with many steps, time / nfe, minus
   the time of calling the same callable from a plain Python loop.
2. ``check_flow_numpy``: ``check_flow`` on a numpy MLP field against a plain numpy loop
   doing the same field evaluations (same solvers, same steps, same batches).
3. ``check_flow_torch``: ``check_flow`` on Ott et al.'s ``odenet`` (MNIST-shaped inputs,
   CPU) against a torchdiffeq loop doing the same evaluations; skipped when torch or
   torchdiffeq is not installed.

    python crates/odeflow-py/bench/bench_overhead.py [--quick]
"""

import argparse
import json
import time

import numpy as np

import odeflow


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def emit(**kw):
    print(json.dumps(kw), flush=True)


def solve_noop(steps, repeats):
    for dim in (4, 1000):
        y0 = np.zeros(dim)
        f = lambda t, y: y  # noqa: E731

        def run():
            odeflow.solve(f, y0, method="euler", steps=steps, t_eval=[1.0])

        def plain():
            for _ in range(steps):
                f(0.0, y0)

        total = best_of(run, repeats) / steps
        python = best_of(plain, repeats) / steps
        emit(bench="solve_noop", state_size=dim, nfe=steps,
             us_per_eval=round(total * 1e6, 3),
             us_python_call=round(python * 1e6, 3),
             us_overhead=round((total - python) * 1e6, 3))


def euler_loop(field, x, batch, steps_list):
    """The evaluations check_flow makes for an Euler/midpoint/RK4 grid, in plain numpy."""
    for method, stages, steps in steps_list:
        for i in range(0, len(x), batch):
            z = x[i : i + batch]
            h = 1.0 / steps
            for _ in range(steps):
                if stages == 1:
                    z = z + h * field(0.0, z)
                elif stages == 2:
                    z = z + h * field(0.0, z + h / 2 * field(0.0, z))
                else:
                    k1 = field(0.0, z)
                    k2 = field(0.0, z + h / 2 * k1)
                    k3 = field(0.0, z + h / 2 * k2)
                    k4 = field(0.0, z + h * k3)
                    z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def grid_of(train_steps):
    stages = {"euler": 1, "midpoint": 2, "rk4": 4}
    grid = [("euler", 1, train_steps)]
    for m in ("euler", "midpoint", "rk4"):
        for k in (1, 2, 4, 8, 16):
            grid.append((m, stages[m], train_steps * k))
    return grid


def check_flow_numpy(repeats):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 2))
    y = (np.linalg.norm(x, axis=1) > 1.2).astype(int)
    w1, w2 = rng.normal(size=(64, 2)) * 0.5, rng.normal(size=(2, 64)) * 0.5

    def field(t, z):
        return np.tanh(z @ w1.T) @ w2.T

    ours = best_of(lambda: odeflow.check_flow(field, x, y, train_method="euler", train_steps=2), repeats)
    plain = best_of(lambda: euler_loop(field, x, 1000, grid_of(2)), repeats)
    emit(bench="check_flow_numpy", samples=len(x), seconds=round(ours, 4),
         plain_numpy_loop_seconds=round(plain, 4), ratio=round(ours / plain, 3))


def check_flow_torch(repeats, samples):
    try:
        import torch
        import torchdiffeq
        from torch import nn
    except ImportError as e:
        emit(bench="check_flow_torch", skipped=f"{e.name} is not installed")
        return
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    class Odenet(nn.Module):  # Ott et al.'s odenet on (1, 28, 28) images, 64 channels
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                nn.Conv2d(64, 1, 1))

        def forward(self, t, z):
            return self.net(z)

    field, head = Odenet().eval(), nn.Linear(784, 10).eval()
    x = np.random.default_rng(0).normal(size=(samples, 1, 28, 28)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, samples)

    @torch.no_grad()
    def np_field(t, z):
        return field(t, torch.from_numpy(z)).numpy()

    @torch.no_grad()
    def np_head(z):
        return head(torch.from_numpy(z).flatten(1)).numpy()

    steps = [2]
    kw = dict(head=np_head, train_method="euler", train_steps=2, test_methods=["euler", "rk4"],
              test_steps=steps, batch_size=samples)
    ours = best_of(lambda: odeflow.check_flow(np_field, x, y, **kw), repeats)

    @torch.no_grad()
    def plain():
        xt = torch.from_numpy(x)
        t = torch.tensor([0.0, 1.0])
        for method in ("euler", "euler", "rk4"):  # training solver, then the grid
            z = torchdiffeq.odeint(field, xt, t, method=method, options={"step_size": 0.5})[-1]
            head(z.flatten(1)).argmax(1)

    theirs = best_of(plain, repeats)
    emit(bench="check_flow_torch", samples=samples, seconds=round(ours, 4),
         torchdiffeq_loop_seconds=round(theirs, 4), ratio=round(ours / theirs, 3))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    a = p.parse_args()
    steps, repeats = (20000, 3) if a.quick else (200000, 5)
    solve_noop(steps, repeats)
    check_flow_numpy(repeats)
    check_flow_torch(repeats, 64 if a.quick else 256)


if __name__ == "__main__":
    main()
