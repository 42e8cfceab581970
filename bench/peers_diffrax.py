"""diffrax peer: times forward + backward + Adam step of one workload on the CPU (JAX), or
with ``--device cuda`` on the first NVIDIA GPU (a CUDA build of jaxlib; matmul and
convolution precision "highest": full f32, no TF32).

    python bench/peers_diffrax.py sphere2-euler256 --iters 20

Solver: ``diffrax.diffeqsolve(ODETerm(field), solver, t0=0, t1, dt0=t1/steps,
stepsize_controller=ConstantStepSize(), saveat=SaveAt(t1=True), max_steps=steps,
adjoint=RecursiveCheckpointAdjoint())`` — diffrax's default adjoint: reverse-mode
autodiff through the solver with binomial (treeverse) checkpointing of the step loop;
``--checkpoints all`` passes ``checkpoints=steps`` (every step stored, no recomputation:
plain backprop through the solver, like torchdiffeq's odeint and odeflow's backprop).
Models are equinox modules (PyTorch-default initialisation), optimizer ``optax.adam``,
and the whole train step is one ``eqx.filter_jit``; each timed iteration ends with
``jax.block_until_ready``. JIT compilation happens in the first (untimed) warm-up call.

RK4: diffrax (0.7.x) ships no classic RK4, so ``ClassicRK4`` below is an ``AbstractERK``
with the classic Butcher tableau c = (0, 1/2, 1/2, 1), b = (1/6, 1/3, 1/3, 1/6) — odeflow's
``rk4``. It has no embedded error estimate (``b_error`` = 0), which is unused under
``ConstantStepSize``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import ClassVar


def _set_xla_threads(argv: list[str]) -> None:
    """XLA reads its flags at import: pick single- or multi-threaded Eigen from --threads
    unless the caller (compare.py) already set XLA_FLAGS."""
    if "XLA_FLAGS" in os.environ:
        return
    threads = os.cpu_count()
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif a.startswith("--threads="):
            threads = int(a.split("=", 1)[1])
    os.environ["XLA_FLAGS"] = (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if threads == 1
        else "--xla_cpu_multi_thread_eigen=true"
    )


def _set_jax_platform(argv: list[str]) -> str:
    """JAX picks its platform at import: --device cpu|cuda → JAX_PLATFORMS."""
    device = "cpu"
    for i, a in enumerate(argv):
        if a == "--device" and i + 1 < len(argv):
            device = argv[i + 1]
        elif a.startswith("--device="):
            device = a.split("=", 1)[1]
    if device in ("cpu", "cuda"):
        os.environ["JAX_PLATFORMS"] = device
    return device


_set_xla_threads(sys.argv)
_set_jax_platform(sys.argv)

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402
import workloads  # noqa: E402

_classic_rk4_tableau = diffrax.ButcherTableau(
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    c=np.array([0.5, 0.5, 1.0]),
)


class ClassicRK4(diffrax.AbstractERK):
    """Classic fourth-order Runge–Kutta (Kutta 1901), 4 stages, no error estimate."""

    tableau: ClassVar[diffrax.ButcherTableau] = _classic_rk4_tableau
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 4


SOLVERS = {"euler": diffrax.Euler, "rk4": ClassicRK4}


def _relu(x):
    return jax.nn.relu(x)


def conv_channels_last(y, weight, bias):
    """'Same'-padded stride-1 convolution of a channels-last batch y (B, *spatial, C_in)
    with a PyTorch-layout kernel (C_out, C_in, *k), as a sum over kernel offsets of
    matrix products (B·spatial, C_in) × (C_in, C_out).

    Same result as ``eqx.nn.Conv`` / ``lax.conv`` (checked at start-up), but XLA:CPU runs
    these dots fast inside the solver's while loop, where its native convolutions fall back
    to a slow loop emitter (jax-ml/jax#12868: NCHW convs in loop bodies, and the weight-
    gradient convolutions of the backward pass in any layout).
    """
    ks = weight.shape[2:]
    spatial = y.shape[1:-1]
    pad = [(0, 0)] + [((k - 1) // 2, (k - 1) // 2) for k in ks] + [(0, 0)]
    yp = jnp.pad(y, pad) if any(k > 1 for k in ks) else y
    out = None
    for offset in np.ndindex(*ks):
        window = yp[
            (slice(None),)
            + tuple(slice(o, o + n) for o, n in zip(offset, spatial, strict=True))
            + (slice(None),)
        ]
        term = jnp.einsum("...c,oc->...o", window, weight[(slice(None), slice(None)) + offset])
        out = term if out is None else out + term
    return out + bias


class Field(eqx.Module):
    """Autonomous vector field f(y) on the whole batch.

    Conv fields: ``conv="eqx"`` vmaps equinox's ``Conv`` over a channels-first batch;
    ``conv="matmul"`` keeps the state channels-last and applies the same kernels with
    ``conv_channels_last``. Both hold the same ``eqx.nn.Conv`` parameters.
    """

    layers: tuple
    activation: Callable = eqx.field(static=True)
    conv: str | None = eqx.field(static=True)

    def __init__(self, s: dict, conv: str, key):
        k1, k2, k3 = jax.random.split(key, 3)
        kind = s["field"]
        if kind in ("conv1d", "conv2d"):
            nd = 1 if kind == "conv1d" else 2
            c, ch = s["state_shape"][0], s["channels"]
            self.layers = (
                eqx.nn.Conv(nd, c, ch, 1, key=k1),
                eqx.nn.Conv(nd, ch, ch, 3, padding=1, key=k2),
                eqx.nn.Conv(nd, ch, c, 1, key=k3),
            )
            self.activation = _relu
            self.conv = conv
        elif kind == "mlp":
            d, h = s["state_shape"][0], s["hidden"]
            self.layers = (
                eqx.nn.Linear(d, h, key=k1),
                eqx.nn.Linear(h, h, key=k2),
                eqx.nn.Linear(h, d, key=k3),
            )
            self.activation = jnp.tanh
            self.conv = None
        elif kind == "resmlp":
            d, h = s["state_shape"][0], s["hidden"]
            self.layers = (eqx.nn.Linear(d, h, key=k1), eqx.nn.Linear(h, d, key=k2))
            self.activation = jnp.tanh
            self.conv = None
        else:
            raise ValueError(f"unknown field kind {kind!r}")

    def _one(self, y):
        for layer in self.layers[:-1]:
            y = self.activation(layer(y))
        return self.layers[-1](y)

    def __call__(self, y):
        if self.conv != "matmul":
            return jax.vmap(self._one)(y)
        return self._channels_last(y)

    def _channels_last(self, y):
        for i, layer in enumerate(self.layers):
            y = conv_channels_last(y, layer.weight, layer.bias.reshape(-1))
            if i + 1 < len(self.layers):
                y = self.activation(y)
        return y


def to_state(x, conv):
    """Model input (B, C, *spatial) → ODE state (channels-last for conv="matmul")."""
    return jnp.moveaxis(x, 1, -1) if conv == "matmul" else x


def from_state(y, conv):
    """ODE state → (B, C, *spatial), so flattening orders features as PyTorch does."""
    return jnp.moveaxis(y, -1, 1) if conv == "matmul" else y


class OdeModel(eqx.Module):
    """Batch state solved on [0, t1] with a fixed step, then flatten → optional head."""

    field: Field
    head: eqx.nn.Linear | None
    solver: diffrax.AbstractSolver
    adjoint: diffrax.AbstractAdjoint
    conv: str | None = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)

    def __init__(self, s: dict, adjoint, conv: str, key):
        kf, kh = jax.random.split(key)
        self.field = Field(s, conv, kf)
        self.conv = self.field.conv
        flat = int(np.prod(s["state_shape"]))
        self.head = eqx.nn.Linear(flat, s["classes"], key=kh) if s["classes"] else None
        self.solver = SOLVERS[s["solver"]]()
        self.adjoint = adjoint
        self.t1, self.dt, self.steps = s["t1"], s["dt"], s["steps"]

    def solve(self, x):
        term = diffrax.ODETerm(lambda t, y, args: self.field(y))
        return diffrax.diffeqsolve(
            term,
            self.solver,
            t0=0.0,
            t1=self.t1,
            dt0=self.dt,
            y0=to_state(x, self.conv),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.ConstantStepSize(),
            adjoint=self.adjoint,
            max_steps=self.steps,
        )

    def __call__(self, x):
        y = from_state(self.solve(x).ys[-1], self.conv).reshape(x.shape[0], -1)
        return jax.vmap(self.head)(y) if self.head is not None else y


def check_conv_equivalence(field: Field, x) -> float:
    """Max |f_matmul(x) − f_eqx(x)| on a few samples: the two conv paths must agree."""
    if field.conv is None:
        return 0.0
    x = x[:4]
    ref = jax.vmap(field._one)(x)
    got = from_state(field._channels_last(to_state(x, "matmul")), "matmul")
    err = float(jnp.max(jnp.abs(ref - got)))
    scale = float(jnp.max(jnp.abs(ref))) + 1e-30
    if err > 1e-4 * scale:
        sys.exit(f"channels-last matmul convolution disagrees with eqx.nn.Conv: {err:.3g}")
    return err


def main() -> None:
    p = peer_common.build_parser("diffrax")
    p.add_argument(
        "--checkpoints",
        choices=("default", "all"),
        default="default",
        help="RecursiveCheckpointAdjoint checkpoints: diffrax's default (treeverse, "
        "recomputes) or all (one per step: plain backprop)",
    )
    p.add_argument(
        "--conv",
        choices=("matmul", "eqx"),
        default="matmul",
        help="convolution fields: matmul (channels-last sum of matrix products, default; "
        "fast inside XLA:CPU loops) or eqx (vmapped eqx.nn.Conv; hits jax-ml/jax#12868)",
    )
    args = p.parse_args()
    peer_common.check_counts(args)
    s = workloads.spec(args.workload, args.depth)
    if args.device == "cuda":
        platform = jax.devices()[0].platform
        if platform != "gpu":
            sys.exit(f"--device cuda: JAX runs on {platform}; install a CUDA build of jaxlib")
        jax.config.update("jax_default_matmul_precision", "highest")
    rss0 = peer_common.rss_mib()

    adjoint = diffrax.RecursiveCheckpointAdjoint(
        checkpoints=s["steps"] if args.checkpoints == "all" else None
    )
    kmodel, kx, ky = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    model = OdeModel(s, adjoint, args.conv, kmodel)
    x = jax.random.normal(kx, (s["batch"], *s["state_shape"]), dtype=jnp.float32)
    if s["classes"]:
        target = jax.random.randint(ky, (s["batch"],), 0, s["classes"])

        def loss_fn(m, x, t):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), t).mean()

    else:
        target = jax.random.normal(ky, (s["batch"], int(np.prod(s["state_shape"]))))

        def loss_fn(m, x, t):
            return jnp.mean((m(x) - t) ** 2)

    optim = optax.adam(workloads.LEARNING_RATE)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(model, opt_state, x, t):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, t)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    # Step-count check (once, outside the timed step): the solver must take exactly
    # `steps` steps; diffeqsolve raises if max_steps is exceeded.
    conv_err = check_conv_equivalence(model.field, x)
    num_steps = int(eqx.filter_jit(lambda m, x: m.solve(x).stats["num_steps"])(model, x))
    if num_steps != s["steps"]:
        sys.exit(f"{s['name']}: diffrax took {num_steps} steps, expected {s['steps']}")

    state = {"model": model, "opt": opt_state, "losses": []}

    def step() -> None:
        m, o, loss = train_step(state["model"], state["opt"], x, target)
        jax.block_until_ready((m, o, loss))
        state["model"], state["opt"] = m, o
        state["losses"].append(loss)

    ms = peer_common.time_iterations(step, args.warmup, args.iters)
    losses = [float(v) for v in state["losses"]]
    peer_common.log(f"{s['name']}: initial loss {losses[0]:.6f}, {num_steps} steps")
    peer_common.report(
        s,
        ms,
        {
            "framework": "diffrax",
            "device": args.device,
            "jax_device": str(jax.devices()[0]),
            "initial_loss": losses[0],
            "final_loss": losses[-1],
            "method": type(model.solver).__name__,
            "gradient": "RecursiveCheckpointAdjoint(checkpoints="
            + (
                "None: diffrax default, treeverse"
                if args.checkpoints == "default"
                else f"{s['steps']}: every step"
            )
            + ")",
            "num_steps": num_steps,
            "conv": model.conv,
            "conv_matmul_vs_eqx_max_abs_diff": conv_err,
            "threads": args.threads,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "rss_before_model_mib": round(rss0, 1),
            "versions": {p: version(p) for p in ("jax", "jaxlib", "diffrax", "equinox", "optax")},
        },
    )


if __name__ == "__main__":
    main()
