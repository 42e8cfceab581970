"""odeflow: is the Neural ODE you trained a real ODE flow?

A Rust library with a thin Python shell. The headline call, :func:`check_flow`, gives the
ODE-validity verdict of Ott et al. (ICLR 2021) for a Neural ODE written in any framework
(PyTorch, JAX, numpy): trained with this solver, does the model keep its accuracy under
every more accurate solver, or does it only work with the solver it was trained with?

Functions: :func:`check_flow`, :func:`check_regression`, :func:`solve`, :func:`methods`,
:func:`imde`, and the run pipeline :func:`train`, :func:`evaluate`, :func:`check`,
:func:`load_data`. Classes: :class:`Verdict`, :class:`Solution`, :class:`SolveError`.
"""

from ._odeflow import (
    SolveError,
    Solution,
    Verdict,
    __version__,
    check,
    check_flow,
    check_regression,
    evaluate,
    imde,
    load_data,
    methods,
    solve,
    train,
)

__all__ = [
    "SolveError",
    "Solution",
    "Verdict",
    "__version__",
    "check",
    "check_flow",
    "check_regression",
    "evaluate",
    "imde",
    "load_data",
    "methods",
    "solve",
    "train",
]
