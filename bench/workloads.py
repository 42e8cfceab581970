"""Benchmark workload definitions shared by every peer (stdlib only).

One record per workload; the diffrax and torchdiffeq peers build their models from these
records and nothing else, so both peers (and `odeflow bench`) train the same network:

* ``conv1d`` — Ott et al.'s ``simple_odenet``: Conv1d(1→C, k=1) → ReLU →
  Conv1d(C→C, k=3, padding=1) → ReLU → Conv1d(C→1, k=1), autonomous field on (B, 1, L).
* ``conv2d`` — ``odenet``: Conv2d(in→C, 1×1) → ReLU → Conv2d(C→C, 3×3, pad 1) →
  ReLU → Conv2d(C→in, 1×1), autonomous field on (B, in, H, W).
* ``mlp`` — Linear(d→H) → tanh → Linear(H→H) → tanh → Linear(H→d).
* ``resmlp`` — Linear(d→H) → tanh → Linear(H→d): the residual function of the memory
  experiment; ``depth`` explicit Euler steps of size 1/depth (x ← x + f(x)/depth, weights
  shared across depth).

After the solve the state is flattened and, for classification workloads, fed to a
Linear(flat→classes) head with softmax cross-entropy on integer labels; regression
workloads use the mean squared error against random targets (no head).

Every iteration = forward + backward + one Adam step (lr 1e-3, PyTorch/optax defaults
otherwise) on one fixed, seeded random batch (inputs N(0, 1), labels uniform). float32,
PyTorch-default initialisation (uniform ±1/sqrt(fan_in) for weights and biases; equinox
uses the same rule).
"""

from __future__ import annotations

import math

#: Adam learning rate used by every peer.
LEARNING_RATE = 1e-3

WORKLOADS: dict[str, dict] = {
    "sphere2-euler256": {
        "field": "conv1d",
        "batch": 128,
        "state_shape": (1, 2),
        "channels": 32,
        "solver": "euler",
        "steps": 256,
        "t1": 1.0,
        "classes": 2,
    },
    "sphere2-rk4-64": {
        "field": "conv1d",
        "batch": 128,
        "state_shape": (1, 2),
        "channels": 32,
        "solver": "rk4",
        "steps": 64,
        "t1": 1.0,
        "classes": 2,
    },
    "pendulum-mlp128-euler2": {
        "field": "mlp",
        "batch": 10_000,
        "state_shape": (2,),
        "hidden": 128,
        "solver": "euler",
        "steps": 2,
        "t1": 0.04,
        "classes": None,
    },
    "mnist-odenet64-euler8": {
        "field": "conv2d",
        "batch": 128,
        "state_shape": (1, 28, 28),
        "channels": 64,
        "solver": "euler",
        "steps": 8,
        "t1": 1.0,
        "classes": 10,
    },
    "cifar-odenet128-euler8": {
        "field": "conv2d",
        "batch": 256,
        "state_shape": (3, 32, 32),
        "channels": 128,
        "solver": "euler",
        "steps": 8,
        "t1": 1.0,
        "classes": 10,
    },
    "resnet-memory": {
        "field": "resmlp",
        "batch": 500,
        "state_shape": (500,),
        "hidden": 8,
        "solver": "euler",
        "steps": None,  # = depth, chosen per run (1 and 151 by default)
        "t1": 1.0,
        "classes": None,
    },
}

#: Depths measured for `resnet-memory` unless told otherwise.
RESNET_MEMORY_DEPTHS = (1, 151)

#: Field evaluations per step for each solver.
STAGES = {"euler": 1, "rk4": 4}


def spec(name: str, depth: int | None = None) -> dict:
    """Returns the record for `name` with `steps` resolved (depth for `resnet-memory`).

    Raises ValueError naming the unknown workload or the bad depth.
    """
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    s = dict(WORKLOADS[name])
    s["name"] = name
    if s["steps"] is None:
        d = RESNET_MEMORY_DEPTHS[-1] if depth is None else depth
        if d < 1:
            raise ValueError(f"depth must be >= 1, got {d}")
        s["steps"] = d
        s["depth"] = d
    elif depth is not None:
        raise ValueError(f"--depth {depth} given but workload {name!r} has a fixed step count")
    s["dt"] = s["t1"] / s["steps"]
    return s


def expected_initial_loss(s: dict) -> float | None:
    """Rough value of the initial loss for the sanity check: ln(classes) for cross-entropy
    (a fresh linear head on O(1) features gives near-uniform logits); None for MSE."""
    return math.log(s["classes"]) if s["classes"] else None


def summarize_ms(ms: list[float]) -> dict:
    """Median, min, max and quartiles of per-iteration times (ms)."""
    xs = sorted(ms)
    if not xs:
        raise ValueError("no timed iterations")

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return {
        "ms_per_iter": q(0.5),
        "ms_min": xs[0],
        "ms_max": xs[-1],
        "ms_q1": q(0.25),
        "ms_q3": q(0.75),
    }
