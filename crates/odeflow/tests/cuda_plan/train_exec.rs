//! The reference executor of a training iteration's plan (`odeflow::cuda::train_plan`):
//! every launch in f64 — cuBLAS's column-major GEMM, the kernels' formulas, the
//! convolutional fields' operations by the shared executor (`exec.rs`) — on host buffers
//! created by their first write, so that a read of an unwritten buffer fails the test.

use std::collections::HashMap;

use odeflow::cuda::conv_plan::ConvBuf;
use odeflow::cuda::plan::Gemm;
use odeflow::cuda::res_block_plan::{ResBuf, ResOp};
use odeflow::cuda::train_plan::*;
use odeflow::train::OptimizerConfig;

/// The plan's buffers on the host, each created by its first write.
pub(crate) struct Exec<'p> {
    plan: &'p TrainPlan,
    opt: PlanOptimizer,
    pub(crate) bufs: HashMap<Buf, Vec<f64>>,
}

impl<'p> Exec<'p> {
    /// The state of a fresh run with the parameters `params` and Adam's default settings
    /// (`OptimizerConfig::adam`): zero moments and step count, and the plan's constant
    /// buffers (ones, zeros). Every other buffer is created by its first write, or inserted
    /// by the test (the batch, the learning rate).
    pub(crate) fn at_start(plan: &'p TrainPlan, params: &[f64]) -> Self {
        Self::at_start_with(plan, params, &OptimizerConfig::adam(1e-3))
    }

    /// [`Exec::at_start`] with the update of `opt` (Adam or SGD with momentum).
    pub(crate) fn at_start_with(
        plan: &'p TrainPlan,
        params: &[f64],
        opt: &OptimizerConfig,
    ) -> Self {
        let n = plan.num_params();
        assert_eq!(params.len(), n);
        let (rows, d) = (plan.shape.rows, plan.shape.field.state_len());
        let bufs = HashMap::from([
            (Buf::Params, params.to_vec()),
            (Buf::AdamM, vec![0.0; n]),
            (Buf::AdamV, vec![0.0; n]),
            (Buf::AdamStep, vec![0.0]),
            (Buf::Ones, vec![1.0; rows]),
            (Buf::Zeros, vec![0.0; rows * d]),
        ]);
        Self {
            plan,
            opt: PlanOptimizer::of(opt),
            bufs,
        }
    }

    pub(crate) fn get(&self, b: Buf) -> &Vec<f64> {
        self.bufs
            .get(&b)
            .unwrap_or_else(|| panic!("{b:?} read before it was written"))
    }

    fn slice(&self, a: At, extent: usize) -> Vec<f64> {
        let v = self.get(a.buf);
        assert!(
            a.offset + extent <= v.len(),
            "{a:?} + {extent} out of bounds"
        );
        v[a.offset..a.offset + extent].to_vec()
    }

    fn write(&mut self, a: At, v: &[f64]) {
        let len = self.plan.len_of(a.buf);
        let buf = self.bufs.entry(a.buf).or_insert_with(|| vec![0.0; len]);
        assert!(a.offset + v.len() <= buf.len(), "{a:?} out of bounds");
        buf[a.offset..a.offset + v.len()].copy_from_slice(v);
    }

    fn gemm(&mut self, g: &Gemm, a: At, b: At, c: At) {
        let ext = |ld: usize, rows: usize, cols: usize| ld * (cols - 1) + rows;
        let (ar, ac) = if g.transa { (g.k, g.m) } else { (g.m, g.k) };
        let (br, bc) = if g.transb { (g.n, g.k) } else { (g.k, g.n) };
        assert!(g.lda >= ar && g.ldb >= br && g.ldc >= g.m, "{g:?}");
        let av = self.slice(a, ext(g.lda, ar, ac));
        let bv = self.slice(b, ext(g.ldb, br, bc));
        let clen = ext(g.ldc, g.m, g.n);
        let cbuf = self.bufs.entry(c.buf).or_insert_with(|| {
            assert!(!g.accumulate, "{c:?} accumulated before it was written");
            vec![0.0; self.plan.len_of(c.buf)]
        });
        assert!(c.offset + clen <= cbuf.len(), "{c:?} out of bounds");
        for j in 0..g.n {
            for i in 0..g.m {
                let s: f64 = (0..g.k)
                    .map(|p| {
                        let x = if g.transa {
                            av[p + i * g.lda]
                        } else {
                            av[i + p * g.lda]
                        };
                        let y = if g.transb {
                            bv[j + p * g.ldb]
                        } else {
                            bv[p + j * g.ldb]
                        };
                        x * y
                    })
                    .sum();
                let dst = &mut cbuf[c.offset + i + j * g.ldc];
                *dst = if g.accumulate { *dst + s } else { s };
            }
        }
    }

    pub(crate) fn run(&mut self) {
        let plan = self.plan;
        for l in &plan.launches {
            match l {
                Launch::Zero(b) => {
                    self.bufs.insert(*b, vec![0.0; plan.len_of(*b)]);
                }
                Launch::Fill { buf, len, value } => {
                    self.bufs.insert(*buf, vec![*value as f64; *len]);
                }
                Launch::Pad {
                    rows,
                    cols,
                    extra,
                    src,
                    dst,
                } => {
                    let x = self.get(*src).clone();
                    let mut out = Vec::new();
                    for r in 0..*rows {
                        out.extend_from_slice(&x[r * cols..(r + 1) * cols]);
                        out.extend(std::iter::repeat_n(0.0, *extra));
                    }
                    self.bufs.insert(*dst, out);
                }
                Launch::Lincomb {
                    len,
                    out,
                    base,
                    terms,
                } => {
                    // On the first `len` components (the adjoint's stage gradient is the
                    // field's part of ∂θ); every operand must hold them.
                    assert!(terms.len() <= odeflow::cuda::plan::MAX_TERMS);
                    let mut acc = self.get(*base)[..*len].to_vec();
                    for (t, c) in terms {
                        let tv = self.get(*t);
                        assert!(tv.len() >= *len, "{t:?} shorter than {len}");
                        for (a, k) in acc.iter_mut().zip(tv) {
                            *a += *c as f64 * k;
                        }
                    }
                    self.write((*out).into(), &acc);
                }
                Launch::Gemm { g, a, b, c } => self.gemm(g, *a, *b, *c),
                Launch::BiasAct {
                    y,
                    b,
                    rows,
                    cols,
                    act,
                } => {
                    let bias = self.slice(*b, *cols);
                    let v = self.bufs.get_mut(&y.buf).expect("GEMM output");
                    for (i, x) in v[y.offset..y.offset + rows * cols].iter_mut().enumerate() {
                        let z = *x + bias[i % cols];
                        *x = match act {
                            0 => z,
                            1 => z.tanh(),
                            2 => z.max(0.0),
                            _ => unreachable!(),
                        };
                    }
                }
                Launch::ActGrad { g, a, len, act } => {
                    let av = self.slice(*a, *len);
                    let v = self.bufs.get_mut(&g.buf).expect("written gradient");
                    for (gi, ai) in v[g.offset..g.offset + len].iter_mut().zip(&av) {
                        *gi *= match act {
                            1 => 1.0 - ai * ai,
                            2 => f64::from(u8::from(*ai > 0.0)),
                            _ => 1.0,
                        };
                    }
                }
                Launch::FirstNonFinite { x, len, slot } => {
                    let first = self.get(*x).iter().position(|v| !v.is_finite());
                    let f = self.bufs.get_mut(&Buf::FirstNonFinite).expect("reset");
                    assert_eq!(f[*slot], *len as f64, "slot {slot} was reset");
                    f[*slot] = first.unwrap_or(*len) as f64;
                }
                Launch::SoftmaxCe { rows, classes } => {
                    let z = self.get(Buf::Logits).clone();
                    let labels = self.get(Buf::Labels).clone();
                    let (mut loss, mut hits) = (0.0, 0.0);
                    let mut g = vec![0.0; rows * classes];
                    for r in 0..*rows {
                        let row = &z[r * classes..(r + 1) * classes];
                        let y = labels[r] as usize;
                        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
                        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                        loss += (lse - row[y]) / *rows as f64;
                        let best =
                            (0..*classes).fold(0, |b, k| if row[k] > row[b] { k } else { b });
                        hits += f64::from(u8::from(best == y));
                        for k in 0..*classes {
                            let hot = f64::from(u8::from(k == y));
                            g[r * classes + k] = ((row[k] - lse).exp() - hot) / *rows as f64;
                        }
                    }
                    *self.bufs.get_mut(&Buf::Loss).expect("zeroed") = vec![loss];
                    *self.bufs.get_mut(&Buf::Correct).expect("zeroed") = vec![hits];
                    self.bufs.insert(Buf::GradLogits, g);
                }
                Launch::Res { op, piece } => {
                    let mut p = PieceStore {
                        ex: self,
                        piece: *piece,
                    };
                    match op {
                        ResOp::Conv(c) => crate::exec::conv_op(&mut p, c),
                        ResOp::Norm(st) => {
                            let bn = *plan.res_bn(*piece);
                            crate::res_block::norm_step(&mut p, st, &bn);
                        }
                    }
                }
                Launch::Pool { forward } => self.pool(*forward),
                Launch::Conv { op, n, i } => {
                    let mut stage = Stage {
                        ex: self,
                        n: *n,
                        i: *i,
                    };
                    crate::exec::conv_op(&mut stage, op);
                }
                Launch::Mse { x, len } => {
                    let (p, t) = (self.get(*x).clone(), self.get(Buf::Target).clone());
                    assert_eq!((p.len(), t.len()), (*len, *len));
                    let n = *len as f64;
                    let g: Vec<f64> = p.iter().zip(&t).map(|(a, b)| 2.0 * (a - b) / n).collect();
                    let l: f64 = p.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n;
                    self.bufs.get_mut(&Buf::Loss).expect("zeroed")[0] += l;
                    self.bufs.insert(Buf::Lambda, g);
                }
                Launch::AdamTick => {
                    self.bufs.get_mut(&Buf::AdamStep).expect("step count")[0] += 1.0;
                }
                Launch::Adam { n } => {
                    let h = match self.opt {
                        PlanOptimizer::Adam(h) => h,
                        PlanOptimizer::Sgd(h) => {
                            self.sgd(*n, h);
                            continue;
                        }
                    };
                    let t = self.get(Buf::AdamStep)[0];
                    let lr = self.get(Buf::Lr)[0];
                    let step = lr / (1.0 - h.beta1.powi(t as i32));
                    let c2s = (1.0 - h.beta2.powi(t as i32)).sqrt();
                    let g = self.get(Buf::GradParams).clone();
                    let mut p = self.get(Buf::Params).clone();
                    let mut m = self.get(Buf::AdamM).clone();
                    let mut v = self.get(Buf::AdamV).clone();
                    assert_eq!((p.len(), g.len()), (*n, *n));
                    let wd = h.weight_decay as f64;
                    for i in 0..*n {
                        let gi = g[i] + wd * p[i];
                        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * gi;
                        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * gi * gi;
                        p[i] -= step * m[i] / (v[i].sqrt() / c2s + h.eps as f64);
                    }
                    for (b, val) in [(Buf::Params, p), (Buf::AdamM, m), (Buf::AdamV, v)] {
                        self.bufs.insert(b, val);
                    }
                }
            }
        }
    }
}

impl Exec<'_> {
    /// SGD with momentum as `sgd_graph_f32` (and `train::Optimizer`) in f64.
    fn sgd(&mut self, n: usize, h: SgdHyper) {
        let t = self.get(Buf::AdamStep)[0];
        let lr = self.get(Buf::Lr)[0];
        let g = self.get(Buf::GradParams).clone();
        let mut p = self.get(Buf::Params).clone();
        let mut m = self.get(Buf::AdamM).clone();
        assert_eq!((p.len(), g.len()), (n, n));
        let (mu, wd) = (f64::from(h.momentum), f64::from(h.weight_decay));
        for i in 0..n {
            let mut gi = g[i] + wd * p[i];
            if mu > 0.0 {
                m[i] = if t == 1.0 { gi } else { mu * m[i] + gi };
                gi = if h.nesterov { gi + mu * m[i] } else { m[i] };
            }
            p[i] -= lr * gi;
        }
        self.bufs.insert(Buf::Params, p);
        self.bufs.insert(Buf::AdamM, m);
    }

    /// TinyResNet's `k × k` average pool of the final state (NCHW), or its VJP.
    fn pool(&mut self, forward: bool) {
        let (s, k) = self.plan.pool_shape().expect("a TinyResNet plan");
        let (c, h, w) = (s.channels, s.height, s.width);
        let (ho, wo) = (h / k, w / k);
        let inv = 1.0 / (k * k) as f64;
        let pix = |n: usize, ch: usize, i: usize, j: usize| ((n * c + ch) * h + i) * w + j;
        let out = |n: usize, ch: usize, i: usize, j: usize| ((n * c + ch) * ho + i) * wo + j;
        if forward {
            let x = self.get(self.plan.final_state()).clone();
            let mut y = vec![0.0; s.batch * c * ho * wo];
            for n in 0..s.batch {
                for ch in 0..c {
                    for i in 0..h / k * k {
                        for j in 0..w / k * k {
                            y[out(n, ch, i / k, j / k)] += inv * x[pix(n, ch, i, j)];
                        }
                    }
                }
            }
            self.write(Buf::Pooled.into(), &y);
        } else {
            let gy = self.get(Buf::GradPooled).clone();
            let mut gx = vec![0.0; s.len()];
            for n in 0..s.batch {
                for ch in 0..c {
                    for i in 0..h / k * k {
                        for j in 0..w / k * k {
                            gx[pix(n, ch, i, j)] = inv * gy[out(n, ch, i / k, j / k)];
                        }
                    }
                }
            }
            self.bufs.insert(Buf::Lambda, gx);
        }
    }
}

/// A TinyResNet convolution + batch-norm plan's buffers (the stem's, or a body layer's at
/// one evaluation), as the plan binds them.
struct PieceStore<'e, 'p> {
    ex: &'e mut Exec<'p>,
    piece: Piece,
}

impl crate::exec::Store<ResBuf> for PieceStore<'_, '_> {
    fn read(&self, b: ResBuf) -> Vec<f64> {
        let at = self.ex.plan.res_at(b, self.piece);
        self.ex.slice(at, self.ex.plan.res_len(b, self.piece))
    }

    fn target(&self, b: ResBuf) -> Vec<f64> {
        let at = self.ex.plan.res_at(b, self.piece);
        assert!(
            !matches!(at.buf, Buf::Params | Buf::Input | Buf::Lambda),
            "the plan writes the read-only {b:?} ({at:?})"
        );
        let len = self.ex.plan.res_len(b, self.piece);
        if self.ex.bufs.contains_key(&at.buf) {
            self.ex.slice(at, len)
        } else {
            vec![0.0; len]
        }
    }

    fn write(&mut self, b: ResBuf, v: Vec<f64>) {
        let at = self.ex.plan.res_at(b, self.piece);
        assert!(
            !matches!(at.buf, Buf::Params | Buf::Input),
            "the plan writes its read-only {b:?} ({at:?})"
        );
        self.ex.write(at, &v);
    }
}

/// The convolutional field's buffers at stage `i` of step `n`, as the plan binds them.
struct Stage<'e, 'p> {
    ex: &'e mut Exec<'p>,
    n: usize,
    i: usize,
}

impl crate::exec::Store<ConvBuf> for Stage<'_, '_> {
    fn read(&self, b: ConvBuf) -> Vec<f64> {
        let at = self.ex.plan.conv_at(b, self.n, self.i);
        self.ex.slice(at, self.ex.plan.conv_len(b))
    }

    fn target(&self, b: ConvBuf) -> Vec<f64> {
        let at = self.ex.plan.conv_at(b, self.n, self.i);
        let len = self.ex.plan.conv_len(b);
        if self.ex.bufs.contains_key(&at.buf) {
            self.ex.slice(at, len)
        } else {
            vec![0.0; len]
        }
    }

    fn write(&mut self, b: ConvBuf, v: Vec<f64>) {
        let at = self.ex.plan.conv_at(b, self.n, self.i);
        assert!(
            !matches!(b, ConvBuf::Weight(_) | ConvBuf::Bias(_)),
            "the field writes its parameter {b:?}"
        );
        self.ex.write(at, &v);
    }
}
