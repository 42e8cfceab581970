//! The steps of a training iteration's plan ([`TrainPlan`]): one forward step with its
//! tapes, the discrete adjoint of one step (`backprop`), and the two memory-free backward
//! passes ([`PlanGradient::Reversible`], [`PlanGradient::Adjoint`]), each the launch-level
//! twin of the generic method in [`crate::grad`] on the same fixed grid.
//!
//! Stages that cannot reach a step's result (`bᵢ = 0` and no later needed stage reads
//! `kᵢ`, e.g. dopri5's FSAL stage) are neither evaluated nor differentiated.

use super::{Buf, Launch, PlanGradient, TrainPlan};
use crate::tableau::ButcherTableau;

/// `needed[i]`: stage `i`'s derivative reaches the step's result (`bᵢ ≠ 0`, or a needed
/// later stage `j` has `aⱼᵢ ≠ 0`).
pub(super) fn needed(tab: &ButcherTableau) -> Vec<bool> {
    let (a, b, s) = (tab.a(), tab.b(), tab.stages());
    let mut needed = vec![false; s];
    for i in (0..s).rev() {
        needed[i] = b[i] != 0.0 || (i + 1..s).any(|j| a[j][i] != 0.0 && needed[j]);
    }
    needed
}

/// `Σⱼ c·wⱼ·buf(j)` over the needed `j` in `js` with `wⱼ ≠ 0`, as a lincomb's terms.
fn terms(
    js: impl Iterator<Item = usize>,
    needed: &[bool],
    w: impl Fn(usize) -> f64,
    buf: impl Fn(usize) -> Buf,
) -> Vec<(Buf, f32)> {
    js.filter(|&j| needed[j] && w(j) != 0.0)
        .map(|j| (buf(j), w(j) as f32))
        .collect()
}

impl TrainPlan {
    /// Field evaluations of the forward solve: the needed stages of every step.
    pub fn forward_evaluations(&self) -> usize {
        self.num_steps() * self.needed_stages
    }

    /// Field evaluations and VJPs of the backward pass as the plan issues them (the generic
    /// methods' counts, less the stages that cannot reach a result, e.g. dopri5's FSAL
    /// stage): a VJP per needed stage and step (`backprop`); plus the reverse step's and the
    /// recomputed step's evaluations (`reversible`); an evaluation and a VJP per needed stage
    /// and backward step (`adjoint`).
    pub fn backward_evaluations(&self) -> usize {
        let k = self.needed_stages;
        match &self.gradient {
            PlanGradient::Backprop => self.num_steps() * k,
            PlanGradient::Reversible => self.num_steps() * 3 * k,
            PlanGradient::Adjoint { .. } => self.backward_steps() * 2 * k,
        }
    }

    /// The stages of step `n` (size `h`) from `yₙ`, each field evaluation taping its
    /// activations, then `out ← yₙ + Σᵢ h bᵢ kᵢ` when `out` is given:
    /// `Yᵢ = yₙ + Σ_{j<i} h aᵢⱼ kⱼ`, `kᵢ = f(Yᵢ)`.
    pub(super) fn step_forward(
        &mut self,
        tab: &ButcherTableau,
        n: usize,
        h: f64,
        out: Option<Buf>,
    ) {
        let (a, b, c, need) = (tab.a(), tab.b(), tab.c(), needed(tab));
        let (rows, y, tn) = (self.shape.rows, self.phys(n), self.times[n]);
        for i in (0..tab.stages()).filter(|&i| need[i]) {
            if i > 0 {
                let t = terms(0..i, &need, |j| h * a[i][j], Buf::K);
                self.lincomb(Buf::StageIn(self.tape(y), i), Buf::State(y), &t);
            }
            self.push_field(rows, y, i, true, tn + c[i] * h);
        }
        if let Some(out) = out {
            let t = terms(0..tab.stages(), &need, |j| h * b[j], Buf::K);
            self.lincomb(out, Buf::State(y), &t);
        }
    }

    /// The discrete adjoint of step `n` at its tapes (`grad::StepBackward`), stages in
    /// reverse: `k̄ᵢ = h bᵢ λ + Σ_{j>i} h aⱼᵢ Ȳⱼ`, `Ȳᵢ = (∂f/∂y)ᵀ k̄ᵢ`,
    /// `∂θ += (∂f/∂θ)ᵀ k̄ᵢ`; then `λ ← λ + Σᵢ Ȳᵢ`.
    pub(super) fn step_backward(&mut self, tab: &ButcherTableau, n: usize, h: f64) {
        let (a, b, need, s) = (tab.a(), tab.b(), needed(tab), tab.stages());
        let (rows, y, tn) = (self.shape.rows, self.phys(n), self.times[n]);
        for i in (0..s).rev().filter(|&i| need[i]) {
            let mut t = Vec::new();
            if b[i] != 0.0 {
                t.push((Buf::Lambda, (h * b[i]) as f32));
            }
            t.extend(terms(i + 1..s, &need, |j| h * a[j][i], Buf::YBar));
            self.lincomb(Buf::KBar, Buf::Zeros, &t);
            self.push_field(rows, y, i, false, tn + tab.c()[i] * h);
        }
        let t = terms(0..s, &need, |_| 1.0, Buf::YBar);
        self.lincomb(Buf::Lambda, Buf::Lambda, &t);
    }

    /// Sander et al.'s reversible backward pass (`grad::reversible`): per step `n = N−1…0`,
    /// the reverse step `x̃ₙ = x̃ₙ₊₁ − h Σᵢ bᵢ kᵢ` with `kᵢ = f(x̃ₙ₊₁ − h Σ_{j<i} aᵢⱼ kⱼ)`
    /// (its finiteness in slot `N + n`), the forward step recomputed at `x̃ₙ` with tapes, and
    /// its discrete adjoint. Two state buffers and one step's tapes, whatever `N`. The
    /// reverse step's stage `i` is evaluated at the time of forward stage `s − 1 − i`
    /// (`grad::reversible::reverse_step`; only a depth field reads it).
    pub(super) fn reversible_backward(&mut self, tab: &ButcherTableau) {
        let (a, b, need, s) = (tab.a(), tab.b(), needed(tab), tab.stages());
        let c = tab.c();
        let (rows, len, big_n) = (self.shape.rows, self.state_len(), self.num_steps());
        for n in (0..big_n).rev() {
            let h = self.steps[n];
            let (x, prev) = (self.phys(n + 1), self.state(n));
            for i in (0..s).filter(|&i| need[i]) {
                if i > 0 {
                    let t = terms(0..i, &need, |j| -h * a[i][j], Buf::K);
                    self.lincomb(Buf::StageIn(self.tape(x), i), Buf::State(x), &t);
                }
                self.push_field(rows, x, i, true, self.times[n] + c[s - 1 - i] * h);
            }
            let t = terms(0..s, &need, |j| -h * b[j], Buf::K);
            self.lincomb(prev, Buf::State(x), &t);
            self.launches.push(Launch::FirstNonFinite {
                x: prev,
                len,
                slot: big_n + n,
            });
            self.step_forward(tab, n, h, None);
            self.step_backward(tab, n, h);
        }
    }

    /// The continuous adjoint's backward solve (`grad::adjoint`) on `grid` (`t₁ → t₀`,
    /// steps `h < 0`): per stage `i`, `Yᵢ = y + Σ_{j<i} h aᵢⱼ kⱼ`, `kᵢ = f(Yᵢ)` (taped),
    /// `Aᵢ = a − Σ_{j<i} h aᵢⱼ Ȳⱼ`, one VJP `Ȳᵢ = Aᵢᵀ∂f/∂y`, `Gᵢ = Aᵢᵀ∂f/∂θ` (into
    /// [`Buf::GradStage`]) and `∂θ += −h bᵢ Gᵢ`; then `y ← y + Σ h bᵢ kᵢ`,
    /// `a ← a − Σ h bᵢ Ȳᵢ` (its finiteness in slot `N + m` for backward step `m`).
    pub(super) fn adjoint_backward(&mut self, tab: &ButcherTableau, grid: &[f64]) {
        let (a, b, need, s) = (tab.a(), tab.b(), needed(tab), tab.stages());
        let (rows, len, big_n) = (self.shape.rows, self.state_len(), self.num_steps());
        let fp = self.field_params();
        let mut cur = self.phys(big_n);
        let c = tab.c();
        for (m, w) in grid.windows(2).enumerate() {
            let h = w[1] - w[0];
            for i in (0..s).filter(|&i| need[i]) {
                if i > 0 {
                    let t = terms(0..i, &need, |j| h * a[i][j], Buf::K);
                    self.lincomb(Buf::StageIn(self.tape(cur), i), Buf::State(cur), &t);
                }
                self.push_field(rows, cur, i, true, w[0] + c[i] * h);
                let t = terms(0..i, &need, |j| -h * a[i][j], Buf::YBar);
                self.lincomb(Buf::KBar, Buf::Lambda, &t);
                self.launches.push(Launch::Zero(Buf::GradStage));
                self.push_field(rows, cur, i, false, w[0] + c[i] * h);
                if b[i] != 0.0 {
                    let t = [(Buf::GradStage, (-h * b[i]) as f32)];
                    self.lincomb_len(fp, Buf::GradParams, Buf::GradParams, &t);
                }
            }
            let next = 1 - cur;
            let t = terms(0..s, &need, |j| h * b[j], Buf::K);
            self.lincomb(Buf::State(next), Buf::State(cur), &t);
            let t = terms(0..s, &need, |j| -h * b[j], Buf::YBar);
            self.lincomb(Buf::Lambda, Buf::Lambda, &t);
            self.launches.push(Launch::FirstNonFinite {
                x: Buf::Lambda,
                len,
                slot: big_n + m,
            });
            cur = next;
        }
    }
}
