//! The separable Hamiltonian network ([`SeparableHamiltonian`]) in and out of weights files.
//!
//! The network is `H_θ(q, p) = T_θ(p) + V_θ(q)` with `T_θ`, `V_θ` tanh MLPs
//! `n → m → m → 1`, and the field is its symplectic gradient on states `(p, q)` (momenta
//! first): `p' = −∇V_θ(q)`, `q' = ∇T_θ(p)` (Zhu et al., ICML 2022, §5; Hairer, Lubich,
//! Wanner, *GNI*, VI). A file holds the field only, under `field.`: the `state_dict` of
//!
//! ```python
//! import torch, torch.nn as nn
//!
//! class SeparableHamiltonian(nn.Module):
//!     """H(q, p) = T(p) + V(q); the field on y = (p, q) is (-dV/dq, dT/dp)."""
//!     def __init__(self, n, m):
//!         super().__init__()
//!         mlp = lambda: nn.Sequential(nn.Linear(n, m), nn.Tanh(), nn.Linear(m, m),
//!                                     nn.Tanh(), nn.Linear(m, 1))
//!         self.kinetic, self.potential = mlp(), mlp()   # keys kinetic.0.weight, …
//!     def forward(self, t, y):
//!         with torch.enable_grad():
//!             y = y if y.requires_grad else y.detach().requires_grad_()
//!             p, q = y.chunk(2, dim=-1)
//!             dT, = torch.autograd.grad(self.kinetic(p).sum(), p, create_graph=True)
//!             dV, = torch.autograd.grad(self.potential(q).sum(), q, create_graph=True)
//!         return torch.cat([-dV, dT], dim=-1)
//!
//! model = nn.Module(); model.field = SeparableHamiltonian(n, m)  # keys field.kinetic.0.weight, …
//! ```
//!
//! with keys `field.{kinetic,potential}.{0,2,4}.{weight,bias}` of shapes `(m, n)`, `(m)`,
//! `(m, m)`, `(m)`, `(1, m)`, `(1)`. The state dimension `2n` and the width `m` are read
//! from `field.kinetic.0.weight`; the flow is the final state of a solve (a splitting
//! method uses drift `∇T` and kick `−∇V` separately, see [`crate::solve::solve_split`]).

use super::{
    count, dims_of, gather, insert, metadata, rank_err, size_guard, tensor, Architecture,
    FileDtype, TensorFile, WeightsError,
};
use crate::field::Parameterized;
use crate::models::hamiltonian::SeparableHamiltonian;
use crate::Real;

const ARCH: Architecture = Architecture::Hamiltonian;

fn keys<T: Real>(h: &SeparableHamiltonian<T>) -> Vec<(String, Vec<usize>)> {
    h.param_views()
        .into_iter()
        .map(|v| (format!("field.{}", v.name), v.shape))
        .collect()
}

/// The network as a weights file in `dtype` (keys `field.kinetic.*`, `field.potential.*`).
pub fn export_hamiltonian<T: Real>(h: &SeparableHamiltonian<T>, dtype: FileDtype) -> TensorFile {
    let mut file = TensorFile::new(dtype);
    metadata(ARCH, &mut file);
    insert(&mut file, keys(h), h.params());
    file
}

/// The network a weights file describes (state dimension and width from
/// `field.kinetic.0.weight`); a file whose keys or shapes do not fit is refused with the
/// first bad key and both shapes.
pub fn load_hamiltonian<T: Real>(
    file: &TensorFile,
) -> Result<SeparableHamiltonian<T>, WeightsError> {
    let key = "field.kinetic.0.weight";
    let [m, n] = *dims_of(file, key, ARCH)? else {
        return Err(rank_err(
            key,
            tensor(file, key, ARCH)?,
            ARCH,
            "a Linear weight (hidden, n) on the momenta",
        ));
    };
    let one = count(&[&[m, n], &[m], &[m, m], &[m], &[1, m], &[1]]);
    size_guard(file, ARCH, one.saturating_mul(2))?;
    let dim = n.checked_mul(2).ok_or_else(|| {
        WeightsError::Invalid(format!("tensor '{key}' has {n} columns: too many"))
    })?;
    let mut h = SeparableHamiltonian::new(dim, m, 0)
        .map_err(|e| WeightsError::Invalid(format!("the {ARCH} model of '{key}': {e}")))?;
    let params = gather::<T>(file, &keys(&h), ARCH)?;
    h.params_mut().copy_from_slice(&params);
    Ok(h)
}
