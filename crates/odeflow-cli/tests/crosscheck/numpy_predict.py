"""Cross-framework truth for `odeflow predict`, without PyTorch.

Writes random float64 weights with PyTorch `state_dict` names through
`safetensors.numpy.save_file` for

* Ott et al.'s `simple_odenet` with a linear head (a classifier on (N, 1, d) samples):
  nn.Sequential(nn.Conv1d(1, C, 1), nn.ReLU(), nn.Conv1d(C, C, 3, padding=1), nn.ReLU(),
  nn.Conv1d(C, 1, 1)) under `field.`, nn.Linear(d, classes) under `head.`;
* an MLP field (no head): nn.Sequential(nn.Linear(2, H), nn.Tanh(), nn.Linear(H, H),
  nn.Tanh(), nn.Linear(H, 2)) under `field.`;

* the separable Hamiltonian network (no head): nn.Linear(n, m), nn.Tanh(), nn.Linear(m, m),
  nn.Tanh(), nn.Linear(m, 1) under `field.kinetic.` (T(p)) and `field.potential.` (V(q)), the
  field (-dV/dq, dT/dp) on states (p, q), solved by Runge-Kutta and by Stormer-Verlet
  (kick h/2, drift h, kick h/2);
* a TinyResNet (stem Conv2d(c, C, 5, stride 3, padding 1, bias=False), BatchNorm2d, ReLU;
  an untied ResNet body of N blocks Conv2d(C, C, 3, padding=1, bias=False), BatchNorm2d,
  ReLU, Conv2d, BatchNorm2d with x <- x + f_n(x)/N under `field.layers.<n>.`; head
  avg_pool2d(4), flatten, Linear) and a tied HeunNet body, both with batch norm in
  evaluation mode (running statistics; `num_batches_tracked` as int64);

re-implements their forward passes in numpy (explicit Runge-Kutta on a fixed grid of N equal
steps: euler, rk4 and dopri5's fifth-order solution), and writes the expected outputs and a
manifest `cases.json` that the Rust test `crates/odeflow-cli/tests/weights.rs` replays with
`odeflow predict --dtype f64` (cases without a method are ResNet models, whose depth fixes
the solve).

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


def mlp_grad(p, prefix, x):
    """The input gradient of the scalar tanh MLP `prefix` (0, 2, 4) at the rows of x."""
    w1, b1 = p[prefix + "0.weight"], p[prefix + "0.bias"]
    w2, b2 = p[prefix + "2.weight"], p[prefix + "2.bias"]
    w3 = p[prefix + "4.weight"]
    h1 = np.tanh(x @ w1.T + b1)
    h2 = np.tanh(h1 @ w2.T + b2)
    g2 = (1.0 - h2 * h2) * w3
    return ((g2 @ w2) * (1.0 - h1 * h1)) @ w1


def hamiltonian(p):
    def f(_t, y):
        n = y.shape[1] // 2
        dv = mlp_grad(p, "field.potential.", y[:, n:])
        dt = mlp_grad(p, "field.kinetic.", y[:, :n])
        return np.concatenate([-dv, dt], axis=1)

    return f


def verlet(p, y0, t0, t1, steps):
    """Stormer-Verlet: kick h/2 (p -= h/2 dV(q)), drift h (q += h dT(p)), kick h/2."""
    h = (t1 - t0) / steps
    n = y0.shape[1] // 2
    mom, pos = y0[:, :n].copy(), y0[:, n:].copy()
    for _ in range(steps):
        mom = mom - 0.5 * h * mlp_grad(p, "field.potential.", pos)
        pos = pos + h * mlp_grad(p, "field.kinetic.", mom)
        mom = mom - 0.5 * h * mlp_grad(p, "field.potential.", pos)
    return np.concatenate([mom, pos], axis=1)


def conv2d(x, w, stride, pad):
    """PyTorch's Conv2d without bias: x (N, I, H, W), w (O, I, K, K)."""
    n, _, hh, ww = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (hh + 2 * pad - k) // stride + 1
    wo = (ww + 2 * pad - k) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for a in range(k):
        for b in range(k):
            patch = xp[:, :, a : a + stride * (ho - 1) + 1 : stride, b : b + stride * (wo - 1) + 1 : stride]
            y += np.einsum("oi,nihw->nohw", w[:, :, a, b], patch)
    return y


def batch_norm(p, prefix, x, eps=1e-5):
    """BatchNorm2d in evaluation mode: the running statistics."""
    mean = p[prefix + "running_mean"][None, :, None, None]
    var = p[prefix + "running_var"][None, :, None, None]
    gamma = p[prefix + "weight"][None, :, None, None]
    beta = p[prefix + "bias"][None, :, None, None]
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def block(p, params, stats, x):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN with the parameters of layer `params` and the
    running statistics of layer `stats` (they differ for a tied body)."""
    pp, sp = f"field.layers.{params}.", f"field.layers.{stats}."
    bn = lambda i, z: batch_norm({**{k[len(pp):]: v for k, v in p.items() if k.startswith(pp)},
                                  **{k[len(sp):]: v for k, v in p.items() if k.startswith(sp)}},
                                 f"{i}.", z)
    h = relu(bn(1, conv2d(x, p[pp + "0.weight"], 1, 1)))
    return bn(4, conv2d(h, p[pp + "3.weight"], 1, 1))


def resnet_body(p, x, depth, heun, tied):
    par = (lambda n: 0) if tied else (lambda n: n)
    f = lambda n, z: block(p, par(n), n, z)
    if not heun:
        for n in range(depth):
            x = x + f(n, x) / depth
        return x
    for n in range(depth - 1):
        k1 = f(n, x) / depth
        k2 = f(n + 1, x + k1) / depth
        x = x + (k1 + k2) / 2
    return x


def tiny_resnet(p, x, depth):
    z = relu(batch_norm(p, "stem.1.", conv2d(x, p["stem.0.weight"], 3, 1)))
    z = resnet_body(p, z, depth, heun=False, tied=False)
    n, c, h, w = z.shape
    pooled = z[:, :, : h // 4 * 4, : w // 4 * 4].reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    return pooled.reshape(n, -1) @ p["head.weight"].T + p["head.bias"]


def bn_tensors(rng, prefix, c):
    return {
        prefix + "weight": rng.uniform(0.5, 1.5, size=c),
        prefix + "bias": rng.uniform(-0.3, 0.3, size=c),
        prefix + "running_mean": rng.uniform(-0.5, 0.5, size=c),
        prefix + "running_var": rng.uniform(0.5, 2.0, size=c),
        prefix + "num_batches_tracked": np.array(7, dtype=np.int64),
    }


def resnet_tensors(rng, c, depth, tied):
    t = {}
    for n in range(depth):
        pre = f"field.layers.{n}."
        if n == 0 or not tied:
            t[pre + "0.weight"] = uniform(rng, (c, c, 3, 3), 9 * c)
            t[pre + "3.weight"] = uniform(rng, (c, c, 3, 3), 9 * c)
        bn = {**bn_tensors(rng, pre + "1.", c), **bn_tensors(rng, pre + "4.", c)}
        if tied and n > 0:  # save_model keeps the shared parameters under layers.0 only
            bn = {k: v for k, v in bn.items() if not k.endswith(("weight", "bias"))}
        t.update(bn)
    return t


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
    n, m = 2, 8
    ham = {}
    for part in ("kinetic", "potential"):
        pre = f"field.{part}."
        ham[pre + "0.weight"] = uniform(rng, (m, n), n) * 2.0
        ham[pre + "0.bias"] = uniform(rng, (m,), n)
        ham[pre + "2.weight"] = uniform(rng, (m, m), m) * 2.0
        ham[pre + "2.bias"] = uniform(rng, (m,), m)
        ham[pre + "4.weight"] = uniform(rng, (1, m), m) * 2.0
        ham[pre + "4.bias"] = uniform(rng, (1,), m)
    save_file(ham, os.path.join(out, "hamiltonian.safetensors"))
    y_ham = rng.normal(size=(6, 2 * n))
    np.save(os.path.join(out, "y_ham.npy"), y_ham)
    for method, steps in [("rk4", 8), ("verlet", 10), ("verlet", 1)]:
        if method == "verlet":
            y1 = verlet(ham, y_ham, 0.0, 2.0, steps)
        else:
            y1 = rk_solve(hamiltonian(ham), y_ham, 0.0, 2.0, steps, method)
        name = f"ham_{method}_{steps}.npy"
        np.save(os.path.join(out, name), y1)
        cases.append({"weights": "hamiltonian.safetensors", "model": "hamiltonian",
                      "input": "y_ham.npy", "method": method, "steps": steps,
                      "t0": 0.0, "t1": 2.0, "expected": name})

    c_in, ch, depth, classes = 2, 3, 3, 4
    tiny = {"stem.0.weight": uniform(rng, (ch, c_in, 5, 5), 25 * c_in),
            **bn_tensors(rng, "stem.1.", ch), **resnet_tensors(rng, ch, depth, tied=False)}
    # 16x16 images: a 5x5 stem of stride 3 and padding 1 gives 5x5, pooled to 1x1.
    tiny["head.weight"] = uniform(rng, (classes, ch), ch)
    tiny["head.bias"] = uniform(rng, (classes,), ch)
    save_file(tiny, os.path.join(out, "tiny.safetensors"))
    x_img = rng.normal(size=(3, c_in, 16, 16))
    np.save(os.path.join(out, "x_img.npy"), x_img)
    np.save(os.path.join(out, "tiny_logits.npy"), tiny_resnet(tiny, x_img, depth))
    cases.append({"weights": "tiny.safetensors", "model": "tiny_resnet", "input": "x_img.npy",
                  "expected": "tiny_logits.npy"})
    heun = resnet_tensors(rng, ch, 4, tied=True)
    save_file(heun, os.path.join(out, "heunnet.safetensors"))
    x_feat = rng.normal(size=(2, ch, 5, 4))
    np.save(os.path.join(out, "x_feat.npy"), x_feat)
    np.save(os.path.join(out, "heun_states.npy"), resnet_body(heun, x_feat, 4, heun=True, tied=True))
    cases.append({"weights": "heunnet.safetensors", "model": "heunnet", "input": "x_feat.npy",
                  "expected": "heun_states.npy"})
    with open(os.path.join(out, "cases.json"), "w") as fh:
        json.dump(cases, fh, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: numpy_predict.py OUT_DIR")
    main(sys.argv[1])
