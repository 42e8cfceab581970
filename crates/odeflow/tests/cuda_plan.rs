//! The launch plans of the GPU path (`odeflow::cuda::plan`, feature `cuda`) executed with
//! reference CPU arithmetic (column-major GEMM as cuBLAS defines it, the kernels' formulas)
//! against the CPU layers, in f64. No GPU needed. The plan of a whole classifier training
//! iteration is tested in `cuda_plan/train.rs` (MLP field), `cuda_plan/train_conv.rs`
//! (convolutional fields), `cuda_plan/train_memory_free.rs` (the reversible and adjoint
//! gradients), `cuda_plan/train_regression.rs` (the MSE regression without a head) and
//! `cuda_plan/train_resnet.rs` (TinyResNet's whole iteration, SGD or Adam), the plans of the convolutional fields
//! (`simple_odenet`, `odenet`) in `cuda_plan/conv.rs`, those of batch normalisation and
//! average pooling in `cuda_plan/norm.rs`, that of a TinyResNet residual block in
//! `cuda_plan/res_block.rs`, of its stem in `cuda_plan/stem.rs`, and the whole TinyResNet's device composition in
//! `cuda_plan/tiny_resnet.rs`, the device Hamiltonian network's recipe in
//! `cuda_plan/hamiltonian.rs`; the CPU halves of the GPU agreement checks in
//! `cuda_plan/agreement.rs` (and `tiny_resnet.rs`).

#[path = "cuda_plan/agreement.rs"]
mod agreement;
#[path = "cuda_plan/conv.rs"]
mod conv;
#[path = "cuda_plan/exec.rs"]
mod exec;
#[path = "cuda_plan/hamiltonian.rs"]
mod hamiltonian;
#[path = "cuda_plan/norm.rs"]
mod norm;
#[path = "cuda_plan/res_block.rs"]
mod res_block;
#[path = "cuda_plan/stem.rs"]
mod stem;
#[path = "cuda_plan/tiny_resnet.rs"]
mod tiny_resnet;
#[path = "cuda_plan/train.rs"]
mod train;
#[path = "cuda_plan/train_conv.rs"]
mod train_conv;
#[path = "cuda_plan/train_exec.rs"]
mod train_exec;
#[path = "cuda_plan/train_memory_free.rs"]
mod train_memory_free;
#[path = "cuda_plan/train_regression.rs"]
mod train_regression;
#[path = "cuda_plan/train_resnet.rs"]
mod train_resnet;

use std::collections::HashMap;

use odeflow::cuda::plan::*;
use odeflow::field::Parameterized;
use odeflow::nn::zoo::{mlp, MlpOptions};
use odeflow::nn::{Activation, Init};
use odeflow::state::Batch;

#[test]
fn grid_covers_every_component_with_bounded_blocks() {
    assert_eq!(grid_1d(0), (1, BLOCK));
    assert_eq!(grid_1d(1), (1, BLOCK));
    assert_eq!(grid_1d(BLOCK as usize), (1, BLOCK));
    assert_eq!(grid_1d(BLOCK as usize + 1), (2, BLOCK));
    assert_eq!(grid_1d(20_000), (79, BLOCK));
    assert_eq!(grid_1d(1 << 30), (MAX_BLOCKS, BLOCK));
}

#[test]
fn lincomb_plan_skips_zeros_and_fuses_up_to_eight_terms() {
    // dopri5's last stage: six nonzero of seven coefficients → one launch.
    let c = [0.1, 0.0, 0.2, 0.3, 0.4, 0.5, 0.6];
    let p = lincomb_plan(&c);
    assert_eq!(p.len(), 1);
    assert!(p[0].from_base);
    assert_eq!(
        p[0].terms,
        vec![(0, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5), (6, 0.6)]
    );
    // Euler's first stage: nothing to add, one copy.
    let p = lincomb_plan(&[0.0, 0.0]);
    assert_eq!(
        p,
        vec![LincombLaunch {
            from_base: true,
            terms: vec![]
        }]
    );
    // Ten terms: eight from base, two continuing in place.
    let c: Vec<f32> = (1..=10).map(|i| i as f32).collect();
    let p = lincomb_plan(&c);
    assert_eq!(p.len(), 2);
    assert!(p[0].from_base && !p[1].from_base);
    assert_eq!(p[0].terms.len(), MAX_TERMS);
    assert_eq!(p[1].terms, vec![(8, 9.0), (9, 10.0)]);
}

#[test]
fn lincomb_plan_executed_equals_the_sum() {
    let n = 5;
    let base: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
    let terms: Vec<Vec<f32>> = (0..11)
        .map(|j| (0..n).map(|i| ((i * 7 + j * 3) % 5) as f32 - 2.0).collect())
        .collect();
    let coeffs: Vec<f32> = (0..11)
        .map(|j| if j % 4 == 1 { 0.0 } else { 0.25 * j as f32 })
        .collect();
    let mut out = vec![f32::NAN; n];
    for launch in lincomb_plan(&coeffs) {
        for i in 0..n {
            let mut acc = if launch.from_base { base[i] } else { out[i] };
            for &(j, c) in &launch.terms {
                acc += c * terms[j][i];
            }
            out[i] = acc;
        }
    }
    for i in 0..n {
        let want: f64 = base[i] as f64
            + coeffs
                .iter()
                .zip(&terms)
                .map(|(c, k)| *c as f64 * k[i] as f64)
                .sum::<f64>();
        assert!(
            (out[i] as f64 - want).abs() < 1e-5,
            "{i}: {} vs {want}",
            out[i]
        );
    }
}

#[test]
fn act_codes_match_the_kernel_defines() {
    let src = include_str!("../src/cuda/kernels/nn.cu");
    assert!(src.contains("#define ODEFLOW_ACT_IDENTITY 0"));
    assert!(src.contains("#define ODEFLOW_ACT_TANH 1"));
    assert!(src.contains("#define ODEFLOW_ACT_RELU 2"));
    assert_eq!(act_code(None), Some(0));
    assert_eq!(act_code(Some(Activation::Tanh)), Some(1));
    assert_eq!(act_code(Some(Activation::Relu)), Some(2));
    assert_eq!(act_code(Some(Activation::Softplus)), None);
    let state = include_str!("../src/cuda/kernels/state.cu");
    assert!(state.contains(&format!("#define ODEFLOW_MAX_TERMS {MAX_TERMS}")));
}

/// Buffers of one plan execution, by name.
struct Buffers {
    layout: MlpLayout,
    params: Vec<f64>,
    gparams: Vec<f64>,
    mats: HashMap<Mat, Vec<f64>>,
}

impl Buffers {
    fn get(&self, m: Mat) -> Vec<f64> {
        match m {
            Mat::Weight(l) => {
                let o = self.layout.weight_offset(l);
                self.params[o..o + self.layout.len_of(m, 0)].to_vec()
            }
            Mat::Bias(l) => {
                let o = self.layout.bias_offset(l);
                self.params[o..o + self.layout.len_of(m, 0)].to_vec()
            }
            Mat::GradWeight(l) => {
                let o = self.layout.weight_offset(l);
                self.gparams[o..o + self.layout.len_of(m, 0)].to_vec()
            }
            Mat::GradBias(l) => {
                let o = self.layout.bias_offset(l);
                self.gparams[o..o + self.layout.len_of(m, 0)].to_vec()
            }
            _ => self.mats[&m].clone(),
        }
    }

    fn set(&mut self, m: Mat, v: Vec<f64>) {
        match m {
            Mat::GradWeight(l) => {
                let o = self.layout.weight_offset(l);
                self.gparams[o..o + v.len()].copy_from_slice(&v);
            }
            Mat::GradBias(l) => {
                let o = self.layout.bias_offset(l);
                self.gparams[o..o + v.len()].copy_from_slice(&v);
            }
            Mat::Weight(_) | Mat::Bias(_) | Mat::Cotangent | Mat::Ones => {
                panic!("plan writes the read-only buffer {m:?}")
            }
            _ => {
                self.mats.insert(m, v);
            }
        }
    }

    fn run(&mut self, ops: &[Op], rows: usize) {
        for op in ops {
            match *op {
                Op::Gemm(g) => {
                    let a = self.get(g.a);
                    let b = self.get(g.b);
                    let mut c = if g.accumulate {
                        self.get(g.c)
                    } else {
                        vec![0.0; self.layout.len_of(g.c, rows)]
                    };
                    assert!(g.ldc >= g.m && c.len() >= g.ldc * (g.n - 1) + g.m);
                    for j in 0..g.n {
                        for i in 0..g.m {
                            let mut s = 0.0;
                            for p in 0..g.k {
                                let av = if g.transa {
                                    a[p + i * g.lda]
                                } else {
                                    a[i + p * g.lda]
                                };
                                let bv = if g.transb {
                                    b[j + p * g.ldb]
                                } else {
                                    b[p + j * g.ldb]
                                };
                                s += av * bv;
                            }
                            let dst = &mut c[i + j * g.ldc];
                            *dst = if g.accumulate { *dst + s } else { s };
                        }
                    }
                    self.set(g.c, c);
                }
                Op::BiasAct {
                    y,
                    b,
                    rows,
                    cols,
                    act,
                } => {
                    let bias = self.get(b);
                    let mut v = self.get(y);
                    assert_eq!(v.len(), rows * cols);
                    for (i, x) in v.iter_mut().enumerate() {
                        let z = *x + bias[i % cols];
                        *x = match act {
                            0 => z,
                            1 => z.tanh(),
                            2 => z.max(0.0),
                            _ => unreachable!(),
                        };
                    }
                    self.set(y, v);
                }
                Op::ActGrad { g, a, len, act } => {
                    let av = self.get(a);
                    let mut gv = self.get(g);
                    assert_eq!((gv.len(), av.len()), (len, len));
                    for (gi, ai) in gv.iter_mut().zip(&av) {
                        *gi *= match act {
                            1 => 1.0 - ai * ai,
                            2 => f64::from(u8::from(*ai > 0.0)),
                            _ => 1.0,
                        };
                    }
                    self.set(g, gv);
                }
            }
        }
    }
}

fn check_mlp_plan(dims: &[usize], activation: Activation, rows: usize) {
    let opts = MlpOptions {
        activation,
        init: Init::PyTorchDefault,
        time_input: false,
    };
    let mut net = mlp::<f64>(dims, &opts, 7).expect("valid dims");
    let layout = MlpLayout::new(dims, act_code(Some(activation)).expect("on device"));
    // The offsets are those of the CPU network's named views.
    assert_eq!(layout.num_params(), net.num_params());
    let views = net.param_views();
    for l in 1..=layout.layers() {
        let w = &views[2 * (l - 1)];
        let b = &views[2 * (l - 1) + 1];
        assert!(w.name.ends_with("weight") && b.name.ends_with("bias"));
        assert_eq!(w.offset, layout.weight_offset(l));
        assert_eq!(b.offset, layout.bias_offset(l));
        assert_eq!(w.shape, vec![dims[l], dims[l - 1]]);
    }
    let d0 = dims[0];
    let dl = dims[dims.len() - 1];
    let x: Vec<f64> = (0..rows * d0)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
        .collect();
    let v: Vec<f64> = (0..rows * dl)
        .map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.25)
        .collect();
    let xb = Batch::from_vec(rows, d0, x.clone()).expect("sized");
    let vb = Batch::from_vec(rows, dl, v.clone()).expect("sized");
    let mut tape = net.new_tape();
    let mut y = Batch::zeros(0, 0);
    net.forward_taped(0.0, &xb, &mut y, &mut tape)
        .expect("forward");
    let mut gx = Batch::zeros(0, 0);
    let mut gp = vec![0.5; net.num_params()];
    net.backward(&tape, &vb, &mut gx, &mut gp)
        .expect("backward");

    let mut bufs = Buffers {
        layout: layout.clone(),
        params: net.params().to_vec(),
        gparams: vec![0.5; net.num_params()],
        mats: HashMap::new(),
    };
    bufs.mats.insert(Mat::Input, x);
    bufs.mats.insert(Mat::Cotangent, v);
    bufs.mats.insert(Mat::Ones, vec![1.0; rows]);
    bufs.run(&layout.forward(rows), rows);
    let close = |a: &[f64], b: &[f64], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-12 * (1.0 + q.abs()),
                "{what}[{i}]: {p} vs {q}"
            );
        }
    };
    close(&bufs.get(Mat::Output), y.as_slice(), "f(y)");
    bufs.run(&layout.backward(rows), rows);
    close(&bufs.get(Mat::GradInput), gx.as_slice(), "vᵀ∂f/∂y");
    close(&bufs.gparams, &gp, "vᵀ∂f/∂θ accumulated");
}

#[test]
fn mlp_plan_matches_the_cpu_network_forward_and_vjp() {
    // The pendulum workload's field, and a deeper ReLU net with unequal widths.
    check_mlp_plan(&[2, 128, 128, 2], Activation::Tanh, 9);
    check_mlp_plan(&[3, 5, 4, 6, 3], Activation::Relu, 4);
    check_mlp_plan(&[2, 2], Activation::Tanh, 1);
}

#[test]
fn mlp_plan_never_writes_inputs_and_reads_only_what_was_written() {
    let layout = MlpLayout::new(&[4, 8, 8, 4], 1);
    let mut written: Vec<Mat> = vec![Mat::Input];
    for op in layout.forward(3) {
        if let Op::Gemm(g) = op {
            assert!(
                written.contains(&g.b),
                "forward reads {:?} before it is written",
                g.b
            );
            written.push(g.c);
        }
    }
    assert!(written.contains(&Mat::Output));
    let mut written = vec![Mat::Input, Mat::Act(1), Mat::Act(2), Mat::Cotangent];
    for op in layout.backward(3) {
        match op {
            Op::Gemm(g) => {
                assert!(g.c != Mat::Cotangent && g.c != Mat::Input);
                written.push(g.c);
            }
            Op::ActGrad { g, a, .. } => {
                assert!(written.contains(&g) && written.contains(&a));
                assert_ne!(g, Mat::Cotangent, "the cotangent is read only");
            }
            Op::BiasAct { .. } => panic!("no bias kernel in the VJP"),
        }
    }
    assert!(written.contains(&Mat::GradInput));
}
