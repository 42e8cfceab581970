//! The launch plan of a TinyResNet residual block (`odeflow::cuda::res_block_plan`; Sander,
//! Ablin, Peyré, NeurIPS 2022) executed in f64 — the convolution operations by the shared
//! executor (`exec.rs`), the batch-norm launches by the formulas of `kernels/norm.cu` —
//! against the CPU `conv_residual_block`: output, running statistics, input gradient and
//! accumulated parameter gradient, in train and eval mode. The executor refuses writes to
//! the parameters, the input and the cotangent, and reads of buffers nothing wrote; the VJP
//! starts from the tape alone.

use std::collections::HashMap;

use crate::exec::{close, conv_op, Store};
use odeflow::cuda::conv_bn_plan::ConvBnLayout;
use odeflow::cuda::norm_plan::NormOp;
use odeflow::cuda::res_block_plan::*;
use odeflow::models::resnet::conv_residual_block;
use odeflow::nn::{BatchNormOptions, Init, Layer, Sequential, Tape};

/// A convolution + batch-norm plan's buffers on the host (the residual block's or the
/// stem's, `L`).
pub(crate) struct Exec<'a, L: ConvBnLayout> {
    pub layout: &'a L,
    pub rows: usize,
    pub params: Vec<f64>,
    pub gparams: Vec<f64>,
    pub bufs: HashMap<ResBuf, Vec<f64>>,
}

fn is_param(b: ResBuf) -> bool {
    matches!(b, ResBuf::Weight(_) | ResBuf::Gamma(_) | ResBuf::Beta(_))
}

impl<L: ConvBnLayout> Store<ResBuf> for Exec<'_, L> {
    fn read(&self, b: ResBuf) -> Vec<f64> {
        let len = self.layout.len_of(b, self.rows);
        match self.layout.param_offset(b) {
            Some(o) if is_param(b) => self.params[o..o + len].to_vec(),
            Some(o) => self.gparams[o..o + len].to_vec(),
            None => {
                let v = self
                    .bufs
                    .get(&b)
                    .unwrap_or_else(|| panic!("{b:?} read before it was written"));
                assert_eq!(v.len(), len, "{b:?}");
                v.clone()
            }
        }
    }

    fn target(&self, b: ResBuf) -> Vec<f64> {
        assert!(
            !is_param(b) && !matches!(b, ResBuf::Input | ResBuf::Cotangent),
            "the plan writes the read-only {b:?}"
        );
        if self.layout.param_offset(b).is_some() || self.bufs.contains_key(&b) {
            self.read(b)
        } else {
            vec![0.0; self.layout.len_of(b, self.rows)]
        }
    }

    fn write(&mut self, b: ResBuf, v: Vec<f64>) {
        match self.layout.param_offset(b) {
            Some(o) => self.gparams[o..o + v.len()].copy_from_slice(&v),
            None => {
                self.bufs.insert(b, v);
            }
        }
    }
}

/// One batch-norm launch on any buffer naming of a block's or stem's plan, by the
/// kernels' formulas (NCHW indexing of the shape), with the batch norm's settings `opts`.
pub(crate) fn norm_step<S: Store<ResBuf>>(ex: &mut S, s: &NormStep, opts: &BatchNormOptions) {
    use ResBuf::*;
    let (c, p) = (s.shape.channels, s.shape.positions());
    let m = s.shape.per_channel() as f64;
    let ch = |j: usize| (j / p) % c;
    let l = s.bn;
    match s.launch.op {
        NormOp::Stats => {
            let x = ex.read(s.x);
            let (mut rm, mut rv) = (ex.read(RunningMean(l)), ex.read(RunningVar(l)));
            let (mut mu, mut is) = (ex.target(Mean(l)), ex.target(InvStd(l)));
            for k in 0..c {
                let vals: Vec<f64> = (0..x.len()).filter(|&j| ch(j) == k).map(|j| x[j]).collect();
                let mean = vals.iter().sum::<f64>() / m;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
                (mu[k], is[k]) = (mean, 1.0 / (var + opts.eps).sqrt());
                let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
                rm[k] = (1.0 - opts.momentum) * rm[k] + opts.momentum * mean;
                rv[k] = (1.0 - opts.momentum) * rv[k] + opts.momentum * var * unbias;
            }
            for (b, v) in [
                (Mean(l), mu),
                (InvStd(l), is),
                (RunningMean(l), rm),
                (RunningVar(l), rv),
            ] {
                ex.write(b, v);
            }
        }
        NormOp::EvalStats => {
            let rm = ex.read(RunningMean(l));
            let is = ex
                .read(RunningVar(l))
                .iter()
                .map(|v| 1.0 / (v + opts.eps).sqrt())
                .collect();
            let _ = ex.target(Mean(l));
            ex.write(Mean(l), rm);
            ex.write(InvStd(l), is);
        }
        NormOp::Normalize => {
            let (x, mu, is, g) = (
                ex.read(s.x),
                ex.read(Mean(l)),
                ex.read(InvStd(l)),
                ex.read(Gamma(l)),
            );
            let beta = if s.beta {
                ex.read(Beta(l))
            } else {
                vec![0.0; c]
            };
            let out = s.out.expect("Normalize writes out");
            let mut y = ex.target(out);
            assert_eq!((x.len(), y.len()), (s.shape.len(), s.shape.len()));
            for (j, yj) in y.iter_mut().enumerate() {
                let k = ch(j);
                *yj = g[k] * (x[j] - mu[k]) * is[k] + beta[k];
            }
            ex.write(out, y);
        }
        NormOp::BackwardSums { grad_params } => {
            let (x, gy) = (ex.read(s.x), ex.read(s.gy.expect("gy")));
            let (mu, is) = (ex.read(Mean(l)), ex.read(InvStd(l)));
            let mut sums = ex.target(Sums);
            sums.fill(0.0);
            for j in 0..x.len() {
                let k = ch(j);
                sums[k] += gy[j];
                sums[c + k] += gy[j] * (x[j] - mu[k]) * is[k];
            }
            if grad_params {
                let (mut gg, mut gb) = (ex.read(GradGamma(l)), ex.read(GradBeta(l)));
                for k in 0..c {
                    gg[k] += sums[c + k];
                    gb[k] += sums[k];
                }
                ex.write(GradGamma(l), gg);
                ex.write(GradBeta(l), gb);
            }
            ex.write(Sums, sums);
        }
        NormOp::BackwardDx { train } => {
            let (x, gy) = (ex.read(s.x), ex.read(s.gy.expect("gy")));
            let (mu, is, g) = (ex.read(Mean(l)), ex.read(InvStd(l)), ex.read(Gamma(l)));
            let sums = train.then(|| ex.read(Sums));
            let out = s.out.expect("BackwardDx writes out");
            let mut gx = ex.target(out);
            for (j, gxj) in gx.iter_mut().enumerate() {
                let k = ch(j);
                let mut v = gy[j];
                if let Some(sm) = &sums {
                    v -= sm[k] / m + (x[j] - mu[k]) * is[k] * sm[c + k] / m;
                }
                *gxj = g[k] * is[k] * v;
            }
            ex.write(out, gx);
        }
    }
}

impl<L: ConvBnLayout> Exec<'_, L> {
    pub(crate) fn run(&mut self, ops: &[ResOp]) {
        let layout = self.layout;
        for op in ops {
            match op {
                ResOp::Conv(c) => conv_op(self, c),
                ResOp::Norm(s) => norm_step(self, s, layout.bn_options()),
            }
        }
    }
}

pub(crate) fn bns(net: &mut Sequential<f64>) -> Vec<&mut odeflow::nn::BatchNorm<f64>> {
    net.layers_mut()
        .iter_mut()
        .filter_map(|l| match l {
            Layer::BatchNorm(b) => Some(b),
            _ => None,
        })
        .collect()
}

fn check(c: usize, h: usize, w: usize, rows: usize, train: bool) {
    let layout = ResBlockLayout::new(c, h, w).expect("valid");
    let mut net = conv_residual_block::<f64>(c, h, w).expect("block");
    assert_eq!(layout.param_views(), net.param_views());
    assert_eq!(layout.num_params(), net.num_params());
    let mut params = net.init_params(&Init::PyTorchDefault, 5);
    // The last batch norm starts at γ = β = 0 (Sander et al.): set them so f ≠ 0.
    for k in 0..c {
        params[layout.gamma_offset(2) + k] = 0.7 + 0.1 * k as f64;
        params[layout.beta_offset(2) + k] = 0.2 - 0.05 * k as f64;
        params[layout.beta_offset(1) + k] = 0.1 * k as f64 - 0.15;
    }
    let run_stats: Vec<RunningStats> = (1..=2)
        .map(|l| {
            let mean = (0..c).map(|k| 0.1 * (k + l) as f64 - 0.2).collect();
            let var = (0..c).map(|k| 0.5 + 0.3 * ((k * l) % 3) as f64).collect();
            (mean, var)
        })
        .collect();
    let d = layout.sample_len();
    let x: Vec<f64> = (0..rows * d)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
        .collect();
    let v: Vec<f64> = (0..rows * d)
        .map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.25)
        .collect();
    let what = format!("C = {c}, {h}×{w}, {rows} rows, train {train}");
    compare_with_cpu(
        &layout,
        &mut net,
        (params, run_stats),
        (rows, train),
        (x, v),
        (&layout.taped(), &what),
    );
}

/// The running mean and variance of one batch norm.
pub(crate) type RunningStats = (Vec<f64>, Vec<f64>);

/// One pass of `layout`'s plan in f64 against the CPU layers `net` from the parameters and
/// the running statistics (one pair per batch norm) of `state`, on `x` and the cotangent `v`
/// in train or eval mode: output, running statistics, then (from the `taped` buffers alone)
/// the input gradient and the parameter gradient accumulated onto 0.5.
pub(crate) fn compare_with_cpu<L: ConvBnLayout>(
    layout: &L,
    net: &mut Sequential<f64>,
    (params, stats): (Vec<f64>, Vec<RunningStats>),
    (rows, train): (usize, bool),
    (x, v): (Vec<f64>, Vec<f64>),
    (taped, what): (&[ResBuf], &str),
) {
    for (bn, (m, var)) in bns(net).into_iter().zip(&stats) {
        bn.set_running_stats(m, var).expect("sized");
    }
    net.set_train(train);
    let mut tape = Tape::new();
    let mut y = vec![0.0; rows * layout.output_len()];
    net.forward_taped(&params, 0.0, &x, &mut y, &mut tape)
        .expect("forward");
    let mut gx = vec![0.0; x.len()];
    let mut gp = vec![0.5; layout.num_params()];
    net.backward(&params, &tape, &v, &mut gx, &mut gp)
        .expect("backward");

    let mut ex = Exec {
        layout,
        rows,
        params,
        gparams: vec![0.5; layout.num_params()],
        bufs: HashMap::new(),
    };
    ex.bufs.insert(ResBuf::Input, x);
    for (l, (m, var)) in (1..).zip(stats) {
        ex.bufs.insert(ResBuf::RunningMean(l), m);
        ex.bufs.insert(ResBuf::RunningVar(l), var);
    }
    ex.run(&layout.forward(rows, train));
    let what = |s: &str| format!("{s} ({} {what})", layout.name());
    close(&ex.read(ResBuf::Output), &y, 1e-10, &what("output"));
    for (l, bn) in (1..).zip(bns(net)) {
        close(
            &ex.read(ResBuf::RunningMean(l)),
            bn.running_mean(),
            1e-12,
            &what("running mean"),
        );
        close(
            &ex.read(ResBuf::RunningVar(l)),
            bn.running_var(),
            1e-12,
            &what("running var"),
        );
    }
    // The VJP sees the tape only.
    ex.bufs.retain(|b, _| taped.contains(b));
    ex.bufs.insert(ResBuf::Cotangent, v);
    ex.run(&layout.backward(rows, train));
    close(&ex.read(ResBuf::GradInput), &gx, 1e-10, &what("vᵀ∂f/∂x"));
    close(&ex.gparams, &gp, 1e-10, &what("vᵀ∂f/∂θ accumulated"));
}

#[test]
fn res_block_plan_matches_the_cpu_block_in_train_and_eval_mode() {
    for (c, h, w, rows) in [(3, 5, 5, 2), (16, 10, 10, 3), (2, 1, 4, 1)] {
        for train in [true, false] {
            check(c, h, w, rows, train);
        }
    }
}

#[test]
fn res_block_plan_shapes_and_launches() {
    assert!(ResBlockLayout::new(0, 4, 4).is_err());
    let l = ResBlockLayout::new(16, 10, 10).expect("valid");
    assert_eq!(l.num_params(), 2 * (16 * 16 * 9 + 32));
    let count = |ops: &[ResOp], f: &dyn Fn(&ResOp) -> bool| ops.iter().filter(|o| f(o)).count();
    let norm = |o: &ResOp| matches!(o, ResOp::Norm(_));
    // Train: stats + normalise per batch norm; eval: running stats + normalise.
    assert_eq!(count(&l.forward(4, true), &norm), 4);
    assert_eq!(count(&l.backward(4, true), &norm), 4);
    assert_eq!(
        count(&l.backward(4, false), &norm),
        4,
        "∂γ, ∂β need the sums"
    );
    let stats = |o: &ResOp| matches!(o, ResOp::Norm(s) if s.launch.op == NormOp::Stats);
    assert_eq!(count(&l.forward(4, false), &stats), 0);
    // The channel-major tensor is one NCHW sample of N·H·W positions for the kernels.
    let s = l.bn_shape(4);
    assert_eq!((s.batch, s.channels, s.per_channel()), (1, 16, 400));
}
