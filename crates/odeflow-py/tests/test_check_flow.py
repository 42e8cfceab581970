"""odeflow.check_flow and check_regression on numpy models with closed-form answers, and
every error path."""

import math

import numpy as np
import pytest

import odeflow

OMEGA = math.pi / 2
A = OMEGA * np.array([[0.0, -1.0], [1.0, 0.0]])  # z' = A z: rotation at angular speed ω


def field(t, z):
    return z @ A.T


def step_matrix(method, h):
    """The one-step map of a Runge–Kutta method on z' = A z: a polynomial in hA."""
    ha = h * A
    terms = {"euler": 1, "midpoint": 2, "rk4": 4}[method]
    out, power = np.eye(2), np.eye(2)
    for k in range(1, terms + 1):
        power = power @ ha / k
        out = out + power
    return out


def predictions(x, method, steps):
    m = np.linalg.matrix_power(step_matrix(method, 1.0 / steps), steps)
    return np.argmax(x @ m.T, axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 2))
    # Labels are what the model predicts with its training solver, euler with 2 steps: the
    # training accuracy is 1 and every other solver's accuracy is known in closed form.
    return x, predictions(x, "euler", 2)


def test_every_accuracy_matches_the_closed_form_and_the_verdict_is_not_valid(data, tmp_path):
    x, y = data
    plot = tmp_path / "check.png"
    v = odeflow.check_flow(field, x, y, train_method="euler", train_steps=2, plot=plot)
    assert v.train_accuracy == 1.0
    assert len(v.results) == 15  # the CLI's default grid: euler, midpoint, rk4 × 2…32 steps
    for r in v.results:
        expected = np.mean(predictions(x, r["method"], r["steps"]) == y)
        assert abs(r["accuracy"] - expected) < 1e-12, r
        assert r["nfe"] == {"euler": 1, "midpoint": 2, "rk4": 4}[r["method"]] * r["steps"]
        assert r["diverged"] == 0
    # Euler with 2 steps turns by 2·atan(ω/2) instead of ω: the exact flow moves points
    # across the decision line, so the model is not an ODE flow.
    assert v.valid is False
    worst = min(v.results, key=lambda r: r["accuracy"])
    assert v.worst["accuracy"] == worst["accuracy"]
    assert abs(v.worst["drop"] - (1.0 - worst["accuracy"])) < 1e-12
    assert v.worst["drop"] > 0.05
    assert v.summary.startswith("NOT a valid ODE flow")
    d = v.to_dict()
    assert d["valid"] is False and d["train"]["method"] == "euler" and d["train"]["steps"] == 2
    d["valid"] = True
    assert v.valid is False  # to_dict is a copy
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "valid=False" in repr(v)


def test_a_model_that_is_an_ode_flow_is_valid_in_float32_with_a_head():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    exact = np.array([[math.cos(OMEGA), -math.sin(OMEGA)], [math.sin(OMEGA), math.cos(OMEGA)]])
    y = np.argmax(x @ exact.T, axis=1)
    seen = []

    def f32_field(t, z):
        seen.append(z.dtype)
        return (z @ A.T).astype(np.float32)

    def head(z):
        return np.concatenate([z, np.full((z.shape[0], 1), -1e3, np.float32)], axis=1)

    v = odeflow.check_flow(
        f32_field, x, y, head=head, train_method="rk4", train_steps=8,
        test_methods=["rk4", "dopri5"], test_steps=[8, 16], test_tols=[1e-6],
    )
    assert set(seen) == {np.dtype(np.float32)}
    assert v.valid is True and v.train_accuracy > 0.999
    labels = [(r["method"], r.get("steps"), r.get("tol")) for r in v.results]
    assert labels == [("rk4", 8, None), ("rk4", 16, None), ("dopri5", None, 1e-6)]


def test_check_regression_scores_r2_against_targets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    targets = x @ np.linalg.matrix_power(step_matrix("euler", 0.5), 2).T
    v = odeflow.check_regression(field, x, targets, train_method="euler", train_steps=2)
    assert v.train_accuracy == 1.0  # R² of the training solver's own outputs
    assert v.valid is False and v.worst["drop"] > 0.02
    rk = odeflow.check_regression(
        field, x, x @ step_matrix("rk4", 1.0).T, train_method="rk4", train_steps=64
    )
    assert rk.valid is True


class Boom(Exception):
    pass


def test_an_exception_in_field_or_head_propagates_unchanged_and_stops_the_work(data):
    x, y = data
    raised, calls = [], []

    def bad_field(t, z):
        calls.append(t)
        if len(calls) == 2:
            raised.append(Boom("field broke"))
            raise raised[-1]
        return field(t, z)

    with pytest.raises(Boom) as info:
        odeflow.check_flow(bad_field, x, y, train_method="euler", train_steps=2)
    assert info.value is raised[0]
    assert len(calls) == 2  # nothing is called after the exception
    assert any(fr.name == "bad_field" for fr in __import__("traceback").extract_tb(info.value.__traceback__))

    heads = []

    def bad_head(z):
        heads.append(1)
        raise KeyError("head broke")

    with pytest.raises(KeyError, match="head broke"):
        odeflow.check_flow(field, x, y, head=bad_head, train_method="euler", train_steps=2)
    assert len(heads) == 1


def test_wrong_output_shapes_name_both_shapes(data):
    x, y = data
    with pytest.raises(ValueError, match=r"field returned an array of shape \(1000, 3\) but it must have shape \(1000, 2\)"):
        odeflow.check_flow(lambda t, z: np.zeros((z.shape[0], 3)), x, y, train_method="euler", train_steps=2)
    with pytest.raises(ValueError, match=r"head returned an array of shape \(5,\) for a batch of shape \(1000, 2\)"):
        odeflow.check_flow(field, x, y, head=lambda z: np.zeros(5), train_method="euler", train_steps=2)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(train_method="euler"), ValueError, "exactly one of train_steps"),
        (dict(train_method="euler", train_steps=2, train_tol=1e-3), ValueError, "exactly one of"),
        (dict(train_method="nope", train_steps=2), ValueError, "nope"),
        (dict(train_method="rk4", train_tol=1e-3), ValueError, "rk4"),
        (dict(train_method="euler", train_steps=2, threshold=1.5), ValueError, "threshold 1.5"),
        (dict(train_method="euler", train_steps=2, batch_size=0), ValueError, "batch_size 0"),
        (dict(train_method="euler", train_steps=2, t1=0.0), ValueError, "0"),
        (dict(train_method="euler", train_steps=2, test_methods=["verlet"]), ValueError, "verlet"),
        (dict(train_method="euler", train_steps=2, test_steps=[10**12]), ValueError, "1000000000000"),
        (dict(train_method="euler", train_steps=2, plot="check.jpg"), ValueError, "check.jpg"),
        (dict(train_method="euler", train_steps=2, test_methods="rk4"), TypeError, "str"),
    ],
)
def test_bad_arguments(data, kwargs, exc, words):
    x, y = data
    with pytest.raises(exc, match=words):
        odeflow.check_flow(field, x[:50], y[:50], **kwargs)


def test_bad_data():
    x = np.ones((4, 2))
    with pytest.raises(TypeError, match="integer class labels"):
        odeflow.check_flow(field, x, np.zeros(4), train_method="euler", train_steps=2)
    with pytest.raises(ValueError, match=r"y has shape \(3,\) but x holds 4 samples"):
        odeflow.check_flow(field, x, [0, 1, 0], train_method="euler", train_steps=2)
    with pytest.raises(ValueError, match="y\\[1\\] = -1"):
        odeflow.check_flow(field, x, [0, -1, 0, 1], train_method="euler", train_steps=2)
    with pytest.raises(ValueError, match=r"x has shape \(4,\)"):
        odeflow.check_flow(field, np.ones(4), [0, 1, 0, 1], train_method="euler", train_steps=2)
    with pytest.raises(TypeError, match="field must be a callable"):
        odeflow.check_flow("field", x, [0, 1, 0, 1], train_method="euler", train_steps=2)
    with pytest.raises(TypeError, match="head must be a callable"):
        odeflow.check_flow(field, x, [0, 1, 0, 1], head=3, train_method="euler", train_steps=2)
    with pytest.raises(TypeError, match="train_method"):
        odeflow.check_flow(field, x, [0, 1, 0, 1], train_steps=2)
    with pytest.raises(ValueError, match=r"y has shape \(4,\)"):
        odeflow.check_regression(field, x, np.ones(4), train_method="euler", train_steps=2)
