"""Type stubs of the odeflow extension module (re-exported by ``odeflow``)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike
Field = Callable[[float, np.ndarray], Any]
Head = Callable[[np.ndarray], Any]
PathArg = Union[str, "PathLike[str]"]

class SolveError(RuntimeError):
    """A solve that failed mid-run; carries where it stopped and the partial solution."""

    t: float
    h: float
    step: int
    reason: str
    partial: "Solution"

class Solution:
    """The result of :func:`solve`."""

    @property
    def t(self) -> np.ndarray:
        """Saved times, shape ``(n,)``."""
    @property
    def y(self) -> np.ndarray:
        """Saved states, shape ``(n, *y0.shape)``."""
    @property
    def y_final(self) -> np.ndarray:
        """The state reached, shape ``y0.shape``."""
    @property
    def t_final(self) -> float:
        """The time reached (``t1`` unless the solve failed)."""
    @property
    def stats(self) -> Dict[str, Any]:
        """``nfe``, ``steps``, ``accepted``, ``rejected``, ``h_min``, ``h_max``,
        ``implicit_iterations``."""

class Verdict:
    """The ODE-validity verdict of :func:`check_flow`, :func:`check_regression` and
    :func:`check`."""

    @property
    def valid(self) -> bool:
        """Whether every solver at least as accurate as the training solver keeps the score."""
    @property
    def train_accuracy(self) -> float:
        """The score with the training solver (accuracy; R² for check_regression)."""
    @property
    def worst(self) -> Dict[str, Any]:
        """The worst qualifying solver: method, steps or tol, accuracy, drop, changed, p_value."""
    @property
    def results(self) -> List[Dict[str, Any]]:
        """Every test solver: method, order, steps or tol, accuracy, nfe, diverged, …"""
    @property
    def summary(self) -> str:
        """The verdict in one sentence."""
    @property
    def threshold(self) -> float:
        """The largest tolerated drop."""
    @property
    def compared(self) -> int:
        """How many solvers qualified for the comparison."""
    @property
    def train(self) -> Dict[str, Any]:
        """The training solver: method, order, steps, step_size or tol."""
    def to_dict(self) -> Dict[str, Any]:
        """The whole report as a new dict (the JSON of ``odeflow check --json``)."""

def methods() -> List[Dict[str, Any]]:
    """The method catalogue (name, order, embedded_order, stages, kind, fsal, dense_output,
    aliases)."""

def imde(
    system: str,
    method: str,
    h: float,
    *,
    order: int = 3,
    at: Optional[Sequence[float]] = None,
    expansion: str = "inverse",
) -> Dict[str, Any]:
    """The inverse modified equation of ``method`` with step ``h`` for a built-in system."""

def solve(
    f: Union[str, Field],
    y0: Optional[ArrayLike] = None,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    method: str = "dopri5",
    steps: Optional[int] = None,
    dt: Optional[float] = None,
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
    t_eval: Optional[Sequence[float]] = None,
    max_steps: Optional[int] = None,
) -> Solution:
    """Solves ``y' = f(t, y)`` with any method of the catalogue."""

def check_flow(
    field: Field,
    x: ArrayLike,
    y: ArrayLike,
    *,
    head: Optional[Head] = None,
    train_method: str,
    train_steps: Optional[int] = None,
    train_step_size: Optional[float] = None,
    train_tol: Optional[float] = None,
    test_methods: Optional[Sequence[str]] = None,
    test_steps: Optional[Sequence[int]] = None,
    test_tols: Optional[Sequence[float]] = None,
    threshold: float = 0.02,
    t0: float = 0.0,
    t1: float = 1.0,
    batch_size: int = 1000,
    plot: Optional[PathArg] = None,
) -> Verdict:
    """The ODE-validity verdict (Ott et al., ICLR 2021) for a Neural ODE classifier written
    in any framework."""

def check_regression(
    field: Field,
    x: ArrayLike,
    y: ArrayLike,
    *,
    head: Optional[Head] = None,
    train_method: str,
    train_steps: Optional[int] = None,
    train_step_size: Optional[float] = None,
    train_tol: Optional[float] = None,
    test_methods: Optional[Sequence[str]] = None,
    test_steps: Optional[Sequence[int]] = None,
    test_tols: Optional[Sequence[float]] = None,
    threshold: float = 0.02,
    t0: float = 0.0,
    t1: float = 1.0,
    plot: Optional[PathArg] = None,
) -> Verdict:
    """The ODE-validity verdict for a learned dynamical model scored by R² against targets."""

def train(config: Union[Dict[str, Any], PathArg], out_dir: PathArg) -> Dict[str, Any]:
    """Trains a Neural ODE classifier into a new run folder; returns the summary."""

def evaluate(
    run_dir: PathArg,
    *,
    methods: Optional[Sequence[str]] = None,
    steps: Optional[Sequence[int]] = None,
    tols: Optional[Sequence[float]] = None,
    batch_size: Optional[int] = None,
) -> Dict[str, Any]:
    """Evaluates a trained run under a grid of test solvers; returns the report."""

def check(
    run_dir: Optional[PathArg] = None,
    *,
    threshold: Optional[float] = None,
    batch_size: Optional[int] = None,
    weights: Optional[PathArg] = None,
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    train_method: Optional[str] = None,
    train_steps: Optional[int] = None,
    train_step_size: Optional[float] = None,
    train_tol: Optional[float] = None,
    out_dir: Optional[PathArg] = None,
    data_dir: Optional[PathArg] = None,
    test_size: Optional[int] = None,
    data_seed: int = 0,
    dtype: str = "f64",
) -> Verdict:
    """The ODE-validity verdict of a trained run, or (weights=, model=, dataset=,
    train_method=, train_steps=|train_step_size=|train_tol=, out_dir=) of a model trained
    elsewhere and saved as safetensors with PyTorch state_dict names."""

def load_data(source: Union[Dict[str, Any], PathArg]) -> Dict[str, Any]:
    """The data set of a run folder or configuration as numpy arrays."""
