"""check_flow on a Neural ODE written in numpy (runs in CI in well under a second).

The model is a rotation field z' = ω J z on 2-D points, read out by the arg-max of z(1).
Its labels are what it predicts with the solver it was "trained" with, Euler with 2 steps,
so its training accuracy is 1. Euler with 2 steps turns by 2·atan(ω/2) instead of ω: under
any more accurate solver points move across the decision line, and check_flow says that
this model is not an ODE flow. The same field labelled by the exact flow and trained with
RK4 at 8 steps is one.

    python crates/odeflow-py/examples/check_numpy.py
"""

import math

import numpy as np

import odeflow

omega = math.pi / 2
A = omega * np.array([[0.0, -1.0], [1.0, 0.0]])


def field(t, z):  # z has shape (batch, 2)
    return z @ A.T


rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 2))
euler2 = np.linalg.matrix_power(np.eye(2) + A / 2, 2)  # two Euler steps of h = 1/2
y = np.argmax(x @ euler2.T, axis=1)

verdict = odeflow.check_flow(field, x, y, train_method="euler", train_steps=2)
print(verdict.summary)

exact = np.array([[math.cos(omega), -math.sin(omega)], [math.sin(omega), math.cos(omega)]])
fine = odeflow.check_flow(field, x, np.argmax(x @ exact.T, axis=1), train_method="rk4", train_steps=8)
print(fine.summary)
