"""torchdiffeq peer: times forward + backward + Adam step of one workload on the CPU
(or, with ``--device cuda``, on the first NVIDIA GPU, TF32 off).

    python bench/peers_torchdiffeq.py sphere2-euler256 --iters 20

Solver: ``torchdiffeq.odeint(field, y0, tensor([0, t1]), method=..., options={'step_size':
t1/steps})`` with gradients by backpropagation through the solver's operations (not
``odeint_adjoint``), ``torch.optim.Adam``.

RK4: torchdiffeq's ``method='rk4'`` is Kutta's 3/8 rule (``rk4_alt_step_func``:
c = (0, 1/3, 2/3, 1), b = (1, 3, 3, 1)/8), which is odeflow's ``rk4-38``, not odeflow's
``rk4``. The classic RK4 step (c = (0, 1/2, 1/2, 1), b = (1, 2, 2, 1)/6) exists in
torchdiffeq as ``rk4_step_func`` but no method name selects it, so by default this script
registers ``ClassicRK4`` (a ``FixedGridODESolver`` whose step is torchdiffeq's own
``rk4_step_func``) under the name ``rk4_classic``. ``--rk4 38`` times the built-in
3/8 rule instead. Both use 4 field evaluations per step.

Every step count is verified once by counting field evaluations (torchdiffeq's step-size
grid can add a zero-length step when t1/step_size rounds up).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F
import torchdiffeq
from torch import nn
from torchdiffeq._impl.misc import Perturb
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import rk4_step_func
from torchdiffeq._impl.solvers import FixedGridODESolver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402
import workloads  # noqa: E402


class ClassicRK4(FixedGridODESolver):
    """Classic RK4 (1/6, 1/3, 1/3, 1/6) on torchdiffeq's fixed grid."""

    order = 4

    def _step_func(self, func, t0, dt, t1, y0):
        f0 = func(t0, y0, perturb=Perturb.NEXT if self.perturb else Perturb.NONE)
        return rk4_step_func(func, t0, dt, t1, y0, f0=f0, perturb=self.perturb), f0


SOLVERS.setdefault("rk4_classic", ClassicRK4)


class Field(nn.Module):
    """Autonomous vector field f(y) with an evaluation counter."""

    def __init__(self, s: dict):
        super().__init__()
        kind = s["field"]
        if kind == "conv1d":
            c, ch = s["state_shape"][0], s["channels"]
            self.net = nn.Sequential(
                nn.Conv1d(c, ch, 1),
                nn.ReLU(),
                nn.Conv1d(ch, ch, 3, padding=1),
                nn.ReLU(),
                nn.Conv1d(ch, c, 1),
            )
        elif kind == "conv2d":
            c, ch = s["state_shape"][0], s["channels"]
            self.net = nn.Sequential(
                nn.Conv2d(c, ch, 1),
                nn.ReLU(),
                nn.Conv2d(ch, ch, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(ch, c, 1),
            )
        elif kind == "mlp":
            d, h = s["state_shape"][0], s["hidden"]
            self.net = nn.Sequential(
                nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, d)
            )
        elif kind == "resmlp":
            d, h = s["state_shape"][0], s["hidden"]
            self.net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, d))
        else:
            raise ValueError(f"unknown field kind {kind!r}")
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return self.net(y)


class OdeModel(nn.Module):
    """Field solved on [0, t1] with a fixed step, then flatten → optional linear head."""

    def __init__(self, s: dict, method: str):
        super().__init__()
        self.field = Field(s)
        flat = 1
        for n in s["state_shape"]:
            flat *= n
        self.head = nn.Linear(flat, s["classes"]) if s["classes"] else None
        self.register_buffer("t", torch.tensor([0.0, s["t1"]]))
        self.method = method
        self.step_size = s["dt"]

    def forward(self, x):
        ys = torchdiffeq.odeint(
            self.field, x, self.t, method=self.method, options={"step_size": self.step_size}
        )
        y = ys[-1].flatten(1)
        return self.head(y) if self.head is not None else y


def main() -> None:
    p = peer_common.build_parser("torchdiffeq")
    p.add_argument(
        "--rk4",
        choices=("classic", "38"),
        default="classic",
        help="RK4 variant for rk4 workloads: classic (odeflow's rk4, default) or 38 "
        "(torchdiffeq's built-in 'rk4', Kutta's 3/8 rule = odeflow's rk4-38)",
    )
    args = p.parse_args()
    peer_common.check_counts(args)
    s = workloads.spec(args.workload, args.depth)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        # Full f32 arithmetic, as odeflow's cuBLAS calls.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    rss0 = peer_common.rss_mib()

    method = s["solver"]
    if method == "rk4":
        method = "rk4_classic" if args.rk4 == "classic" else "rk4"
    model = OdeModel(s, method).to(device)
    x = torch.randn(s["batch"], *s["state_shape"]).to(device)
    if s["classes"]:
        target = torch.randint(0, s["classes"], (s["batch"],)).to(device)
        loss_fn = F.cross_entropy
    else:
        target = torch.randn(s["batch"], *s["state_shape"]).flatten(1).to(device)
        loss_fn = F.mse_loss
    opt = torch.optim.Adam(model.parameters(), lr=workloads.LEARNING_RATE)

    losses = []

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    # One untimed iteration first: initial loss and the field-evaluation count.
    step()
    nfe = model.field.nfe
    expected = s["steps"] * workloads.STAGES[s["solver"]]
    if nfe != expected:
        sys.exit(
            f"{s['name']}: torchdiffeq made {nfe} field evaluations per forward, expected "
            f"{expected} ({s['steps']} steps of {s['dt']!r})"
        )
    peer_common.log(f"{s['name']}: initial loss {losses[0]:.6f}, {nfe} field evaluations")

    ms = peer_common.time_iterations(step, args.warmup - 1, args.iters)
    peer_common.report(
        s,
        ms,
        {
            "framework": "torchdiffeq",
            "device": args.device,
            "initial_loss": losses[0],
            "final_loss": losses[-1],
            "method": method,
            "gradient": "backprop through solver (torchdiffeq.odeint, not odeint_adjoint)",
            "nfe_per_forward": nfe,
            "threads": torch.get_num_threads(),
            "rss_before_model_mib": round(rss0, 1),
            "versions": {
                "torch": torch.__version__,
                "torchdiffeq": torchdiffeq.__version__,
            },
        },
    )


if __name__ == "__main__":
    main()
