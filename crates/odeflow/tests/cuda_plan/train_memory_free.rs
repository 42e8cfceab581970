//! The captured training iteration with the memory-free gradients (`reversible`, Sander et
//! al.; `adjoint`, Chen et al.): the plan executed with reference arithmetic against the CPU
//! classifier trained with the same generic gradient method, and the property that makes
//! them memory-free on the device — their buffers do not grow with the number of steps.

use odeflow::cuda::train_plan::{Buf, Launch, TrainPlan};
use odeflow::models::FieldSpec;
use odeflow::nn::Activation;
use odeflow::solve::SolveOptions;

use crate::train::{check, inputs_read_only, small_plan as plan};

fn steps(n: usize) -> SolveOptions {
    SolveOptions::steps(0.0, 1.0, n)
}

#[test]
fn reversible_iteration_matches_the_cpu_reversible_gradient() {
    check(
        "euler",
        "reversible",
        &[5, 16, 5],
        Activation::Tanh,
        5,
        steps(3),
    );
    // Heun: the reverse step's stages in the other order; ANODE zeros and ReLU.
    check(
        "heun",
        "reversible",
        &[6, 7, 8, 6],
        Activation::Relu,
        4,
        steps(3),
    );
    check(
        "rk4",
        "reversible",
        &[4, 9, 4],
        Activation::Tanh,
        4,
        steps(2),
    );
    // dopri5's FSAL stage is skipped in the reverse and recomputed steps as well.
    check(
        "dopri5",
        "reversible",
        &[3, 9, 3],
        Activation::Tanh,
        3,
        steps(2),
    );
}

#[test]
fn adjoint_iteration_matches_the_cpu_continuous_adjoint() {
    check(
        "euler",
        "adjoint",
        &[5, 16, 5],
        Activation::Tanh,
        5,
        steps(3),
    );
    check(
        "midpoint",
        "adjoint",
        &[6, 7, 8, 6],
        Activation::Relu,
        4,
        steps(2),
    );
    check("rk4", "adjoint", &[4, 9, 4], Activation::Tanh, 4, steps(2));
    // A step size that does not divide the interval: the backward grid (1, 0.7, 0.4, 0.1, 0)
    // is not the forward one (0, 0.3, 0.6, 0.9, 1) reversed, and the CPU steps the former.
    check(
        "heun",
        "adjoint",
        &[4, 6, 4],
        Activation::Tanh,
        4,
        SolveOptions::fixed(0.0, 1.0, 0.3),
    );
}

#[test]
fn memory_free_iterations_of_convolutional_fields_match_the_cpu() {
    use crate::train_conv::check;
    check(
        FieldSpec::SimpleOdenet { channels: 3 },
        &[1, 6],
        0,
        ("heun", "reversible"),
        2,
    );
    check(
        FieldSpec::Odenet { channels: 3 },
        &[1, 3, 4],
        1,
        ("midpoint", "adjoint"),
        2,
    );
    check(
        FieldSpec::Odenet { channels: 2 },
        &[1, 3, 3],
        0,
        ("euler", "reversible"),
        3,
    );
}

/// Every buffer but the finiteness slots has the same size for 2 and 16 steps, and the
/// plan holds two states; `backprop`'s tapes grow with the steps.
#[test]
fn memory_free_plans_hold_two_states_and_one_steps_tapes_whatever_the_steps() {
    let footprint = |p: &TrainPlan| -> Vec<(Buf, usize)> {
        p.buffers()
            .into_iter()
            .filter(|b| *b != Buf::FirstNonFinite)
            .map(|b| (b, p.len_of(b)))
            .collect()
    };
    for grad in ["reversible", "adjoint"] {
        let (short, long) = (plan(grad, "rk4", 2), plan(grad, "rk4", 16));
        assert_eq!(footprint(&short), footprint(&long), "{grad}");
        let states: Vec<Buf> = long
            .buffers()
            .into_iter()
            .filter(|b| matches!(b, Buf::State(_)))
            .collect();
        assert_eq!(states, vec![Buf::State(0), Buf::State(1)], "{grad}");
        assert!(long
            .buffers()
            .iter()
            .all(|b| !matches!(b, Buf::Act(n, ..) if *n > 0)));
        // One finiteness slot per forward and per backward step.
        assert_eq!(long.len_of(Buf::FirstNonFinite), 32, "{grad}");
        inputs_read_only(&long);
        for b in long.buffers() {
            assert!(long.len_of(b) > 0, "{grad}: {b:?}");
        }
    }
    let (short, long) = (plan("backprop", "rk4", 2), plan("backprop", "rk4", 16));
    assert!(footprint(&long).len() > footprint(&short).len());
}

/// The backward pass's finiteness: the reversible pass checks each rebuilt `x̃ₙ` (slot
/// `N + n`, in the order n = N−1…0), the adjoint its `a` after each backward step (slot
/// `N + m`); the stage gradient of the adjoint exists only there.
#[test]
fn memory_free_plans_check_their_backward_states() {
    let n = 4;
    let slots = |p: &TrainPlan| -> Vec<(Buf, usize)> {
        p.launches
            .iter()
            .filter_map(|l| match l {
                Launch::FirstNonFinite { x, slot, .. } if *slot >= n => Some((*x, *slot)),
                _ => None,
            })
            .collect()
    };
    let rev = plan("reversible", "heun", n);
    let want: Vec<(Buf, usize)> = (0..n).rev().map(|k| (rev.state(k), n + k)).collect();
    assert_eq!(slots(&rev), want);
    let adj = plan("adjoint", "heun", n);
    let want: Vec<(Buf, usize)> = (0..n).map(|m| (Buf::Lambda, n + m)).collect();
    assert_eq!(slots(&adj), want);
    assert!(adj.buffers().contains(&Buf::GradStage));
    assert!(!rev.buffers().contains(&Buf::GradStage));
    // Work counted as the generic methods count it: Heun has two stages.
    assert_eq!(rev.forward_evaluations(), 2 * n);
    assert_eq!(rev.backward_evaluations(), 3 * 2 * n);
    assert_eq!(adj.backward_evaluations(), 2 * 2 * n);
    assert_eq!(plan("backprop", "heun", n).backward_evaluations(), 2 * n);
}
