"""The run pipeline from Python (train, evaluate, check, load_data), and check_flow on a
numpy re-implementation of a run trained by odeflow.train."""

import json

import numpy as np
import pytest

import odeflow

CONFIG = {
    "seed": 3,
    "dtype": "f64",
    "data": {"name": "sphere2", "train_size": 400, "test_size": 300},
    "model": {"kind": "mlp", "hidden": [8], "activation": "tanh"},
    "solver": {"method": "euler", "steps": 2},
    "train": {"iterations": 150, "batch_size": 64, "lr": 0.02},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "e2"
    summary = odeflow.train(CONFIG, d)
    return d, summary


def test_train_writes_a_run_folder(run):
    d, summary = run
    for f in ["config.toml", "model.json", "summary.json", "metrics.jsonl", "training.png"]:
        assert (d / f).exists(), f
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary == json.loads((d / "summary.json").read_text())


def numpy_model(model):
    """The run's classifier re-implemented in numpy from model.json: an MLP field
    2 → 8 → 2 (tanh) and a linear head 2 → 2, parameters in PyTorch layout, in order."""
    p = np.array(model["params"])
    shapes = [(8, 2), (8,), (2, 8), (2,), (2, 2), (2,)]
    parts, i = [], 0
    for s in shapes:
        n = int(np.prod(s))
        parts.append(p[i : i + n].reshape(s))
        i += n
    assert i == len(p) == model["num_params"]
    w1, b1, w2, b2, wh, bh = parts

    def field(t, z):
        flat = z.reshape(z.shape[0], -1)
        return (np.tanh(flat @ w1.T + b1) @ w2.T + b2).reshape(z.shape)

    def head(z):
        return z.reshape(z.shape[0], -1) @ wh.T + bh

    return field, head


def test_check_flow_on_a_numpy_reimplementation_gives_the_same_accuracies_as_check(run):
    d, _ = run
    verdict = odeflow.check(d)
    assert isinstance(verdict, odeflow.Verdict)
    assert (d / "check.json").exists() and (d / "check.png").exists()
    assert verdict.to_dict() == json.loads((d / "check.json").read_text())
    model = json.loads((d / "model.json").read_text())
    data = odeflow.load_data(d)
    x, y = data["x_test"], data["y_test"]
    assert x.dtype == np.float64 and x.shape == (300, *model["sample_shape"])
    field, head = numpy_model(model)
    mine = odeflow.check_flow(
        field, x, y, head=head,
        train_method=model["train"]["method"], train_steps=model["train"]["steps"],
    )
    assert mine.train_accuracy == verdict.train_accuracy
    assert [(r["method"], r["steps"]) for r in mine.results] == [
        (r["method"], r["steps"]) for r in verdict.results
    ]
    for a, b in zip(mine.results, verdict.results):
        assert a["accuracy"] == b["accuracy"], (a, b)
        assert a["nfe"] == b["nfe"]
    assert mine.valid == verdict.valid and mine.worst == verdict.worst


def test_evaluate_writes_the_report_and_check_reuses_it(run):
    d, _ = run
    report = odeflow.evaluate(d, methods=["euler", "rk4"], steps=[2, 8])
    assert [(r["method"], r["steps"]) for r in report["results"]] == [
        ("euler", 2), ("euler", 8), ("rk4", 2), ("rk4", 8)
    ]
    for f in ["eval.json", "eval.csv", "eval.png"]:
        assert (d / f).exists(), f
    v = odeflow.check(d, threshold=0.5)
    assert v.to_dict()["source"] == "eval.json" and v.threshold == 0.5
    assert len(v.results) == 4


def test_load_data_of_a_config():
    cfg = {"data": {"name": "sphere2", "train_size": 10, "test_size": 5}, "solver": {"steps": 2}}
    data = odeflow.load_data(cfg)
    assert data["x_train"].shape[0] == 10 and data["y_test"].shape == (5,)
    assert data["x_train"].dtype == np.float32 and data["classes"] == 2


def test_run_errors(run, tmp_path):
    d, _ = run
    with pytest.raises(ValueError, match="already holds a run"):
        odeflow.train(CONFIG, d)
    with pytest.raises(ValueError, match="unknown field `bogus`"):
        odeflow.train({"bogus": 1}, tmp_path / "x")
    with pytest.raises(ValueError, match="nope"):
        odeflow.train({"solver": {"method": "nope", "steps": 2}}, tmp_path / "y")
    with pytest.raises(TypeError, match="config must be a dict"):
        odeflow.train(42, tmp_path / "z")
    with pytest.raises(ValueError, match="is not a run folder"):
        odeflow.check(tmp_path)
    with pytest.raises(ValueError, match="is not a run folder"):
        odeflow.evaluate(tmp_path)
    with pytest.raises(ValueError, match="threshold 2"):
        odeflow.check(d, threshold=2.0)
    with pytest.raises(ValueError, match="verlet"):
        odeflow.evaluate(d, methods=["verlet"])
    toml = tmp_path / "c.toml"
    toml.write_text('[solver]\nmethod = "euler"\nsteps = 2\n[train]\niterations = 2\n[data]\ntrain_size = 20\ntest_size = 20\n')
    s = odeflow.train(str(toml), tmp_path / "from-toml")
    assert s["iterations"] == 2 and s["train"] == {"method": "euler", "order": 1, "steps": 2}


def test_check_of_weights_trained_elsewhere_agrees_with_check_flow(run, tmp_path):
    """The run's parameters written as a safetensors file with PyTorch names (as a model
    trained in PyTorch would be), checked with check(weights=...), give the verdict
    check_flow gives for the same numpy model on the same test set."""
    st = pytest.importorskip("safetensors.numpy")
    d, _ = run
    model = json.loads((d / "model.json").read_text())
    p = np.array(model["params"])
    names = ["field.0.weight", "field.0.bias", "field.2.weight", "field.2.bias",
             "head.weight", "head.bias"]
    shapes = [(8, 2), (8,), (2, 8), (2,), (2, 2), (2,)]
    tensors, i = {}, 0
    for name, s in zip(names, shapes):
        n = int(np.prod(s))
        tensors[name] = np.ascontiguousarray(p[i : i + n].reshape(s))
        i += n
    f = tmp_path / "model.safetensors"
    st.save_file(tensors, str(f))
    out = tmp_path / "checked"
    v = odeflow.check(
        weights=f, model="mlp-tanh", dataset="sphere2", test_size=300,
        train_method="euler", train_steps=2, out_dir=out,
    )
    assert (out / "check.json").exists() and (out / "check.png").exists()
    data = odeflow.load_data({
        "dtype": "f64", "data": {"name": "sphere2", "test_size": 300},
        "solver": {"method": "euler", "steps": 2},
    })
    field, head = numpy_model(model)
    mine = odeflow.check_flow(
        field, data["x_test"], data["y_test"], head=head, train_method="euler", train_steps=2
    )
    assert v.train_accuracy == mine.train_accuracy
    assert [(r["method"], r["steps"], r["accuracy"]) for r in v.results] == [
        (r["method"], r["steps"], r["accuracy"]) for r in mine.results
    ]
    assert v.valid == mine.valid

    with pytest.raises(ValueError, match="needs model="):
        odeflow.check(weights=f, dataset="sphere2", train_method="euler", train_steps=2,
                      out_dir=out)
    with pytest.raises(ValueError, match="exactly one of train_steps"):
        odeflow.check(weights=f, model="mlp-tanh", dataset="sphere2", train_method="euler",
                      out_dir=out)
    with pytest.raises(ValueError, match="not both"):
        odeflow.check(d, weights=f)
    with pytest.raises(ValueError, match=r"head\.(weight|bias)"):
        bad = dict(tensors, **{"head.weight": np.zeros((3, 2))})
        st.save_file(bad, str(tmp_path / "bad.safetensors"))
        odeflow.check(weights=tmp_path / "bad.safetensors", model="mlp-tanh",
                      dataset="sphere2", train_method="euler", train_steps=2, out_dir=out)
