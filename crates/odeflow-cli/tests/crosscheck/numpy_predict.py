"""Cross-framework truth for `odeflow predict`, without PyTorch.

Writes random float64 weights with PyTorch `state_dict` names through
`safetensors.numpy.save_file` for

* Ott et al.'s `simple_odenet` with a linear head (a classifier on (N, 1, d) samples):
  nn.Sequential(nn.Conv1d(1, C, 1), nn.ReLU(), nn.Conv1d(C, C, 3, padding=1), nn.ReLU(),
  nn.Conv1d(C, 1, 1)) under `field.`, nn.Linear(d, classes) under `head.`;
* an MLP field (no head): nn.Sequential(nn.Linear(2, H), nn.Tanh(), nn.Linear(H, H),
  nn.Tanh(), nn.Linear(H, 2)) under `field.`;

re-implements their forward solves in numpy (explicit Runge-Kutta on a fixed grid of N equal
steps: euler, rk4 and dopri5's fifth-order solution), and writes the expected outputs and a
manifest `cases.json` that the Rust test `crates/odeflow-cli/tests/weights.rs` replays with
`odeflow predict --dtype f64`.

Usage: python numpy_predict.py OUT_DIR
"""

import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

TABLEAUS = {
    "euler": ([[]], [1.0], [0.0]),
    "rk4": (
        [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
        [1 / 6, 1 / 3, 1 / 3, 1 / 6],
        [0.0, 0.5, 0.5, 1.0],
    ),
    "dopri5": (
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
    ),
}


def rk_solve(f, y0, t0, t1, steps, method):
    """Explicit Runge-Kutta with `steps` equal steps of (t1 - t0) / steps."""
    a, b, c = TABLEAUS[method]
    h = (t1 - t0) / steps
    y = y0
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


def conv1d(x, w, bias, pad):
    """PyTorch's Conv1d (cross-correlation, zero padding): x (N, I, L), w (O, I, K)."""
    n, _, length = x.shape
    o, _, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    out_len = length + 2 * pad - k + 1
    y = np.zeros((n, o, out_len))
    for tap in range(k):
        y += np.einsum("oi,nil->nol", w[:, :, tap], xp[:, :, tap : tap + out_len])
    return y + bias[None, :, None]


def relu(x):
    return np.maximum(x, 0.0)


def simple_odenet(p):
    def f(_t, z):
        h = relu(conv1d(z, p["field.0.weight"], p["field.0.bias"], 0))
        h = relu(conv1d(h, p["field.2.weight"], p["field.2.bias"], 1))
        return conv1d(h, p["field.4.weight"], p["field.4.bias"], 0)

    return f


def mlp_tanh(p):
    def f(_t, z):
        h = np.tanh(z @ p["field.0.weight"].T + p["field.0.bias"])
        h = np.tanh(h @ p["field.2.weight"].T + p["field.2.bias"])
        return h @ p["field.4.weight"].T + p["field.4.bias"]

    return f


def uniform(rng, shape, fan_in):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20211)
    channels, d, classes = 8, 3, 4
    sphere = {
        "field.0.weight": uniform(rng, (channels, 1, 1), 1),
        "field.0.bias": uniform(rng, (channels,), 1),
        "field.2.weight": uniform(rng, (channels, channels, 3), 3 * channels),
        "field.2.bias": uniform(rng, (channels,), 3 * channels),
        "field.4.weight": uniform(rng, (1, channels, 1), channels),
        "field.4.bias": uniform(rng, (1,), channels),
        "head.weight": uniform(rng, (classes, d), d),
        "head.bias": uniform(rng, (classes,), d),
    }
    hidden = 16
    mlp = {
        "field.0.weight": uniform(rng, (hidden, 2), 2) * 2.0,
        "field.0.bias": uniform(rng, (hidden,), 2),
        "field.2.weight": uniform(rng, (hidden, hidden), hidden) * 2.0,
        "field.2.bias": uniform(rng, (hidden,), hidden),
        "field.4.weight": uniform(rng, (2, hidden), hidden) * 2.0,
        "field.4.bias": uniform(rng, (2,), hidden),
    }
    save_file({k: np.ascontiguousarray(v) for k, v in sphere.items()},
              os.path.join(out, "sphere.safetensors"))
    save_file({k: np.ascontiguousarray(v) for k, v in mlp.items()},
              os.path.join(out, "mlp.safetensors"))
    x_sphere = rng.normal(size=(7, d))
    x_mlp = rng.normal(size=(5, 2))
    np.save(os.path.join(out, "x_sphere.npy"), x_sphere)
    np.save(os.path.join(out, "x_mlp.npy"), x_mlp)

    cases = []
    for method, steps in [("euler", 1), ("euler", 16), ("rk4", 4), ("rk4", 10), ("dopri5", 3)]:
        z1 = rk_solve(simple_odenet(sphere), x_sphere[:, None, :], 0.0, 1.0, steps, method)
        logits = z1.reshape(len(x_sphere), -1) @ sphere["head.weight"].T + sphere["head.bias"]
        name = f"sphere_{method}_{steps}.npy"
        np.save(os.path.join(out, name), logits)
        cases.append({"weights": "sphere.safetensors", "model": "simple_odenet",
                      "input": "x_sphere.npy", "method": method, "steps": steps,
                      "t0": 0.0, "t1": 1.0, "expected": name})
        y1 = rk_solve(mlp_tanh(mlp), x_mlp, 0.25, 1.5, steps, method)
        name = f"mlp_{method}_{steps}.npy"
        np.save(os.path.join(out, name), y1)
        cases.append({"weights": "mlp.safetensors", "model": "mlp-tanh",
                      "input": "x_mlp.npy", "method": method, "steps": steps,
                      "t0": 0.25, "t1": 1.5, "expected": name})
    with open(os.path.join(out, "cases.json"), "w") as fh:
        json.dump(cases, fh, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: numpy_predict.py OUT_DIR")
    main(sys.argv[1])
