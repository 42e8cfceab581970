//! Fully connected layer `y = W x + b` on flat samples.
//!
//! With the batch as the rows of `X` (`N × in`) and PyTorch's weight layout
//! `W: out × in`: forward `Y = X Wᵀ + 1bᵀ`; backward `∂X = ∂Y W`, `∂W += ∂Yᵀ X`,
//! `∂b += ∂Yᵀ 1`. Three GEMMs and a column sum, no copies.

use rand_chacha::ChaCha8Rng;

use super::gemm::{matmul, MatMut, MatRef};
use super::{
    add_column_sums, broadcast_rows, check_len, Init, Module, NnError, Pass, Saved, Shape,
};
use crate::real::Real;

/// `Linear(in → out)`: weight `[out, in]`, optional bias `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
    bias: bool,
}

impl Linear {
    /// A linear layer `in_features → out_features` (both positive).
    pub fn new(in_features: usize, out_features: usize, bias: bool) -> Result<Self, NnError> {
        if in_features == 0 {
            return Err(NnError::invalid("in_features", 0, "must be positive"));
        }
        if out_features == 0 {
            return Err(NnError::invalid("out_features", 0, "must be positive"));
        }
        Ok(Self {
            in_features,
            out_features,
            bias,
        })
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Whether the layer has a bias.
    pub fn has_bias(&self) -> bool {
        self.bias
    }
}

const INTERNAL: &str = "linear: view sizes are fixed by the checked layer shapes";

impl<T: Real> Module<T> for Linear {
    fn kind(&self) -> String {
        "Linear".into()
    }
    fn in_shape(&self) -> Shape {
        Shape::Flat(self.in_features)
    }
    fn out_shape(&self) -> Shape {
        Shape::Flat(self.out_features)
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut v = vec![("weight", vec![self.out_features, self.in_features])];
        if self.bias {
            v.push(("bias", vec![self.out_features]));
        }
        v
    }
    fn init_params(&self, init: &Init, rng: &mut ChaCha8Rng, params: &mut [T]) {
        let (w, b) = params.split_at_mut(self.out_features * self.in_features);
        init.fill_weight(rng, self.out_features, self.in_features, w);
        init.fill_bias(rng, self.in_features, b);
    }
    fn forward(&mut self, pass: &Pass<T>, params: &[T], x: &[T], y: &mut [T], _: &mut [T]) {
        let (n, i, o) = (pass.batch, self.in_features, self.out_features);
        check_len("linear input", x.len(), n * i);
        check_len("linear output", y.len(), n * o);
        let (w, b) = params.split_at(o * i);
        let beta = if self.bias {
            broadcast_rows(y, b);
            T::one()
        } else {
            T::zero()
        };
        matmul(
            MatMut::row_major(y, n, o).expect(INTERNAL),
            T::one(),
            MatRef::row_major(x, n, i).expect(INTERNAL),
            MatRef::row_major(w, o, i).expect(INTERNAL).t(),
            beta,
            &pass.gemm,
        )
        .expect(INTERNAL);
    }
    fn backward(
        &mut self,
        pass: &Pass<T>,
        params: &[T],
        saved: Saved<'_, T>,
        gy: &[T],
        gx: &mut [T],
        gparams: &mut [T],
    ) {
        let (n, i, o) = (pass.batch, self.in_features, self.out_features);
        check_len("linear output gradient", gy.len(), n * o);
        let w = &params[..o * i];
        let gyv = MatRef::row_major(gy, n, o).expect(INTERNAL);
        matmul(
            MatMut::row_major(gx, n, i).expect(INTERNAL),
            T::one(),
            gyv,
            MatRef::row_major(w, o, i).expect(INTERNAL),
            T::zero(),
            &pass.gemm,
        )
        .expect(INTERNAL);
        let (gw, gb) = gparams.split_at_mut(o * i);
        matmul(
            MatMut::row_major(gw, o, i).expect(INTERNAL),
            T::one(),
            gyv.t(),
            MatRef::row_major(saved.x, n, i).expect(INTERNAL),
            T::one(),
            &pass.gemm,
        )
        .expect(INTERNAL);
        if self.bias {
            add_column_sums(gy, o, gb);
        }
    }
}
