"""check_flow on a JAX model trained with diffrax: the sphere2 classifier (MLP field,
linear head) trained through 2 Euler steps. Prints the verdict; skips with a message when
jax, diffrax, equinox or optax is missing.

    pip install jax diffrax equinox optax
    python crates/odeflow-py/examples/check_jax.py
"""

import sys

try:
    import diffrax
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax
except ImportError as e:
    print(f"skipped: this example needs jax, diffrax, equinox and optax ({e.name} is not installed)")
    sys.exit(0)

import numpy as np

import odeflow

data = odeflow.load_data({"data": {"name": "sphere2"}, "solver": {"steps": 2}})
x_train = jnp.asarray(data["x_train"].reshape(len(data["x_train"]), -1))  # (2000, 2)
y_train = jnp.asarray(data["y_train"])

key_f, key_h = jax.random.split(jax.random.PRNGKey(0))
model = (
    eqx.nn.MLP(2, 2, 32, 2, activation=jnp.tanh, key=key_f),  # the field
    eqx.nn.Linear(2, 2, key=key_h),  # the head
)


def logits(model, x):
    mlp, head = model
    term = diffrax.ODETerm(lambda t, z, args: jax.vmap(mlp)(z))
    sol = diffrax.diffeqsolve(term, diffrax.Euler(), t0=0.0, t1=1.0, dt0=0.5, y0=x)
    return jax.vmap(head)(sol.ys[-1])


@eqx.filter_jit
def step(model, state, x, y):
    def loss(m):
        return optax.softmax_cross_entropy_with_integer_labels(logits(m, x), y).mean()

    grads = eqx.filter_grad(loss)(model)
    updates, state = opt.update(grads, state)
    return eqx.apply_updates(model, updates), state


opt = optax.adam(1e-2)
state = opt.init(eqx.filter(model, eqx.is_array))
rng = np.random.default_rng(0)
for it in range(1000):
    idx = rng.integers(0, len(x_train), 128)
    model, state = step(model, state, x_train[idx], y_train[idx])

mlp, head = model
field_fn = jax.jit(lambda z: jax.vmap(mlp)(z))
head_fn = jax.jit(lambda z: jax.vmap(head)(z))

verdict = odeflow.check_flow(
    lambda t, z: np.asarray(field_fn(z.reshape(len(z), -1))).reshape(z.shape),
    data["x_test"],
    data["y_test"],
    head=lambda z: np.asarray(head_fn(z.reshape(len(z), -1))),
    train_method="euler",
    train_steps=2,
)
print(verdict.summary)
