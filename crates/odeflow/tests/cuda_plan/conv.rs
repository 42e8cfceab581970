//! The launch plan of the convolutional fields (`odeflow::cuda::conv_plan`) executed with
//! reference arithmetic in f64 (cuBLAS's column-major GEMM; im2col, a scatter-style col2im
//! and the other kernels by their formulas) against the CPU networks of `nn::zoo`
//! (`simple_odenet`, `odenet`) and hand-built variants: forward, input gradient and
//! accumulated parameter gradient to 1e-12. The executor checks every buffer against the
//! size the plan declares (what the device allocates), refuses writes to the parameters, the
//! state and the cotangent, and refuses reads of buffers nothing wrote — the VJP starts from
//! the tape alone.

use std::collections::HashMap;

use crate::exec::{conv_op, Store};
use odeflow::cuda::conv_plan::*;
use odeflow::field::Parameterized;
use odeflow::nn::zoo::{odenet, simple_odenet};
use odeflow::nn::{Activation, Init, NeuralField, SequentialBuilder, Shape};
use odeflow::state::Batch;

struct Exec<'a> {
    layout: &'a ConvFieldLayout,
    rows: usize,
    params: Vec<f64>,
    gparams: Vec<f64>,
    bufs: HashMap<ConvBuf, Vec<f64>>,
}

impl Store<ConvBuf> for Exec<'_> {
    fn read(&self, b: ConvBuf) -> Vec<f64> {
        let len = self.layout.len_of(b, self.rows);
        match (b, self.layout.param_offset(b)) {
            (ConvBuf::Weight(_) | ConvBuf::Bias(_), Some(o)) => self.params[o..o + len].to_vec(),
            (_, Some(o)) => self.gparams[o..o + len].to_vec(),
            _ => {
                let v = self
                    .bufs
                    .get(&b)
                    .unwrap_or_else(|| panic!("{b:?} read before it was written"));
                assert_eq!(v.len(), len, "{b:?}");
                v.clone()
            }
        }
    }

    /// The current contents of `b` for an update (zeros of the planned size when new).
    fn target(&self, b: ConvBuf) -> Vec<f64> {
        use ConvBuf::*;
        assert!(
            !matches!(b, Weight(_) | Bias(_) | Input | Cotangent),
            "the plan writes the read-only {b:?}"
        );
        if self.layout.param_offset(b).is_some() || self.bufs.contains_key(&b) {
            self.read(b)
        } else {
            vec![0.0; self.layout.len_of(b, self.rows)]
        }
    }

    fn write(&mut self, b: ConvBuf, v: Vec<f64>) {
        match self.layout.param_offset(b) {
            Some(o) => self.gparams[o..o + v.len()].copy_from_slice(&v),
            None => {
                self.bufs.insert(b, v);
            }
        }
    }
}

impl Exec<'_> {
    fn run(&mut self, ops: &[ConvOp]) {
        for op in ops {
            conv_op(self, op);
        }
    }
}

fn close(a: &[f64], b: &[f64], what: &str) {
    crate::exec::close(a, b, 1e-12, what);
}

/// Runs the plan of `layout` for `rows` samples against the CPU field `cpu`.
fn check(layout: &ConvFieldLayout, mut cpu: NeuralField<f64>, rows: usize) {
    // The parameters are the CPU network's, by name, offset and shape.
    assert_eq!(layout.param_views(), cpu.param_views());
    assert_eq!(layout.num_params(), cpu.num_params());
    let d = layout.sample_len();
    assert_eq!(cpu.shape().len(), d);
    let x: Vec<f64> = (0..rows * d)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
        .collect();
    let v: Vec<f64> = (0..rows * d)
        .map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.25)
        .collect();
    let xb = Batch::from_vec(rows, d, x.clone()).expect("sized");
    let vb = Batch::from_vec(rows, d, v.clone()).expect("sized");
    let net = cpu.network_mut();
    let mut tape = net.new_tape();
    let mut y = Batch::zeros(0, 0);
    net.forward_taped(0.0, &xb, &mut y, &mut tape)
        .expect("forward");
    let mut gx = Batch::zeros(0, 0);
    let mut gp = vec![0.5; layout.num_params()];
    net.backward(&tape, &vb, &mut gx, &mut gp)
        .expect("backward");

    let mut ex = Exec {
        layout,
        rows,
        params: cpu.params().to_vec(),
        gparams: vec![0.5; layout.num_params()],
        bufs: HashMap::new(),
    };
    ex.bufs.insert(ConvBuf::Input, x);
    ex.run(&layout.forward(rows));
    close(&ex.read(ConvBuf::Output), y.as_slice(), "f(y)");
    // The VJP sees the tape only: the channel-major input and the two activations.
    let keep = [layout.taped_input(), ConvBuf::Act(1), ConvBuf::Act(2)];
    ex.bufs.retain(|b, _| keep.contains(b));
    ex.bufs.insert(ConvBuf::Cotangent, v);
    ex.run(&layout.backward(rows));
    close(&ex.read(ConvBuf::GradInput), gx.as_slice(), "vᵀ∂f/∂y");
    close(&ex.gparams, &gp, "vᵀ∂f/∂θ accumulated");
}

#[test]
fn simple_odenet_plan_matches_the_cpu_field() {
    // Ott et al.'s 1-D toy problems have d = 2; longer sequences exercise the padding.
    for (c, d, rows) in [(4, 2, 3), (8, 10, 2), (3, 1, 1)] {
        let layout = ConvFieldLayout::simple_odenet(c, d).expect("valid");
        check(&layout, simple_odenet::<f64>(c, d, 11).expect("zoo"), rows);
    }
}

#[test]
fn odenet_plan_matches_the_cpu_field_on_mnist_and_multichannel_images() {
    for (c_in, h, w, c, rows) in [
        (1, 28, 28, 3, 2),
        (1, 28, 28, 2, 3),
        (3, 5, 4, 4, 3),
        (2, 6, 6, 5, 1),
    ] {
        let layout = ConvFieldLayout::odenet(c_in, h, w, c).expect("valid");
        check(&layout, odenet::<f64>(c_in, h, w, c, 3).expect("zoo"), rows);
    }
}

#[test]
fn other_middle_kernels_plan_correctly() {
    // 5 × 5 (padding 2), 1 × 1 (no im2col), and a 1-D kernel 5.
    for (c_in, h, w, c, k, one_d) in [
        (2, 6, 5, 3, 5, false),
        (2, 4, 4, 3, 1, false),
        (1, 1, 9, 4, 5, true),
    ] {
        let p = k / 2;
        let (kern, pad) = if one_d {
            ((1, k), (0, p))
        } else {
            ((k, k), (p, p))
        };
        let layout = ConvFieldLayout::new((c_in, h, w), c, kern, pad, one_d).expect("valid");
        let b = if one_d {
            SequentialBuilder::new(Shape::seq(c_in, w))
                .conv1d(c, 1, 1, 0)
                .activation(Activation::Relu)
                .conv1d(c, k, 1, p)
                .activation(Activation::Relu)
                .conv1d(c_in, 1, 1, 0)
        } else {
            SequentialBuilder::new(Shape::image(c_in, h, w))
                .conv2d(c, 1, 1, 0)
                .activation(Activation::Relu)
                .conv2d(c, k, 1, p)
                .activation(Activation::Relu)
                .conv2d(c_in, 1, 1, 0)
        };
        let cpu = NeuralField::from_sequential(b.build().expect("valid"), &Init::PyTorchDefault, 9)
            .expect("a field");
        check(&layout, cpu, 2);
        let im2col = layout
            .forward(2)
            .iter()
            .any(|op| matches!(op, ConvOp::Im2col { .. }));
        assert_eq!(im2col, k > 1, "im2col only for a kernel wider than 1");
    }
}

#[test]
fn conv_plans_refuse_fields_that_change_the_size() {
    assert!(ConvFieldLayout::new((1, 4, 4), 2, (3, 3), (0, 0), false).is_err());
    assert!(ConvFieldLayout::new((1, 4, 4), 2, (2, 2), (1, 1), false).is_err());
    assert!(ConvFieldLayout::new((1, 2, 4), 2, (1, 3), (0, 1), true).is_err());
    assert!(ConvFieldLayout::odenet(0, 4, 4, 2).is_err());
    assert!(ConvFieldLayout::simple_odenet(0, 4).is_err());
    // 1×1 convolutions never go through im2col; the state is swapped only for c_in > 1.
    let ops = ConvFieldLayout::odenet(1, 28, 28, 4)
        .expect("valid")
        .forward(2);
    let im2cols = ops
        .iter()
        .filter(|o| matches!(o, ConvOp::Im2col { .. }))
        .count();
    let swaps = ops
        .iter()
        .filter(|o| matches!(o, ConvOp::SwapOuter { .. }))
        .count();
    assert_eq!((im2cols, swaps), (1, 0));
    let ops = ConvFieldLayout::odenet(3, 8, 8, 4)
        .expect("valid")
        .backward(2);
    let swaps = ops
        .iter()
        .filter(|o| matches!(o, ConvOp::SwapOuter { .. }))
        .count();
    assert_eq!(swaps, 2, "cotangent in, input gradient out");
}

#[test]
fn conv_shape_matches_the_kernel_struct_and_the_activations_match_nn_cu() {
    // ConvShape is passed by value: two long longs, then twelve ints (64 bytes).
    assert_eq!(std::mem::size_of::<ConvShape>(), 64);
    let conv = include_str!("../../src/cuda/kernels/conv.cu");
    assert!(conv.contains(
        "struct ConvShape {\n    long long sn, sc;\n    int n, c, h, w;\n    \
         int kh, kw, sh, sw, ph, pw;\n    int ho, wo;\n};"
    ));
    let nn = include_str!("../../src/cuda/kernels/nn.cu");
    let block = |s: &'static str| {
        let b = s.find("// BEGIN ODEFLOW ACTIVATIONS").expect("begin");
        let e = s.find("// END ODEFLOW ACTIVATIONS").expect("end");
        &s[b..e]
    };
    assert_eq!(block(conv), block(nn), "the activation helpers differ");
    let s = ConvShape::nchw(2, 3, (5, 7), (3, 3), (2, 1), (1, 0)).expect("fits");
    assert_eq!((s.ho, s.wo, s.sn, s.sc), (3, 5, 105, 35));
    let t = s.channel_major();
    assert_eq!((t.sn, t.sc), (35, 70));
    assert_eq!(s.col_len(), 3 * 9 * 2 * 15);
    assert!(ConvShape::nchw(1, 1, (2, 2), (5, 5), (1, 1), (1, 1)).is_none());
    assert_eq!(chunks_for(0), 1);
    assert_eq!(chunks_for(SUM_CHUNK + 1), 2);
    assert_eq!(chunks_for(usize::MAX / 2), MAX_CHUNKS);
}
