//! ResNets as ODE discretisations (Sander, Ablin, Peyré, NeurIPS 2022).

pub mod linear;
