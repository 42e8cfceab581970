//! [`ModifiedSeries`]: the B-series coefficients of a modified field for one tableau and one
//! truncation order, evaluated pointwise on any [`GenericField`].

use serde::Serialize;

use super::differentials::{elementary_differentials, GenericField, Workspace, MAX_DEPTH};
use super::forest::TreeTable;
use super::substitution::{integrator_coefficients, solve_substitution, Scheme};
use crate::error::{ArgError, ShapeError};
use crate::solve::Method;
use crate::tableau::trees::Tree;
use crate::tableau::ButcherTableau;

/// The largest truncation order `K` supported: the series then runs over the 20 299 trees
/// with at most 13 vertices, and the bushiest of them needs 12 nested dual numbers.
pub const MAX_ORDER: usize = MAX_DEPTH;

/// Which modified equation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expansion {
    /// The inverse modified differential equation `f_h` of Zhu et al. (2022):
    /// `Φ_{h, f_h} = φ_{h, f}` — the method applied to `f_h` reproduces the exact flow of `f`.
    /// What a Neural ODE trained with this method on exact-flow data learns.
    Inverse,
    /// The classical modified equation of backward error analysis `f̃_h`:
    /// `Φ_{h, f} = φ_{h, f̃_h}` — the numerical solution is the exact flow of `f̃_h`.
    Forward,
}

impl Expansion {
    /// `"inverse"` or `"forward"`.
    pub fn name(self) -> &'static str {
        match self {
            Expansion::Inverse => "inverse",
            Expansion::Forward => "forward",
        }
    }
}

/// The truncated modified field `Σ_{k=0}^{K} h^k f_k` of one explicit Runge–Kutta method, as
/// B-series coefficients: `f_k = Σ_{|τ|=k+1} b(τ)/σ(τ) F(τ)`.
///
/// Building it solves the substitution law once (independent of the field and of `h`);
/// [`ModifiedSeries::eval`] and [`ModifiedSeries::terms`] then only evaluate elementary
/// differentials at the point.
#[derive(Debug, Clone)]
pub struct ModifiedSeries {
    expansion: Expansion,
    method: String,
    order: usize,
    table: TreeTable,
    /// `b(τ)` by tree id.
    beta: Vec<f64>,
    /// `b(τ)/σ(τ)` by tree id.
    weights: Vec<f64>,
    /// Trees whose elementary differential is used (nonzero weight, or a subtree of one).
    needed: Vec<bool>,
}

impl ModifiedSeries {
    /// The coefficients of `expansion` for `tableau`, truncated after `h^order`.
    ///
    /// Fails when `order` exceeds [`MAX_ORDER`].
    pub fn new(
        expansion: Expansion,
        tableau: &ButcherTableau,
        order: usize,
    ) -> Result<Self, ArgError> {
        Self::from_runge_kutta(expansion, tableau.name(), tableau.a(), tableau.b(), order)
    }

    /// The coefficients of `expansion` for the Runge–Kutta method with coefficient matrix
    /// `a` (`s × s`, explicit or implicit) and weights `b`, truncated after `h^order`.
    ///
    /// The elementary weights `Φ(τ) = bᵀ Π A Φ(τₖ)` of an implicit method are defined by the
    /// same recursion as for an explicit one (the stage equations are solved order by order
    /// in `h`), so the substitution law applies unchanged: this is how the IMDE of the
    /// implicit midpoint rule (`a = [[1/2]]`, `b = [1]`) is computed.
    pub fn from_runge_kutta(
        expansion: Expansion,
        name: &str,
        a: &[Vec<f64>],
        b: &[f64],
        order: usize,
    ) -> Result<Self, ArgError> {
        if order > MAX_ORDER {
            return Err(ArgError::invalid(
                "order",
                order,
                format!("the truncation order must be at most {MAX_ORDER}"),
            ));
        }
        let s = b.len();
        if s == 0 || a.len() != s || a.iter().any(|row| row.len() != s) {
            return Err(ArgError::invalid(
                "Runge–Kutta coefficients",
                name,
                format!("a must be {s}×{s} for {s} weights b (and s ≥ 1)"),
            ));
        }
        if let Some(v) = a.iter().flatten().chain(b).find(|v| !v.is_finite()) {
            return Err(ArgError::invalid(
                "Runge–Kutta coefficient",
                v,
                format!("method '{name}': every coefficient must be finite"),
            ));
        }
        let table = TreeTable::new(order + 1);
        let rk = Scheme::RungeKutta { a, b };
        let beta = match expansion {
            // Φ applied to f_h equals φ: (b ⋆ Φ) = e with e(τ) = 1/γ(τ).
            Expansion::Inverse => {
                let exact: Vec<f64> = (0..table.len()).map(|i| 1.0 / table.gamma(i)).collect();
                solve_substitution(&table, rk, &exact)
            }
            // φ applied to f̃_h equals Φ: (b ⋆ e) = Φ.
            Expansion::Forward => {
                let phi = integrator_coefficients(&table, rk);
                solve_substitution(&table, Scheme::ExactFlow { len: order + 1 }, &phi)
            }
        };
        let weights: Vec<f64> = beta
            .iter()
            .enumerate()
            .map(|(i, b)| b / table.sigma(i))
            .collect();
        let mut needed: Vec<bool> = weights.iter().map(|w| *w != 0.0).collect();
        for id in (0..table.len()).rev() {
            if needed[id] {
                for &c in table.children(id) {
                    needed[c as usize] = true;
                }
            }
        }
        Ok(Self {
            expansion,
            method: name.to_string(),
            order,
            table,
            beta,
            weights,
            needed,
        })
    }

    /// The coefficients for a method of the catalogue: any explicit Runge–Kutta tableau, or
    /// the implicit midpoint rule. Splitting methods are partitioned methods whose modified
    /// equations need P-series over bicoloured trees, which this module does not implement;
    /// they are refused with an error that says so.
    pub fn for_method(
        expansion: Expansion,
        method: &Method,
        order: usize,
    ) -> Result<Self, ArgError> {
        match method {
            Method::Explicit(t) => Self::new(expansion, t, order),
            Method::Implicit(_) => {
                Self::from_runge_kutta(expansion, "implicit-midpoint", &[vec![0.5]], &[1.0], order)
            }
            Method::Splitting(s) => Err(ArgError::MethodUnsuited {
                method: s.name.clone(),
                reason: "is a splitting (partitioned) method: its modified equations are \
                         P-series over bicoloured trees, not B-series; the IMDE is available \
                         for Runge–Kutta methods (explicit tableaus and implicit-midpoint)"
                    .into(),
            }),
        }
    }

    /// The inverse modified equation (IMDE) of `tableau` to order `order`.
    pub fn inverse(tableau: &ButcherTableau, order: usize) -> Result<Self, ArgError> {
        Self::new(Expansion::Inverse, tableau, order)
    }

    /// The classical (forward) modified equation of `tableau` to order `order`.
    pub fn forward(tableau: &ButcherTableau, order: usize) -> Result<Self, ArgError> {
        Self::new(Expansion::Forward, tableau, order)
    }

    /// Which modified equation this is.
    pub fn expansion(&self) -> Expansion {
        self.expansion
    }

    /// The method's name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The truncation order `K` (the series stops after `h^K f_K`).
    pub fn order(&self) -> usize {
        self.order
    }

    /// Number of trees in the series (with at most `K + 1` vertices).
    pub fn num_trees(&self) -> usize {
        self.table.len()
    }

    /// The coefficient `b(τ)` (so that `f_h = Σ h^{|τ|−1} b(τ)/σ(τ) F(τ)`), or `None` when τ
    /// has more than `K + 1` vertices.
    pub fn coefficient(&self, tree: &Tree) -> Option<f64> {
        self.table.id_of(tree).map(|id| self.beta[id as usize])
    }

    /// Every tree of the series with its coefficient `b(τ)`, by increasing order.
    pub fn coefficients(&self) -> Vec<(Tree, f64)> {
        (0..self.table.len())
            .map(|id| (self.table.tree(id), self.beta[id]))
            .collect()
    }

    /// `f_0(y), …, f_K(y)` (with `f_0 = f`).
    pub fn terms<F: GenericField>(&self, field: &F, y: &[f64]) -> Result<Vec<Vec<f64>>, ArgError> {
        check_point(field, y)?;
        let mut ws = Workspace::new();
        elementary_differentials(field, &self.table, &self.needed, y, &mut ws);
        let d = y.len();
        Ok((0..=self.order)
            .map(|k| {
                let mut term = vec![0.0; d];
                self.add_order(k + 1, 1.0, &ws, &mut term);
                term
            })
            .collect())
    }

    /// The truncated modified field `Σ_{k=0}^{K} h^k f_k(y)`.
    pub fn eval<F: GenericField>(
        &self,
        field: &F,
        h: f64,
        y: &[f64],
    ) -> Result<Vec<f64>, ArgError> {
        let mut out = vec![0.0; y.len()];
        self.eval_into(field, h, y, &mut out, &mut Workspace::new())?;
        Ok(out)
    }

    /// [`ModifiedSeries::eval`] into `out`, with caller-owned scratch space: after the first
    /// call with a given workspace, evaluation does not allocate.
    pub fn eval_into<F: GenericField>(
        &self,
        field: &F,
        h: f64,
        y: &[f64],
        out: &mut [f64],
        ws: &mut Workspace,
    ) -> Result<(), ArgError> {
        check_step(h)?;
        check_point(field, y)?;
        if out.len() != y.len() {
            return Err(ShapeError {
                what: "output",
                expected: y.len(),
                got: out.len(),
            }
            .into());
        }
        self.eval_unchecked(field, h, y, out, ws);
        Ok(())
    }

    /// The evaluation proper; shapes must agree.
    pub(crate) fn eval_unchecked<F: GenericField>(
        &self,
        field: &F,
        h: f64,
        y: &[f64],
        out: &mut [f64],
        ws: &mut Workspace,
    ) {
        elementary_differentials(field, &self.table, &self.needed, y, ws);
        out.fill(0.0);
        let mut hk = 1.0;
        for n in 1..=self.order + 1 {
            self.add_order(n, hk, ws, out);
            hk *= h;
        }
    }

    /// `out += scale · Σ_{|τ|=n} b(τ)/σ(τ) F(τ)`.
    fn add_order(&self, n: usize, scale: f64, ws: &Workspace, out: &mut [f64]) {
        let d = out.len();
        for id in self.table.ids_of_order(n) {
            let w = self.weights[id];
            if w == 0.0 {
                continue;
            }
            let f = &ws.values[id * d..(id + 1) * d];
            out.iter_mut().zip(f).for_each(|(o, v)| *o += scale * w * v);
        }
    }
}

/// `y` must have the field's dimension and finite components.
pub(crate) fn check_point<F: GenericField>(field: &F, y: &[f64]) -> Result<(), ArgError> {
    if y.len() != field.dim() {
        return Err(ShapeError {
            what: "point",
            expected: field.dim(),
            got: y.len(),
        }
        .into());
    }
    if let Some((i, v)) = y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ArgError::invalid(format!("y[{i}]"), v, "must be finite"));
    }
    Ok(())
}

/// The step size must be finite (any sign: the series is a formal power series in `h`).
pub(crate) fn check_step(h: f64) -> Result<(), ArgError> {
    if !h.is_finite() {
        return Err(ArgError::invalid("h", h, "the step size must be finite"));
    }
    Ok(())
}
