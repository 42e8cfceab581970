//! Butcher tableaus as validated data.
//!
//! An explicit Runge–Kutta method with `s` stages advances `y' = f(t, y)` by
//!
//! ```text
//! kᵢ = f(t + cᵢ h, y + h Σ_{j<i} aᵢⱼ kⱼ),   y₁ = y + h Σᵢ bᵢ kᵢ,
//! ```
//!
//! and an embedded pair adds weights `b̂` of lower order whose difference
//! `h Σ (bᵢ − b̂ᵢ) kᵢ` estimates the local error. A method here is just its coefficients
//! ([`ButcherTableau`]): [`ButcherTableau::new`] checks explicitness, the row-sum condition
//! `Σⱼ aᵢⱼ = cᵢ`, consistency `Σ bᵢ = 1` (and `Σ b̂ᵢ = 1`), and the order conditions
//! `Φ(τ) = 1/γ(τ)` for every rooted tree up to the claimed order (see [`trees`]); a dense
//! output `bᵢ(θ)` must reproduce `b` at θ = 1, be finite, and satisfy the continuous order
//! conditions `Σᵢ bᵢ(θ) Φᵢ(τ) = θ^|τ|/γ(τ)` up to its claimed order. Adding a
//! method to the catalogue is one declaration in [`catalogue`] plus one line in its test.

pub mod catalogue;
pub mod trees;

use trees::trees_up_to;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Tolerance of the algebraic checks (coefficients are given to ~16 digits).
const CHECK_TOL: f64 = 1e-10;

/// The highest order whose conditions are checked: 14, the highest order of a published
/// explicit Runge–Kutta method (Feagin's 35-stage RK14). Orders up to it involve 53 000
/// rooted trees; each order more multiplies the count by about 3.
pub const MAX_ORDER: usize = 14;

/// Why a tableau is rejected.
#[derive(Debug, Clone, PartialEq, Error, Serialize)]
pub enum TableauError {
    /// `a`, `b`, `c` (or `b̂`, or the dense-output rows) have inconsistent sizes.
    #[error("tableau '{name}': {what} has {got} entries, expected {expected}")]
    Size {
        /// Method name.
        name: String,
        /// Which array.
        what: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// `a[i][j] ≠ 0` for some `j ≥ i`.
    #[error("tableau '{name}' is not explicit: a[{i}][{j}] = {value}")]
    NotExplicit {
        /// Method name.
        name: String,
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// The nonzero value.
        value: f64,
    },
    /// `Σⱼ aᵢⱼ ≠ cᵢ`.
    #[error("tableau '{name}': row {i} of a sums to {sum}, but c[{i}] = {c}")]
    RowSum {
        /// Method name.
        name: String,
        /// Row.
        i: usize,
        /// Row sum.
        sum: f64,
        /// The node.
        c: f64,
    },
    /// `Σ bᵢ ≠ 1` (or `Σ b̂ᵢ ≠ 1`).
    #[error("tableau '{name}': the weights {which} sum to {sum}, not 1")]
    WeightSum {
        /// Method name.
        name: String,
        /// `b` or `b_embedded`.
        which: &'static str,
        /// The sum.
        sum: f64,
    },
    /// The claimed order is not attained: an order condition fails.
    #[error("tableau '{name}' does not have order {order}: for the tree {tree} Φ = {phi} but 1/γ = {expected}")]
    OrderCondition {
        /// Method name.
        name: String,
        /// The order claimed (of `b` or `b̂`).
        order: usize,
        /// The failing tree in bracket notation.
        tree: String,
        /// Its elementary weight.
        phi: f64,
        /// 1/γ.
        expected: f64,
    },
    /// A dense-output polynomial that does not reproduce `b` at θ = 1 or is inconsistent.
    #[error("tableau '{name}': dense output {reason}")]
    DenseOutput {
        /// Method name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A coefficient is NaN or infinite, or an order is zero.
    #[error("tableau '{name}': {reason}")]
    Invalid {
        /// Method name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The user-facing description of a tableau: what a TOML file holds (`--tableau FILE`).
///
/// ```toml
/// name = "heun"
/// order = 2
/// c = [0.0, 1.0]
/// a = [[], [1.0]]          # strictly lower rows; may also be given as full square rows
/// b = [0.5, 0.5]
/// # b_embedded = [1.0, 0.0]   # optional, with embedded_order
/// # embedded_order = 1
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableauSpec {
    /// Method name.
    pub name: String,
    /// Order of the `b` solution.
    pub order: usize,
    /// Nodes.
    pub c: Vec<f64>,
    /// Coefficient rows: row `i` holds `aᵢ₀ … aᵢ,ᵢ₋₁` (a full square row is accepted too).
    pub a: Vec<Vec<f64>>,
    /// Solution weights.
    pub b: Vec<f64>,
    /// Embedded (error-estimating) weights.
    #[serde(default)]
    pub b_embedded: Option<Vec<f64>>,
    /// Order of the embedded weights.
    #[serde(default)]
    pub embedded_order: Option<usize>,
    /// Dense output: `dense[i][m]` is the coefficient of `θ^(m+1)` in `bᵢ(θ)`.
    #[serde(default)]
    pub dense: Option<Vec<Vec<f64>>>,
    /// Order of the dense output.
    #[serde(default)]
    pub dense_order: Option<usize>,
}

/// A validated explicit Runge–Kutta tableau.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ButcherTableau {
    name: String,
    order: usize,
    c: Vec<f64>,
    /// Full `s × s` matrix, zero on and above the diagonal.
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    b_embedded: Option<Vec<f64>>,
    embedded_order: Option<usize>,
    /// `dense[i][m]`: coefficient of θ^(m+1) in bᵢ(θ).
    dense: Option<Vec<Vec<f64>>>,
    dense_order: Option<usize>,
    fsal: bool,
}

impl ButcherTableau {
    /// Validates a tableau (see the module docs for the checks).
    pub fn new(spec: TableauSpec) -> Result<Self, TableauError> {
        let name = spec.name.clone();
        let s = spec.c.len();
        let size = |what: &str, expected: usize, got: usize| TableauError::Size {
            name: name.clone(),
            what: what.to_string(),
            expected,
            got,
        };
        if s == 0 {
            return Err(size("c", 1, 0));
        }
        if spec.order == 0 {
            return Err(TableauError::Invalid {
                name,
                reason: "order must be at least 1".into(),
            });
        }
        // Checking a claimed order enumerates the rooted trees up to it, exponentially many
        // (millions at order 20): claims above the highest order checked are refused before
        // any tree is built. (Claims above the number of stages need no such guard: they
        // fail by order s + 1 at the latest, see `check_order`.)
        let orders = [
            ("order", Some(spec.order)),
            ("embedded_order", spec.embedded_order),
            ("dense_order", spec.dense_order),
        ];
        for (what, claimed) in orders {
            if let Some(p) = claimed.filter(|&p| p > MAX_ORDER) {
                return Err(TableauError::Invalid {
                    name,
                    reason: format!(
                        "{what} {p} is above {MAX_ORDER}, the highest order odeflow checks \
                         (and higher than any published explicit Runge–Kutta method)"
                    ),
                });
            }
        }
        if spec.a.len() != s {
            return Err(size("a (rows)", s, spec.a.len()));
        }
        if spec.b.len() != s {
            return Err(size("b", s, spec.b.len()));
        }
        let mut a = vec![vec![0.0; s]; s];
        for (i, row) in spec.a.iter().enumerate() {
            if row.len() != i && row.len() != s {
                return Err(size(&format!("a row {i}"), i, row.len()));
            }
            for (j, &v) in row.iter().enumerate() {
                if j >= i && v != 0.0 {
                    return Err(TableauError::NotExplicit {
                        name,
                        i,
                        j,
                        value: v,
                    });
                }
                if j < i {
                    a[i][j] = v;
                }
            }
        }
        let all = spec.c.iter().chain(&spec.b).chain(a.iter().flatten());
        let all = all.chain(spec.b_embedded.iter().flatten());
        let all = all.chain(spec.dense.iter().flatten().flatten());
        if let Some(v) = all.clone().find(|v| !v.is_finite()) {
            return Err(TableauError::Invalid {
                name,
                reason: format!("coefficient {v} is not finite"),
            });
        }
        for (i, (row, &ci)) in a.iter().zip(&spec.c).enumerate() {
            let sum: f64 = row.iter().sum();
            if !((sum - ci).abs() <= CHECK_TOL) {
                return Err(TableauError::RowSum {
                    name,
                    i,
                    sum,
                    c: ci,
                });
            }
        }
        check_order(&name, &a, &spec.b, spec.order, "b")?;
        if spec.b_embedded.is_some() != spec.embedded_order.is_some() {
            return Err(TableauError::Invalid {
                name,
                reason: "b_embedded and embedded_order must be given together".into(),
            });
        }
        if let (Some(bh), Some(p)) = (&spec.b_embedded, spec.embedded_order) {
            if p == 0 {
                return Err(TableauError::Invalid {
                    name,
                    reason: "embedded_order must be at least 1".into(),
                });
            }
            if bh.len() != s {
                return Err(size("b_embedded", s, bh.len()));
            }
            check_order(&name, &a, bh, p, "b_embedded")?;
        }
        if let Some(d) = &spec.dense {
            check_dense(&name, d, &spec.b)?;
            if let Some(q) = spec.dense_order {
                check_dense_order(&name, &a, d, q)?;
            }
        }
        // FSAL: the last stage is evaluated at (t + h, y₁), so it is the next step's first.
        let fsal = s > 1
            && spec.c[s - 1] == 1.0
            && (0..s - 1).all(|j| (a[s - 1][j] - spec.b[j]).abs() < 1e-15)
            && spec.b[s - 1] == 0.0;
        Ok(ButcherTableau {
            name,
            order: spec.order,
            c: spec.c,
            a,
            b: spec.b,
            b_embedded: spec.b_embedded,
            embedded_order: spec.embedded_order,
            dense_order: spec.dense.as_ref().and(spec.dense_order),
            dense: spec.dense,
            fsal,
        })
    }

    /// Reads and validates a tableau from TOML text (see [`TableauSpec`]).
    pub fn from_toml(text: &str) -> Result<Self, TableauFileError> {
        let spec: TableauSpec =
            toml::from_str(text).map_err(|e| TableauFileError::Parse(e.to_string()))?;
        Ok(Self::new(spec)?)
    }

    /// The method's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Order of the solution weights `b`.
    pub fn order(&self) -> usize {
        self.order
    }
    /// Number of stages `s`.
    pub fn stages(&self) -> usize {
        self.c.len()
    }
    /// Nodes `c`.
    pub fn c(&self) -> &[f64] {
        &self.c
    }
    /// Coefficients `a` as a full `s × s` matrix (zero on and above the diagonal).
    pub fn a(&self) -> &[Vec<f64>] {
        &self.a
    }
    /// Solution weights `b`.
    pub fn b(&self) -> &[f64] {
        &self.b
    }
    /// Embedded weights `b̂`, if the method is an embedded pair.
    pub fn b_embedded(&self) -> Option<&[f64]> {
        self.b_embedded.as_deref()
    }
    /// Order of the embedded weights.
    pub fn embedded_order(&self) -> Option<usize> {
        self.embedded_order
    }
    /// True for an embedded pair (usable with adaptive step-size control).
    pub fn is_embedded(&self) -> bool {
        self.b_embedded.is_some()
    }
    /// First Same As Last: the last stage equals the next step's first, saving one evaluation
    /// per accepted step.
    pub fn is_fsal(&self) -> bool {
        self.fsal
    }
    /// Dense-output coefficients: `dense()[i][m]` multiplies θ^(m+1) in bᵢ(θ).
    pub fn dense(&self) -> Option<&[Vec<f64>]> {
        self.dense.as_deref()
    }
    /// Order of the dense output, if the method has its own.
    pub fn dense_order(&self) -> Option<usize> {
        self.dense_order
    }
    /// Error weights `eᵢ = bᵢ − b̂ᵢ` (the local error estimate is `h Σ eᵢ kᵢ`).
    pub fn error_weights(&self) -> Option<Vec<f64>> {
        self.b_embedded
            .as_ref()
            .map(|bh| self.b.iter().zip(bh).map(|(b, e)| b - e).collect())
    }
    /// The order that step-size control uses for its exponent: `min(p, p̂) + 1`, the order of
    /// the local error estimate.
    pub fn error_estimate_order(&self) -> Option<usize> {
        self.embedded_order.map(|p| p.min(self.order) + 1)
    }
    /// Stages evaluated per step once the first step is done (one fewer when FSAL).
    pub fn evals_per_step(&self) -> usize {
        self.stages() - usize::from(self.fsal)
    }
    /// The specification this tableau was built from (for saving and printing).
    pub fn spec(&self) -> TableauSpec {
        TableauSpec {
            name: self.name.clone(),
            order: self.order,
            c: self.c.clone(),
            a: self
                .a
                .iter()
                .enumerate()
                .map(|(i, r)| r[..i].to_vec())
                .collect(),
            b: self.b.clone(),
            b_embedded: self.b_embedded.clone(),
            embedded_order: self.embedded_order,
            dense: self.dense.clone(),
            dense_order: self.dense_order,
        }
    }
}

/// A tableau file that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TableauFileError {
    /// The TOML does not parse into a [`TableauSpec`].
    #[error("tableau file does not parse: {0}")]
    Parse(String),
    /// The tableau parses but is invalid.
    #[error(transparent)]
    Invalid(#[from] TableauError),
}

fn check_order(
    name: &str,
    a: &[Vec<f64>],
    b: &[f64],
    order: usize,
    which: &'static str,
) -> Result<(), TableauError> {
    let sum: f64 = b.iter().sum();
    if !((sum - 1.0).abs() <= CHECK_TOL) {
        return Err(TableauError::WeightSum {
            name: name.to_string(),
            which,
            sum,
        });
    }
    // An explicit method's order is at most its number of stages: the tall tree of order
    // s + 1 has Φ = b·Aˢ·1 = 0 (A is strictly lower triangular), so a claim above s fails
    // by then and larger trees need not be built.
    for group in trees_up_to(order.min(b.len() + 1)) {
        for t in group {
            let phi = t.elementary_weight(a, b);
            let expected = 1.0 / t.gamma();
            if !((phi - expected).abs() <= CHECK_TOL) {
                return Err(TableauError::OrderCondition {
                    name: name.to_string(),
                    order,
                    tree: t.notation(),
                    phi,
                    expected,
                });
            }
        }
    }
    Ok(())
}

fn check_dense(name: &str, dense: &[Vec<f64>], b: &[f64]) -> Result<(), TableauError> {
    let err = |reason: String| TableauError::DenseOutput {
        name: name.to_string(),
        reason,
    };
    if dense.len() != b.len() {
        return Err(err(format!(
            "has {} rows, expected {}",
            dense.len(),
            b.len()
        )));
    }
    for (i, (row, bi)) in dense.iter().zip(b).enumerate() {
        let at_one: f64 = row.iter().sum();
        if !((at_one - bi).abs() <= CHECK_TOL) {
            return Err(err(format!("b_{i}(1) = {at_one} but b_{i} = {bi}")));
        }
    }
    // Σᵢ bᵢ(θ) = θ: the interpolant is exact for y' = 1.
    let deg = dense.iter().map(Vec::len).max().unwrap_or(0);
    for m in 0..deg {
        let s: f64 = dense.iter().map(|r| r.get(m).copied().unwrap_or(0.0)).sum();
        let want = if m == 0 { 1.0 } else { 0.0 };
        if !((s - want).abs() <= CHECK_TOL) {
            return Err(err(format!(
                "Σᵢ bᵢ(θ) ≠ θ (coefficient of θ^{} is {s})",
                m + 1
            )));
        }
    }
    Ok(())
}

/// The continuous order conditions of a dense output of order `q`: for every tree `τ` with
/// `|τ| ≤ q`, `Σᵢ bᵢ(θ) Φᵢ(τ) = θ^|τ| / γ(τ)` as polynomials in θ (Hairer, Nørsett, Wanner I,
/// II.6), checked coefficient by coefficient.
fn check_dense_order(
    name: &str,
    a: &[Vec<f64>],
    dense: &[Vec<f64>],
    q: usize,
) -> Result<(), TableauError> {
    let deg = dense.iter().map(Vec::len).max().unwrap_or(0);
    // As in `check_order`: the tall tree of order s + 1 fails for any explicit method.
    for t in trees_up_to(q.min(a.len() + 1)).iter().flatten() {
        let g = t.stage_weights(a);
        for m in 0..deg.max(t.order()) {
            let coef: f64 = dense
                .iter()
                .zip(&g)
                .map(|(row, gi)| row.get(m).copied().unwrap_or(0.0) * gi)
                .sum();
            let want = if m + 1 == t.order() {
                1.0 / t.gamma()
            } else {
                0.0
            };
            if !((coef - want).abs() <= CHECK_TOL) {
                return Err(TableauError::DenseOutput {
                    name: name.to_string(),
                    reason: format!(
                        "does not have order {q}: for the tree {} the coefficient of θ^{} is {coef} but should be {want}",
                        t.notation(),
                        m + 1
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Multiplies polynomials given by coefficients in ascending powers.
pub(crate) fn poly_mul(p: &[f64], q: &[f64]) -> Vec<f64> {
    let mut r = vec![0.0; p.len() + q.len() - 1];
    for (i, a) in p.iter().enumerate() {
        for (j, b) in q.iter().enumerate() {
            r[i + j] += a * b;
        }
    }
    r
}
