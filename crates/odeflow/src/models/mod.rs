//! Models built from the library's layers, solvers and gradient methods.

pub mod depth_field;
pub mod resnet;
pub mod tiny_resnet;
