//! The kernels of one classifier training iteration on the device (`kernels/nn.cu`), compiled
//! as host C++ and run on an emulated grid against the CPU: softmax cross-entropy with its
//! device-side mean and accuracy count against `nn::loss`, the graph-safe Adam (step count and
//! learning rate on the device, ticked by `adam_tick`) against `train::Optimizer`, the ANODE padding, the counter fill.

use libloading::Symbol;
use odeflow::nn::loss::{accuracy, softmax_cross_entropy};
use odeflow::train::{Optimizer, OptimizerConfig};
use odeflow::Batch;

use super::{data, host_kernels, GRIDS};

type SoftmaxCe =
    unsafe extern "C" fn(i64, i32, *const f32, *const i32, *mut f32, *mut u64, i32, i32) -> f64;
type SgdGraph = unsafe extern "C" fn(
    i64,
    *mut f32,
    *const f32,
    *mut f32,
    f64,
    *mut u64,
    f32,
    f32,
    i32,
    i32,
    i32,
);
type AdamGraph = unsafe extern "C" fn(
    i64,
    *mut f32,
    *const f32,
    *mut f32,
    *mut f32,
    f64,
    *mut u64,
    f64,
    f64,
    f32,
    f32,
    i32,
    i32,
);
type PadCols = unsafe extern "C" fn(i64, i32, i32, *const f32, *mut f32, i32, i32);
type FillU64 = unsafe extern "C" fn(i64, *mut u64, u64, i32, i32);
type CopyCols =
    unsafe extern "C" fn(i64, i32, i32, i32, i32, i32, i32, *const f32, *mut f32, i32, i32);

#[test]
fn softmax_cross_entropy_kernel_matches_the_cpu_loss_gradient_and_accuracy() {
    let Some(k) = host_kernels() else { return };
    let ce: Symbol<SoftmaxCe> = k.sym(b"host_softmax_ce");
    let (rows, classes) = (37, 10);
    let mut z = data(rows * classes, 9);
    // Huge logits (stability), a tie (first index wins), an all-equal row.
    z[3 * classes] = 1000.0;
    z[3 * classes + 4] = 999.0;
    z[5 * classes + 2] = 5.0;
    z[5 * classes + 7] = 5.0;
    z[6 * classes..7 * classes].fill(0.25);
    let labels: Vec<usize> = (0..rows).map(|i| (i * 7 + 3) % classes).collect();
    let logits = Batch::from_vec(rows, classes, z).expect("sized");
    let mut want_g = Batch::zeros(0, 0);
    let want = softmax_cross_entropy(&logits, &labels, &mut want_g).expect("labels in range");
    let want_acc = accuracy(&logits, &labels).expect("sized");
    assert!(want_acc > 0.0, "the data has hits: {want_acc}");
    let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
    for (grid, block) in GRIDS {
        let mut g = vec![f32::NAN; rows * classes];
        let mut correct = u64::MAX;
        // SAFETY: rows × classes logits and gradient, rows labels.
        let loss = unsafe {
            ce(
                rows as i64,
                classes as i32,
                logits.as_slice().as_ptr(),
                lab.as_ptr(),
                g.as_mut_ptr(),
                &mut correct,
                grid,
                block,
            )
        };
        assert!((loss - want).abs() <= 1e-13 * want, "{loss} vs {want}");
        // The same libm and the same operations in the same order: the same bits.
        assert_eq!(g.as_slice(), want_g.as_slice(), "∂L/∂logits");
        assert_eq!(correct as f64 / rows as f64, want_acc, "accuracy count");
    }
    // A label out of range poisons the loss instead of reading out of bounds.
    let mut bad = lab.clone();
    bad[11] = classes as i32;
    let mut g = vec![0.0f32; rows * classes];
    let mut correct = 0;
    // SAFETY: as above.
    let loss = unsafe {
        ce(
            rows as i64,
            classes as i32,
            logits.as_slice().as_ptr(),
            bad.as_ptr(),
            g.as_mut_ptr(),
            &mut correct,
            2,
            8,
        )
    };
    assert!(loss.is_nan());
    assert!(g[11 * classes..12 * classes].iter().all(|v| v.is_nan()));
    assert!(g[..11 * classes].iter().all(|v| v.is_finite()));
}

#[test]
fn graph_adam_kernel_equals_the_cpu_optimizer_bit_for_bit() {
    let Some(k) = host_kernels() else { return };
    let adam: Symbol<AdamGraph> = k.sym(b"host_adam_graph");
    let n = 1000;
    let (beta1, beta2, eps, wd) = (0.8, 0.995, 1e-6, 1e-2);
    let config = OptimizerConfig::Adam {
        lr: 1e-2,
        beta1,
        beta2,
        eps,
        weight_decay: wd,
    };
    let mut opt = Optimizer::<f32>::new(config, n).expect("valid Adam");
    let p0 = data(n, 8);
    let mut cpu = p0.clone();
    let (mut p, mut m, mut v) = (p0, vec![0.0f32; n], vec![0.0f32; n]);
    let mut t_dev = 0u64;
    for t in 1..=7u64 {
        let g = data(n, 30 + t as usize);
        // A schedule: the learning rate changes every step.
        let lr = 1e-2 / (1.0 + 0.3 * t as f64);
        opt.step(&mut cpu, &g, lr);
        let (grid, block) = GRIDS[t as usize % GRIDS.len()];
        // SAFETY: buffers of n components; one step count.
        unsafe {
            adam(
                n as i64,
                p.as_mut_ptr(),
                g.as_ptr(),
                m.as_mut_ptr(),
                v.as_mut_ptr(),
                lr,
                &mut t_dev,
                beta1,
                beta2,
                eps as f32,
                wd as f32,
                grid,
                block,
            )
        };
        assert_eq!(t_dev, t, "step count after step {t}");
        assert_eq!(p, cpu, "parameters after step {t}");
    }
    let st = opt.state();
    let mf: Vec<f64> = m.iter().map(|&x| f64::from(x)).collect();
    let vf: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    assert_eq!((st.t, mf, vf), (7, st.m.clone(), st.v.clone()), "moments");
}

#[test]
fn graph_sgd_kernel_equals_the_cpu_optimizer_bit_for_bit() {
    let Some(k) = host_kernels() else { return };
    let sgd: Symbol<SgdGraph> = k.sym(b"host_sgd_graph");
    let n = 1000;
    for (momentum, wd, nesterov) in [(0.9, 5e-4, false), (0.8, 0.0, true), (0.0, 1e-2, false)] {
        let config = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum,
            weight_decay: wd,
            nesterov,
        };
        let mut opt = Optimizer::<f32>::new(config, n).expect("valid SGD");
        let p0 = data(n, 3);
        let mut cpu = p0.clone();
        let (mut p, mut buf) = (p0.clone(), vec![0.0f32; n]);
        let mut t_dev = 0u64;
        for t in 1..=6u64 {
            let g = data(n, 40 + t as usize);
            let lr = 0.1 / (1.0 + 0.5 * t as f64);
            opt.step(&mut cpu, &g, lr);
            let (grid, block) = GRIDS[t as usize % GRIDS.len()];
            // SAFETY: buffers of n components; one step count.
            unsafe {
                sgd(
                    n as i64,
                    p.as_mut_ptr(),
                    g.as_ptr(),
                    buf.as_mut_ptr(),
                    lr,
                    &mut t_dev,
                    momentum as f32,
                    wd as f32,
                    i32::from(nesterov),
                    grid,
                    block,
                )
            };
            assert_eq!(t_dev, t, "step count after step {t}");
            assert_eq!(
                p, cpu,
                "parameters after step {t} ({momentum}, {wd}, {nesterov})"
            );
        }
        assert_ne!(p, p0, "the steps move the parameters");
        if momentum > 0.0 {
            let bf: Vec<f64> = buf.iter().map(|&x| f64::from(x)).collect();
            assert_eq!(bf, opt.state().m, "momentum buffer");
        }
    }
}

#[test]
fn padding_and_counter_fill_kernels() {
    let Some(k) = host_kernels() else { return };
    let pad: Symbol<PadCols> = k.sym(b"host_pad_cols");
    let fill: Symbol<FillU64> = k.sym(b"host_fill_u64");
    let (rows, cols, extra) = (9, 5, 3);
    let x = data(rows * cols, 2);
    for (grid, block) in GRIDS {
        let mut out = vec![f32::NAN; rows * (cols + extra)];
        // SAFETY: rows × cols source, rows × (cols + extra) destination.
        unsafe {
            pad(
                rows as i64,
                cols as i32,
                extra as i32,
                x.as_ptr(),
                out.as_mut_ptr(),
                grid,
                block,
            )
        };
        for r in 0..rows {
            let row = &out[r * (cols + extra)..(r + 1) * (cols + extra)];
            assert_eq!(&row[..cols], &x[r * cols..(r + 1) * cols]);
            assert_eq!(&row[cols..], &[0.0; 3]);
        }
        let mut c = [1u64, 2, 3];
        // SAFETY: three counters.
        unsafe { fill(2, c.as_mut_ptr(), 77, grid, block) };
        assert_eq!(c, [77, 77, 3]);
    }
}

#[test]
fn column_block_copies_extract_and_place_halves() {
    let Some(k) = host_kernels() else { return };
    let copy: Symbol<CopyCols> = k.sym(b"host_copy_cols");
    let (rows, n) = (7, 3);
    let y = data(rows * 2 * n, 5);
    for (grid, block) in GRIDS {
        // Extract the second half (positions q) of states (p, q).
        let mut q = vec![f32::NAN; rows * n];
        // SAFETY: rows × 2n source, rows × n destination.
        unsafe {
            copy(
                rows as i64,
                (2 * n) as i32,
                n as i32,
                n as i32,
                0,
                n as i32,
                1,
                y.as_ptr(),
                q.as_mut_ptr(),
                grid,
                block,
            )
        };
        for r in 0..rows {
            assert_eq!(&q[r * n..(r + 1) * n], &y[r * 2 * n + n..(r + 1) * 2 * n]);
        }
        // Place it as the second half of a full state, zeros beside; then without zeroing.
        for zero in [1, 0] {
            let mut full = vec![9.0f32; rows * 2 * n];
            // SAFETY: rows × n source, rows × 2n destination.
            unsafe {
                copy(
                    rows as i64,
                    n as i32,
                    0,
                    (2 * n) as i32,
                    n as i32,
                    n as i32,
                    zero,
                    q.as_ptr(),
                    full.as_mut_ptr(),
                    grid,
                    block,
                )
            };
            let beside = if zero == 1 { 0.0 } else { 9.0 };
            for r in 0..rows {
                let row = &full[r * 2 * n..(r + 1) * 2 * n];
                assert_eq!(&row[..n], &[beside; 3]);
                assert_eq!(&row[n..], &q[r * n..(r + 1) * n]);
            }
        }
    }
}
