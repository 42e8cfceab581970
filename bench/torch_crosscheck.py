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
   match `odeflow predict`'s within 1e-10 relative;
4. the separable Hamiltonian network (the README's `SeparableHamiltonian`, its field by
   autograd): `odeflow predict --model hamiltonian` against torch's final states for rk4
   (a hand-written fixed grid) and Stormer-Verlet (`verlet`: kick h/2, drift h, kick h/2);
5. a TinyResNet with random batch-norm running statistics in eval mode (`tiny_resnet`,
   saved with `save_file`) and a tied HeunNet body (`heunnet`, saved with
   `safetensors.torch.save_model`, which keeps each shared parameter once): logits and
   final features against torch's.

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


class SeparableHamiltonian(nn.Module):
    """H(q, p) = T(p) + V(q); the field on y = (p, q) is (-dV/dq, dT/dp)."""

    def __init__(self, n, m):
        super().__init__()
        mlp = lambda: nn.Sequential(nn.Linear(n, m), nn.Tanh(), nn.Linear(m, m), nn.Tanh(),
                                    nn.Linear(m, 1))
        self.kinetic, self.potential = mlp(), mlp()

    def grads(self, p, q):
        with torch.enable_grad():
            p = p.detach().requires_grad_()
            q = q.detach().requires_grad_()
            dt, = torch.autograd.grad(self.kinetic(p).sum(), p)
            dv, = torch.autograd.grad(self.potential(q).sum(), q)
        return dt, dv

    def forward(self, t, y):
        p, q = y.chunk(2, dim=-1)
        dt, dv = self.grads(p, q)
        return torch.cat([-dv, dt], dim=-1)


def verlet(h_net, y, t0, t1, steps):
    h = (t1 - t0) / steps
    p, q = y.chunk(2, dim=-1)
    for _ in range(steps):
        p = p - 0.5 * h * h_net.grads(p, q)[1]
        q = q + h * h_net.grads(p, q)[0]
        p = p - 0.5 * h * h_net.grads(p, q)[1]
    return torch.cat([p, q], dim=-1)


def block(c):
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                         nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c))


class ResNetBody(nn.Module):
    """odeflow's `resnet` (heun=False) / `heunnet` body: keys layers.<n>.{0,1,3,4}.*"""

    def __init__(self, c, depth, heun=False, tied=False):
        super().__init__()
        self.layers = nn.ModuleList(block(c) for _ in range(depth))
        self.heun = heun
        if tied:  # one parameter set; running statistics stay per layer
            for f in self.layers[1:]:
                for i in (0, 1, 3, 4):
                    f[i].weight = self.layers[0][i].weight
                for i in (1, 4):
                    f[i].bias = self.layers[0][i].bias

    def forward(self, x):
        n = len(self.layers)
        if not self.heun:
            for f in self.layers:
                x = x + f(x) / n
            return x
        for i in range(n - 1):
            k1 = self.layers[i](x) / n
            k2 = self.layers[i + 1](x + k1) / n
            x = x + (k1 + k2) / 2
        return x


class TinyResNet(nn.Module):
    """odeflow's `tiny_resnet`: keys stem.*, field.layers.*, head.weight, head.bias."""

    def __init__(self, c_in, c, depth, classes, features, heun=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, c, 5, stride=3, padding=1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU())
        self.field = ResNetBody(c, depth, heun)
        self.head = nn.Linear(features, classes)

    def forward(self, x):
        z = self.field(self.stem(x))
        return self.head(nn.functional.avg_pool2d(z, 4).flatten(1))


def randomize_batch_norms(model):
    """Non-trivial affine parameters and running statistics (eval mode uses them)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(11)


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

        # 4. The Hamiltonian network: final states.
        ham = nn.Module()
        ham.field = SeparableHamiltonian(2, 16)
        save_file(ham.state_dict(), os.path.join(d, "ham.safetensors"))
        y0 = torch.randn(32, 4)
        np.save(os.path.join(d, "y0.npy"), y0.numpy())
        for method, steps in [("rk4", 20), ("verlet", 20)]:
            if method == "verlet":
                want = verlet(ham.field, y0, 0.0, 2.0, steps)
            else:
                rk4 = ([[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6],
                       [0.0, 0.5, 0.5, 1.0])
                want = fixed_rk(ham.field, y0, 0.0, 2.0, steps, rk4)
            run(odeflow, ["predict", "--weights", "ham.safetensors", "--model", "hamiltonian",
                          "--input", "y0.npy", "--method", method, "--steps", str(steps),
                          "--t1", "2", "--dtype", "f64", "--out", "y1.npy"], d)
            got = np.load(os.path.join(d, "y1.npy"))
            report(f"torch -> odeflow hamiltonian, {method} x {steps}",
                   rel(got, want.detach().numpy()))

        # 5. ResNets with batch norm in eval mode.
        tiny = TinyResNet(3, 8, 6, 10, 8 * 2 * 2).eval()
        randomize_batch_norms(tiny)
        save_file(tiny.state_dict(), os.path.join(d, "tiny.safetensors"))
        images = torch.randn(16, 3, 28, 28)
        np.save(os.path.join(d, "images.npy"), images.numpy())
        run(odeflow, ["predict", "--weights", "tiny.safetensors", "--model", "tiny_resnet",
                      "--input", "images.npy", "--dtype", "f64", "--out", "logits.npy"], d)
        with torch.no_grad():
            want = tiny(images).numpy()
        report("torch -> odeflow tiny_resnet logits (eval mode)",
               rel(np.load(os.path.join(d, "logits.npy")), want))
        from safetensors.torch import save_model
        body = nn.Module()
        body.field = ResNetBody(4, 5, heun=True, tied=True)
        body.eval()
        randomize_batch_norms(body)
        save_model(body, os.path.join(d, "heun.safetensors"))
        feats = torch.randn(8, 4, 6, 6)
        np.save(os.path.join(d, "feats.npy"), feats.numpy())
        run(odeflow, ["predict", "--weights", "heun.safetensors", "--model", "heunnet",
                      "--input", "feats.npy", "--dtype", "f64", "--out", "z.npy"], d)
        with torch.no_grad():
            want = body.field(feats).numpy()
        report("torch -> odeflow tied heunnet body (eval mode)",
               rel(np.load(os.path.join(d, "z.npy")), want))
    if failures:
        print(f"{len(failures)} comparison(s) failed")
        sys.exit(1)
    print("all comparisons passed")


if __name__ == "__main__":
    main()
