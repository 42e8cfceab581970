"""odeflow.solve, odeflow.methods and odeflow.imde against references and their error paths."""

import math
import traceback

import numpy as np
import pytest

import odeflow


def pendulum(t, y):
    # Zhu et al.'s pendulum, state (p, q): p' = -10 sin q, q' = p (the built-in "pendulum").
    return np.array([-10.0 * np.sin(y[1]), y[0]])


def rk4_reference(f, y0, t0, t1, n):
    """Classical RK4 with n steps, written out in numpy."""
    y, h, t = np.array(y0, dtype=float), (t1 - t0) / n, t0
    for _ in range(n):
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += h
    return y


def test_python_pendulum_matches_a_numpy_rk4_reference():
    y0 = np.array([0.0, 1.0])
    ref = rk4_reference(pendulum, y0, 0.0, 2.0, 400)
    sol = odeflow.solve(pendulum, y0, 0.0, 2.0, method="rk4", steps=400)
    assert sol.y.shape == (401, 2) and sol.t.shape == (401,)
    assert np.max(np.abs(sol.y_final - ref)) < 1e-12
    assert sol.stats["nfe"] == 1600 and sol.stats["steps"] == 400
    # dopri5 at a tight tolerance agrees with a fine RK4 reference (error ~1e-11).
    fine = rk4_reference(pendulum, y0, 0.0, 2.0, 4000)
    ad = odeflow.solve(pendulum, y0, 0.0, 2.0, rtol=1e-11, atol=1e-13)
    assert np.max(np.abs(ad.y_final - fine)) < 1e-8
    assert ad.stats["accepted"] > 10


def test_python_field_agrees_with_the_builtin_system_and_conserves_energy():
    y0 = np.array([0.5, 1.0])
    mine = odeflow.solve(pendulum, y0, 0.0, 3.0, method="verlet" if False else "rk4", dt=0.01)
    builtin = odeflow.solve("pendulum", y0, 0.0, 3.0, method="rk4", dt=0.01)
    assert np.max(np.abs(mine.y - builtin.y)) < 1e-12
    energy = 0.5 * mine.y[:, 0] ** 2 - 10.0 * np.cos(mine.y[:, 1])
    assert np.max(np.abs(energy - energy[0])) < 1e-5
    # A splitting method on the built-in separable system.
    v = odeflow.solve("pendulum", y0, 0.0, 3.0, method="verlet", dt=0.01)
    ev = 0.5 * v.y[:, 0] ** 2 - 10.0 * np.cos(v.y[:, 1])
    assert np.max(np.abs(ev - ev[0])) < 5e-3


def test_t_eval_batches_and_dtypes():
    # y' = -y with a leading batch dimension; exact solution y0 e^{-t}.
    y0 = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ts = [0.0, 0.5, 1.0]
    sol = odeflow.solve(lambda t, y: -y, y0, t_eval=ts, rtol=1e-10, atol=1e-12)
    assert sol.y.shape == (3, 3, 2)
    np.testing.assert_allclose(sol.t, ts)
    for i, t in enumerate(ts):
        np.testing.assert_allclose(sol.y[i], y0 * math.exp(-t), rtol=1e-8)
    s32 = odeflow.solve(lambda t, y: -y, y0.astype(np.float32), method="rk4", steps=10)
    assert s32.y.dtype == np.float32 and s32.y_final.dtype == np.float32
    np.testing.assert_allclose(s32.y_final, y0 * math.exp(-1.0), rtol=1e-5)
    # Lists and integers are float64.
    assert odeflow.solve(lambda t, y: -y, [1, 2], method="euler", steps=1).y.dtype == np.float64


def test_solver_failure_raises_solve_error_with_the_partial_solution():
    # y' = y² blows up at t = 1.
    with pytest.raises(odeflow.SolveError) as info:
        odeflow.solve(lambda t, y: y * y, np.ones(1), 0.0, 2.0, max_steps=60)
    e = info.value
    assert isinstance(e, RuntimeError)
    assert 0.9 < e.t < 1.0 and e.h > 0 and e.step == 60
    assert "max_steps" in e.reason and "t = " in str(e)
    assert isinstance(e.partial, odeflow.Solution)
    assert e.partial.y.shape[1:] == (1,) and e.partial.t_final == e.t
    assert e.partial.y[-1, 0] > 5.0
    # A NaN stops a fixed-step solve too.
    with pytest.raises(odeflow.SolveError, match="non-finite"):
        odeflow.solve(lambda t, y: np.full_like(y, np.nan), np.ones(2), method="euler", steps=4)


class Boom(Exception):
    pass


def test_an_exception_in_f_propagates_unchanged_and_stops_the_solve():
    calls = []

    def f(t, y):
        calls.append(t)
        if len(calls) == 3:
            raise Boom("from f")
        return -y

    with pytest.raises(Boom, match="from f") as info:
        odeflow.solve(f, np.ones(2), method="rk4", steps=100)
    assert len(calls) == 3  # no call after the exception
    frames = [fr.name for fr in traceback.extract_tb(info.value.__traceback__)]
    assert "f" in frames


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(method="nope", steps=2), ValueError, "nope"),
        (dict(method="rk4"), ValueError, "method 'rk4' is fixed-step: give dt or steps"),
        (dict(method="rk4", steps=2, dt=0.1), ValueError, "steps or dt, not both"),
        (dict(method="rk4", steps=2, rtol=1e-3), ValueError, "rtol/atol need adaptive"),
        (dict(method="euler", steps=0), ValueError, "step"),
        (dict(method="euler", dt=-0.5), ValueError, "-0.5"),
        (dict(rtol=-1.0), ValueError, "rtol"),
        (dict(method="euler", steps=10, max_steps=5), ValueError, "max_steps 5"),
        (dict(t_eval=[0.0, 2.0]), ValueError, "2"),
        (dict(t_eval=[0.5, 0.2]), ValueError, "0.2"),
        (dict(method="verlet", dt=0.1), ValueError, "split"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(")):
        odeflow.solve(lambda t, y: -y, np.ones(2), **kwargs)


def test_bad_inputs_and_outputs_of_the_callable():
    with pytest.raises(ValueError, match=r"shape \(3,\) but it must have shape \(2,\)"):
        odeflow.solve(lambda t, y: np.zeros(3), np.ones(2), method="euler", steps=2)
    with pytest.raises(TypeError, match="NoneType"):
        odeflow.solve(lambda t, y: None, np.ones(2), method="euler", steps=2)
    with pytest.raises(TypeError, match="y0 is required"):
        odeflow.solve(lambda t, y: -y)
    with pytest.raises(TypeError, match="not int"):
        odeflow.solve(3, np.ones(2))
    with pytest.raises(TypeError, match="complex128"):
        odeflow.solve(lambda t, y: -y, np.ones(2, dtype=complex), method="euler", steps=1)
    with pytest.raises(ValueError, match="non-finite|NaN|nan"):
        odeflow.solve(lambda t, y: -y, np.array([1.0, np.nan]), method="euler", steps=1)
    with pytest.raises(ValueError, match="t0"):
        odeflow.solve(lambda t, y: -y, np.ones(1), 1.0, 1.0, method="euler", steps=1)
    with pytest.raises(ValueError, match="nosuch"):
        odeflow.solve("nosuch", [1.0, 2.0])
    with pytest.raises(ValueError, match="3 values but system 'pendulum' has 2"):
        odeflow.solve("pendulum", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="not separable"):
        odeflow.solve("lorenz", None, method="verlet", dt=0.1)


def test_methods_is_the_catalogue():
    ms = {m["name"]: m for m in odeflow.methods()}
    assert ms["rk4"]["order"] == 4 and ms["rk4"]["stages"] == 4 and ms["rk4"]["kind"] == "explicit"
    assert ms["dopri5"]["kind"] == "embedded" and ms["dopri5"]["embedded_order"] == 4
    assert ms["verlet"]["kind"] == "symplectic"


def test_imde_of_euler_for_linear_decay_is_the_log_series():
    # Euler on y' = -y maps y to (1 - h) y; the IMDE is f_h(y) = μ y with 1 + hμ = e^{-h},
    # μ = -1 + h/2 - h²/6 + h³/24 - …, truncated at order 3.
    h = 0.1
    r = odeflow.imde("linear", "euler", h, order=3, at=[1.0])
    assert set(r) >= {"imde", "field", "term_norms", "terms", "method", "h", "order", "at"}
    assert r["system"] == "linear" and r["method"] == "euler"
    mu = -1 + h / 2 - h * h / 6 + h**3 / 24
    assert abs(r["imde"][0] - mu) < 1e-14
    assert r["field"] == [-1.0] and len(r["term_norms"]) == 4
    with pytest.raises(ValueError, match="order 99"):
        odeflow.imde("linear", "euler", h, order=99)
    with pytest.raises(ValueError, match="expansion 'sideways'"):
        odeflow.imde("linear", "euler", h, expansion="sideways")
    with pytest.raises(ValueError, match="verlet"):
        odeflow.imde("pendulum", "verlet", h)
