"""odeflow against PyTorch + torchdiffeq in float64, through safetensors weights files.

Where torch and torchdiffeq are installed (e.g. the venv `bench/run_peers.sh` makes:
`bench/.venv/bin/python bench/torch_crosscheck.py`), this script checks

1. PyTorch -> odeflow: a random `simple_odenet` classifier built in PyTorch (the module of
   the README's "Weights" section) is saved with `safetensors.torch.save_file`, and
   `odeflow predict --dtype f64` must give torchdiffeq's logits within 1e-10 relative for
   euler, rk4 (torchdiffeq's 'rk4' is Kutta's 3/8 rule, odeflow's `rk4-38`) and midpoint on a
   fixed grid, and a hand-written fixed-grid dopri5 in torch against odeflow's `dopri5`;
2. the loss and the parameter gradients of one training iteration (mean cross-entropy
   through 4 Euler and 4 RK4-3/8 steps): `odeflow predict --labels L.npy --grad-out G`
   against torch's `loss.backward()`, each parameter within 1e-10 relative;
3. odeflow -> PyTorch: a run trained by `odeflow train --dtype f64` is exported with
   `odeflow export`, loaded with `load_state_dict(..., strict=True)`, and torch's logits must
   match `odeflow predict`'s within 1e-10 relative.

Exit status 0 when every comparison passes (or when torch/torchdiffeq are missing: the
script then prints a skip line), 1 otherwise.

Usage: python bench/torch_crosscheck.py [--odeflow PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file, save_file
    from torchdiffeq import odeint
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (run with the venv of bench/run_peers.sh)")
    sys.exit(0)

torch.set_default_dtype(torch.float64)
TOL = 1e-10

DOPRI5 = (
    [
        [],
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
        [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
    ],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0],
    [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0],
)


def simple_odenet(c, channels):
    return nn.Sequential(
        nn.Conv1d(c, channels, 1), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.Conv1d(channels, c, 1),
    )


class OdeClassifier(nn.Module):
    """The module whose state_dict odeflow's weights files hold (field.*, head.*)."""

    def __init__(self, field, features, classes):
        super().__init__()
        self.field = field
        self.head = nn.Linear(features, classes)

    def forward(self, x, method, steps, t0=0.0, t1=1.0):
        if method == "dopri5":
            z1 = fixed_rk(lambda t, z: self.field(z), x, t0, t1, steps, DOPRI5)
        else:
            tdq = {"euler": "euler", "midpoint": "midpoint", "rk4-38": "rk4"}[method]
            t = torch.tensor([t0, t1])
            z1 = odeint(lambda t, z: self.field(z), x, t, method=tdq,
                        options={"step_size": (t1 - t0) / steps})[-1]
        return self.head(z1.flatten(1))


def fixed_rk(f, y, t0, t1, steps, tableau):
    a, b, c = tableau
    h = (t1 - t0) / steps
    for n in range(steps):
        t = t0 + n * h
        ks = []
        for i in range(len(b)):
            yi = y
            for j, aij in enumerate(a[i]):
                if aij != 0.0:
                    yi = yi + h * aij * ks[j]
            ks.append(f(t + c[i] * h, yi))
        for i, bi in enumerate(b):
            if bi != 0.0:
                y = y + h * bi * ks[i]
    return y


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def run(odeflow, args, cwd):
    cmd = [odeflow, *args]
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def predict(odeflow, d, weights, x, method, steps):
    np.save(os.path.join(d, "x.npy"), x.detach().numpy())
    run(odeflow, ["predict", "--weights", weights, "--model", "simple_odenet", "--input", "x.npy",
                  "--method", method, "--steps", str(steps), "--dtype", "f64", "--out", "y.npy"], d)
    return np.load(os.path.join(d, "y.npy"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--odeflow", default="target/release/odeflow")
    ap.add_argument("--channels", type=int, default=16)
    opts = ap.parse_args()
    odeflow = os.path.abspath(opts.odeflow)
    if not os.path.exists(odeflow):
        sys.exit(f"no odeflow binary at {odeflow}: cargo build --release -p odeflow-cli")
    failures = []

    def report(what, err):
        ok = err <= TOL
        print(f"{'ok  ' if ok else 'FAIL'} {what}: relative difference {err:.2e}")
        if not ok:
            failures.append(what)

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        # 1. PyTorch -> odeflow.
        model = OdeClassifier(simple_odenet(1, opts.channels), 2, 2)
        save_file(model.state_dict(), os.path.join(d, "torch.safetensors"))
        x = torch.randn(64, 1, 2)
        for method, steps in [("euler", 8), ("midpoint", 5), ("rk4-38", 4), ("dopri5", 3)]:
            with torch.no_grad():
                want = model(x, method, steps).numpy()
            got = predict(odeflow, d, "torch.safetensors", x[:, 0, :], method, steps)
            report(f"torch -> odeflow logits, {method} x {steps}", rel(got, want))

        # 2. Loss and parameter gradients of one training iteration.
        labels = (x.flatten(1).norm(dim=1) > 1.0).long()
        for method, steps in [("euler", 4), ("rk4-38", 4)]:
            model.zero_grad()
            loss = nn.functional.cross_entropy(model(x, method, steps), labels)
            loss.backward()
            np.save(os.path.join(d, "labels.npy"), labels.double().numpy())
            np.save(os.path.join(d, "x.npy"), x[:, 0, :].detach().numpy())
            out = run(odeflow, ["predict", "--weights", "torch.safetensors", "--model",
                                "simple_odenet", "--input", "x.npy", "--method", method,
                                "--steps", str(steps), "--dtype", "f64", "--out", "y.npy",
                                "--labels", "labels.npy", "--grad-out", "grad.safetensors",
                                "--json"], d)
            got_loss = json.loads(out)["loss"]
            report(f"loss, {method} x {steps}", rel([got_loss], [loss.item()]))
            grads = load_file(os.path.join(d, "grad.safetensors"))
            assert set(grads) == {k for k, _ in model.named_parameters()}, sorted(grads)
            for k, p in model.named_parameters():
                report(f"gradient {k}, {method} x {steps}", rel(grads[k].numpy(), p.grad.numpy()))

        # 3. odeflow -> PyTorch.
        run(odeflow, ["train", "--dataset", "sphere2", "--train-size", "256", "--test-size", "64",
                      "--batch-size", "64", "--iterations", "30", "--lr", "1e-2", "--method",
                      "euler", "--steps", "4", "--dtype", "f64", "--channels", str(opts.channels),
                      "--out-dir", "run", "--no-check", "-q"], d)
        run(odeflow, ["export", "run", "--out", "run.safetensors", "-q"], d)
        back = OdeClassifier(simple_odenet(1, opts.channels), 2, 2)
        back.load_state_dict(load_file(os.path.join(d, "run.safetensors")), strict=True)
        for method, steps in [("euler", 4), ("rk4-38", 8)]:
            with torch.no_grad():
                want = back(x, method, steps).numpy()
            got = predict(odeflow, d, "run.safetensors", x[:, 0, :], method, steps)
            report(f"odeflow -> torch logits, {method} x {steps}", rel(want, got))
    if failures:
        print(f"{len(failures)} comparison(s) failed")
        sys.exit(1)
    print("all comparisons passed")


if __name__ == "__main__":
    main()
