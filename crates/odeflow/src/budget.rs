//! Budgets checked before work starts: how many solver steps one solve may take and how
//! much memory a data set or model may need.
//!
//! A value a user gives (a step size of `1e-9`, a data set of `1e9` samples, a tolerance of
//! `1e-300`) can ask for more work or memory than the machine has; found late, that is an
//! hours-long run or an allocation abort. [`Budget`] turns such values into one-line
//! [`BudgetError`]s up front, naming the value, what it would need, and how to raise the
//! limit:
//!
//! ```text
//! --step-size 1e-9 means 1000000000 steps per solve, over the budget of 1000000 (raise it with --max-steps or ODEFLOW_MAX_STEPS)
//! a data set of 1e9 × 784 f32 values needs 2.9 TiB, over the memory budget of 18 GiB (raise it with --memory-budget or ODEFLOW_MEMORY_BUDGET)
//! ```
//!
//! The limits come from the environment ([`Budget::from_env`]): `ODEFLOW_MAX_STEPS` (default
//! [`DEFAULT_MAX_STEPS`]) and `ODEFLOW_MEMORY_BUDGET` (bytes, or with a `K`/`M`/`G`/`T`
//! suffix in powers of 1024; default three quarters of the memory the process may use:
//! `MemTotal` of `/proc/meminfo`, or a smaller cgroup limit, else 8 GiB). Sizes are
//! computed with checked arithmetic: a size that overflows `u64` is an error, never a
//! wrapped small number.
//!
//! [`readable`] and [`human_bytes`] print numbers for such messages (`1e-300`, never a
//! 300-digit decimal; `2.9 TiB`).

use thiserror::Error;

/// Steps one solve may take unless `ODEFLOW_MAX_STEPS` or the caller says otherwise.
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;

/// The memory budget when the machine's memory cannot be read: 8 GiB.
pub const FALLBACK_MEMORY_BYTES: u64 = 8 << 30;

/// The smallest relative tolerance accepted: below it, the error estimate is dominated by
/// the rounding of f64 arithmetic (machine epsilon is 2.2e-16; sums of stages lose more).
pub const MIN_TOLERANCE: f64 = 1e-14;

/// Name of the environment variable for the step budget.
pub const MAX_STEPS_VAR: &str = "ODEFLOW_MAX_STEPS";

/// Name of the environment variable for the memory budget.
pub const MEMORY_BUDGET_VAR: &str = "ODEFLOW_MEMORY_BUDGET";

/// A value over a budget, or a value that cannot be used; its message is one line.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BudgetError {
    /// More steps than the step budget allows.
    #[error(
        "{what} means {steps} steps per solve, over the budget of {max} (raise it with \
         --max-steps or {MAX_STEPS_VAR})"
    )]
    Steps {
        /// The value given, as the user wrote it (e.g. `--step-size 1e-9`).
        what: String,
        /// The steps it would take.
        steps: u64,
        /// The budget.
        max: u64,
    },
    /// A step count that does not even fit in a `u64`.
    #[error(
        "{what} means about {} steps per solve, {} (raise the step size)",
        approx(*steps),
        match max {
            Some(m) => format!("far over the budget of {m}"),
            None => "more than can be counted".to_string(),
        }
    )]
    StepsOverflow {
        /// The value given.
        what: String,
        /// The (floating-point) number of steps.
        steps: f64,
        /// The budget, when one was checked.
        max: Option<u64>,
    },
    /// More memory than the memory budget allows.
    #[error(
        "{what} needs {}, over the memory budget of {} (raise it with --memory-budget or \
         {MEMORY_BUDGET_VAR})",
        human_bytes(*bytes),
        human_bytes(*budget)
    )]
    Memory {
        /// What needs the memory (e.g. `a data set of 1e9 × 784 f32 values`).
        what: String,
        /// Bytes needed.
        bytes: u64,
        /// The budget.
        budget: u64,
    },
    /// A size whose byte count overflows `u64`.
    #[error(
        "{what} needs more than 16 EiB (its size overflows), over the memory budget of {} \
         (raise it with --memory-budget or {MEMORY_BUDGET_VAR})",
        human_bytes(*budget)
    )]
    MemoryOverflow {
        /// What needs the memory.
        what: String,
        /// The budget.
        budget: u64,
    },
    /// A value that is not usable at all (a step size of zero, a malformed environment
    /// variable, a tolerance below f64 resolution).
    #[error("{what} {reason}")]
    Invalid {
        /// The value's name and the value (`--rtol 1e-300`, `ODEFLOW_MAX_STEPS 'lots'`).
        what: String,
        /// What is wrong and what to give instead.
        reason: String,
    },
}

impl BudgetError {
    fn invalid(what: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        BudgetError::Invalid {
            what: format!("{what} {value}"),
            reason: reason.into(),
        }
    }
}

/// Limits on the work and memory one command may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    max_steps: u64,
    memory_bytes: u64,
}

impl Default for Budget {
    /// [`DEFAULT_MAX_STEPS`] and three quarters of the machine's memory (see the module
    /// docs), ignoring the environment variables.
    fn default() -> Self {
        Budget {
            max_steps: DEFAULT_MAX_STEPS,
            memory_bytes: default_memory_budget(),
        }
    }
}

impl Budget {
    /// A budget with the given limits.
    pub fn new(max_steps: u64, memory_bytes: u64) -> Self {
        Budget {
            max_steps,
            memory_bytes,
        }
    }

    /// The budget the environment asks for: `ODEFLOW_MAX_STEPS` and `ODEFLOW_MEMORY_BUDGET`
    /// where set (an empty value counts as unset), the defaults otherwise. A value that
    /// cannot be read is an error naming the variable, not silently the default.
    pub fn from_env() -> Result<Self, BudgetError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::from_values(
            var(MAX_STEPS_VAR).as_deref(),
            var(MEMORY_BUDGET_VAR).as_deref(),
        )
    }

    /// [`Budget::from_env`] with the two variables' values given (`None`: unset).
    pub fn from_values(max_steps: Option<&str>, memory: Option<&str>) -> Result<Self, BudgetError> {
        let max_steps = match max_steps {
            None => DEFAULT_MAX_STEPS,
            Some(s) => parse_count(s.trim()).ok_or_else(|| {
                BudgetError::invalid(
                    MAX_STEPS_VAR,
                    format!("'{s}'"),
                    "is not a positive whole number of steps (e.g. 1000000 or 1e7)",
                )
            })?,
        };
        let memory_bytes = match memory {
            None => default_memory_budget(),
            Some(s) => match parse_bytes(s) {
                Ok(0) => Err("must be more than 0 bytes".to_string()),
                other => other,
            }
            .map_err(|why| BudgetError::invalid(MEMORY_BUDGET_VAR, format!("'{s}'"), why))?,
        };
        Ok(Budget {
            max_steps,
            memory_bytes,
        })
    }

    /// The same budget with at most `n` steps per solve.
    pub fn with_max_steps(mut self, n: u64) -> Self {
        self.max_steps = n;
        self
    }

    /// The same budget with at most `bytes` of memory.
    pub fn with_memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Steps one solve may take.
    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    /// Bytes the data and models of one command may need.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Checks that `n` steps per solve are within the budget; `what` names the value that
    /// implies them, as the user gave it (`--step-size 1e-9`).
    pub fn check_steps(&self, what: &str, n: u64) -> Result<(), BudgetError> {
        if n > self.max_steps {
            return Err(BudgetError::Steps {
                what: what.to_string(),
                steps: n,
                max: self.max_steps,
            });
        }
        Ok(())
    }

    /// The steps a fixed step `h` takes over a span of length `span`
    /// ([`steps_for_step_size`]), checked against the budget; `what` names the value.
    pub fn check_step_size(&self, what: &str, h: f64, span: f64) -> Result<u64, BudgetError> {
        let n = match steps_for_step_size(h, span) {
            Err(BudgetError::StepsOverflow { steps, .. }) => {
                return Err(BudgetError::StepsOverflow {
                    what: what.to_string(),
                    steps,
                    max: Some(self.max_steps),
                })
            }
            Err(BudgetError::Invalid { reason, .. }) => {
                return Err(BudgetError::Invalid {
                    what: what.to_string(),
                    reason,
                })
            }
            other => other?,
        };
        self.check_steps(what, n)?;
        Ok(n)
    }

    /// Checks that `bytes` are within the memory budget; `what` names what needs them.
    pub fn check_bytes(&self, what: &str, bytes: u64) -> Result<(), BudgetError> {
        if bytes > self.memory_bytes {
            return Err(BudgetError::Memory {
                what: what.to_string(),
                bytes,
                budget: self.memory_bytes,
            });
        }
        Ok(())
    }

    /// Checks `count` elements of `bytes_per_element` bytes against the memory budget and
    /// returns the bytes; a product that overflows `u64` is an error, not a wrap.
    pub fn check_elements(
        &self,
        what: &str,
        count: u64,
        bytes_per_element: u64,
    ) -> Result<u64, BudgetError> {
        let bytes =
            count
                .checked_mul(bytes_per_element)
                .ok_or_else(|| BudgetError::MemoryOverflow {
                    what: what.to_string(),
                    budget: self.memory_bytes,
                })?;
        self.check_bytes(what, bytes)?;
        Ok(bytes)
    }

    /// Checks an array of shape `dims` with `bytes_per_element` bytes per element (the
    /// product of the dimensions is checked for overflow too) and returns its bytes.
    pub fn check_shape(
        &self,
        what: &str,
        dims: &[u64],
        bytes_per_element: u64,
    ) -> Result<u64, BudgetError> {
        let count = checked_product(dims).ok_or_else(|| BudgetError::MemoryOverflow {
            what: what.to_string(),
            budget: self.memory_bytes,
        })?;
        self.check_elements(what, count, bytes_per_element)
    }
}

impl Budget {
    /// Checks a data set of `samples` samples of `values_per_sample` values of a scalar type
    /// named `scalar` (`"f32"`, `"f64"`) of `bytes_per_value` bytes, and returns its bytes.
    /// The message names the shape: "a data set of 1e9 × 784 f32 values needs 2.9 TiB, over
    /// the memory budget of 18 GiB (ODEFLOW_MEMORY_BUDGET)".
    pub fn check_dataset(
        &self,
        samples: u64,
        values_per_sample: u64,
        scalar: &str,
        bytes_per_value: u64,
    ) -> Result<u64, BudgetError> {
        let what = format!(
            "a data set of {} × {} {scalar} values",
            readable_count(samples),
            readable_count(values_per_sample)
        );
        self.check_shape(&what, &[samples, values_per_sample], bytes_per_value)
    }
}

/// A count for messages: plain digits (`60000`, `123456789`), or a short scientific form
/// when that is exact and the count is at least 10⁶ (`1e9`, `2.5e6`).
pub fn readable_count(n: u64) -> String {
    if n >= 1_000_000 {
        let x = n as f64;
        let short = approx(x);
        if short.parse::<f64>().ok() == Some(x) && x as u64 == n {
            return short;
        }
    }
    n.to_string()
}

/// The product of `dims`, or `None` when it overflows `u64` (a zero anywhere gives 0).
pub fn checked_product(dims: &[u64]) -> Option<u64> {
    if dims.contains(&0) {
        return Some(0);
    }
    dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

/// The number of steps of size `h` that cover a span of length `|span|`: `ceil(|span| / h)`,
/// ignoring a last step shorter than `1e-9·h` (the rounding noise of `span / h`), as the
/// fixed-grid solver counts them. A span of zero takes no steps. `h` must be positive and
/// finite and `span` finite; a count beyond `u64` is [`BudgetError::StepsOverflow`].
pub fn steps_for_step_size(h: f64, span: f64) -> Result<u64, BudgetError> {
    if !(h > 0.0 && h.is_finite()) {
        return Err(BudgetError::invalid(
            "the step size",
            readable(h),
            "must be positive and finite",
        ));
    }
    if !span.is_finite() {
        return Err(BudgetError::invalid(
            "the time span",
            readable(span),
            "must be finite",
        ));
    }
    let len = span.abs();
    if len == 0.0 {
        return Ok(0);
    }
    let q = len / h;
    let mut n = q.ceil().max(1.0);
    if n > 1.0 && q - (n - 1.0) < 1e-9 {
        n -= 1.0;
    }
    // 2^64 is exactly representable; every f64 below it converts without saturating.
    if !(n < 18_446_744_073_709_551_616.0) {
        return Err(BudgetError::StepsOverflow {
            what: format!(
                "a step size of {} over a span of {}",
                readable(h),
                readable(len)
            ),
            steps: n,
            max: None,
        });
    }
    Ok(n as u64)
}

/// Checks a tolerance (`what` names it, e.g. `--rtol`): it must be finite, positive, and
/// at least [`MIN_TOLERANCE`], below which an adaptive solver would be steering by rounding
/// error and shrink its steps without end.
pub fn check_tolerance(what: &str, tol: f64) -> Result<(), BudgetError> {
    if tol.is_nan() || tol.is_infinite() || tol <= 0.0 {
        return Err(BudgetError::invalid(
            what,
            readable(tol),
            "must be a positive, finite tolerance (e.g. 1e-6)",
        ));
    }
    if tol < MIN_TOLERANCE {
        return Err(BudgetError::invalid(
            what,
            readable(tol),
            format!(
                "is below what f64 arithmetic can resolve (rounding errors are about 1e-16 \
                 relative, more after summing stages); use {} or more",
                readable(MIN_TOLERANCE)
            ),
        ));
    }
    Ok(())
}

/// A count such as `1000000`, `1_000_000` or `1e7` (a whole, positive number).
fn parse_count(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    if let Ok(n) = s.parse::<u64>() {
        return (n > 0).then_some(n);
    }
    let x: f64 = s.parse().ok()?;
    ((1.0..18_446_744_073_709_551_616.0).contains(&x) && x.fract() == 0.0).then_some(x as u64)
}

/// Parses a byte size: a number of bytes (`1048576`), or a number (decimals allowed) with a
/// suffix `K`, `M`, `G`, `T` or `P` in powers of 1024, optionally followed by `B` or `iB`
/// and case-insensitive (`512M`, `1.5G`, `16GiB`, `2tb`). Returns why otherwise.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower)
        .trim_end();
    let (num, shift) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 10),
        Some('m') => (&body[..body.len() - 1], 20),
        Some('g') => (&body[..body.len() - 1], 30),
        Some('t') => (&body[..body.len() - 1], 40),
        Some('p') => (&body[..body.len() - 1], 50),
        _ => (body, 0),
    };
    let num = num.trim();
    let why = "is not a byte size (e.g. 17179869184, 512M, 16G or 1.5T)".to_string();
    if num.is_empty() || num.starts_with(['-', '+']) {
        return Err(why);
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(1u64 << shift)
            .ok_or_else(|| "is more than 16 EiB".to_string());
    }
    // Only plain decimals: no exponents, infinities or NaN.
    if !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(why);
    }
    let x: f64 = num.parse().map_err(|_| why.clone())?;
    let bytes = (x * (1u64 << shift) as f64).round();
    if !(bytes < 18_446_744_073_709_551_616.0) {
        return Err("is more than 16 EiB".into());
    }
    Ok(bytes as u64)
}

/// Three quarters of the memory this process may use: the smaller of `MemTotal` in
/// `/proc/meminfo` and a cgroup memory limit, or [`FALLBACK_MEMORY_BYTES`] when neither can
/// be read.
pub fn default_memory_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total_from_meminfo(&t));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .find_map(|t| t.trim().parse::<u64>().ok());
    memory_budget_from(total, cgroup)
}

/// Three quarters of the smaller of the two limits that are known (a cgroup "limit" larger
/// than the machine means none), or [`FALLBACK_MEMORY_BYTES`].
fn memory_budget_from(mem_total: Option<u64>, cgroup_limit: Option<u64>) -> u64 {
    let limit = match (mem_total, cgroup_limit) {
        (Some(t), Some(c)) => t.min(c),
        (Some(t), None) => t,
        (None, Some(c)) => c,
        (None, None) => return FALLBACK_MEMORY_BYTES,
    };
    if limit == 0 {
        return FALLBACK_MEMORY_BYTES;
    }
    limit / 4 * 3
}

/// `MemTotal` in bytes from the text of `/proc/meminfo` (`MemTotal:  24683784 kB`).
fn mem_total_from_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let scale = match parts.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        None => 1,
        Some(_) => return None,
    };
    n.checked_mul(scale)
}

/// A byte count in binary units for messages: `512 B`, `1.5 KiB`, `18 GiB`, `2.9 TiB`
/// (one decimal below 10 units, none above; a trailing `.0` dropped).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut k = 0;
    let mut v = bytes as f64;
    while v >= 1024.0 && k + 1 < UNITS.len() {
        v /= 1024.0;
        k += 1;
    }
    let mut text = if v < 9.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    // 1023.7 KiB would print as "1024 KiB": say "1 MiB".
    if text == "1024" && k + 1 < UNITS.len() {
        k += 1;
        text = "1".into();
    }
    let text = text.strip_suffix(".0").unwrap_or(&text).to_string();
    format!("{text} {}", UNITS[k])
}

/// `x` to three significant digits, trailing zeros dropped (`1e300`, `1.23e20`).
fn approx(x: f64) -> String {
    let s = format!("{x:.2e}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s,
    }
}

/// A number for messages, as the user would write it: the shortest decimal that reads back
/// to the same value for magnitudes in `[1e-4, 1e15)` (`0.25`, `1000000`, `0.001`), the
/// shortest scientific form otherwise (`1e-300`, `1.5e20`, `1e-9`), and `0`, `NaN`, `inf`,
/// `-inf`. Never a 300-digit decimal.
pub fn readable(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = x.abs();
    if (1e-4..1e15).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn readable_prints_short_forms() {
        assert_eq!(readable(1e-300), "1e-300");
        assert_eq!(readable(0.25), "0.25");
        assert_eq!(readable(1e-9), "1e-9");
        assert_eq!(readable(1e9), "1000000000");
        assert_eq!(readable(1.5e20), "1.5e20");
        assert_eq!(readable(-2.5e-7), "-2.5e-7");
        assert_eq!(readable(0.1), "0.1");
        assert_eq!(readable(1e-4), "0.0001");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(f64::NAN), "NaN");
        assert_eq!(readable(f64::NEG_INFINITY), "-inf");
        assert_eq!(readable(f64::MAX), "1.7976931348623157e308");
        assert_eq!(readable(5e-324), "5e-324");
        for x in [1e-300, 0.25, 1e-9, 3.0e-5, 123456.789, 1e300, -7.25e-12] {
            assert_eq!(readable(x).parse::<f64>().unwrap(), x, "{x}");
            assert!(readable(x).len() < 25, "{}", readable(x));
        }
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(18 * GIB), "18 GiB");
        assert_eq!(human_bytes(18 * GIB + GIB / 3), "18 GiB");
        // 1e9 × 784 f32 values.
        assert_eq!(human_bytes(1_000_000_000 * 784 * 4), "2.9 TiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1 MiB");
        assert_eq!(human_bytes(u64::MAX), "16 EiB");
        assert_eq!(human_bytes(10 * 1024 - 1), "10 KiB");
    }

    #[test]
    fn step_counts_follow_the_fixed_grid() {
        assert_eq!(steps_for_step_size(0.1, 1.0), Ok(10));
        assert_eq!(steps_for_step_size(0.1, 0.7), Ok(7));
        assert_eq!(steps_for_step_size(0.3, 1.0), Ok(4));
        assert_eq!(steps_for_step_size(2.0, 1.0), Ok(1));
        assert_eq!(steps_for_step_size(0.1, -1.0), Ok(10));
        assert_eq!(steps_for_step_size(0.1, 0.0), Ok(0));
        assert_eq!(steps_for_step_size(1e-9, 1.0), Ok(1_000_000_000));
        for h in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let e = steps_for_step_size(h, 1.0).unwrap_err();
            assert!(e.to_string().contains("must be positive and finite"), "{e}");
        }
        assert!(steps_for_step_size(0.1, f64::NAN).is_err());
        let e = steps_for_step_size(1e-300, 1.0).unwrap_err();
        assert!(matches!(e, BudgetError::StepsOverflow { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "a step size of 1e-300 over a span of 1 means about 1e300 steps per solve, more \
             than can be counted (raise the step size)"
        );
        assert_eq!(approx(1.2345e20), "1.23e20");
        assert_eq!(approx(9.999999999999999e299), "1e300");
    }

    #[test]
    fn step_budget_messages_name_the_value_and_the_remedy() {
        let b = Budget::new(DEFAULT_MAX_STEPS, 18 * GIB);
        assert_eq!(b.check_step_size("--step-size 0.001", 1e-3, 1.0), Ok(1000));
        let e = b
            .check_step_size("--step-size 1e-9", 1e-9, 1.0)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--step-size 1e-9 means 1000000000 steps per solve, over the budget of 1000000 \
             (raise it with --max-steps or ODEFLOW_MAX_STEPS)"
        );
        let e = b
            .check_step_size("--step-size 1e-300", 1e-300, 1.0)
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("--step-size 1e-300 means about 1e300 steps"),
            "{msg}"
        );
        assert!(!msg.contains('\n') && msg.len() < 200, "{msg}");
        let e = b.check_step_size("--step-size 0", 0.0, 1.0).unwrap_err();
        assert_eq!(e.to_string(), "--step-size 0 must be positive and finite");
        assert!(b.check_steps("x", DEFAULT_MAX_STEPS).is_ok());
        assert!(b.check_steps("x", DEFAULT_MAX_STEPS + 1).is_err());
        assert!(b.with_max_steps(10).check_steps("x", 11).is_err());
    }

    #[test]
    fn memory_checks_use_checked_arithmetic() {
        let b = Budget::new(DEFAULT_MAX_STEPS, 18 * GIB);
        let e = b
            .check_elements("a data set of 1e9 × 784 f32 values", 1_000_000_000 * 784, 4)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a data set of 1e9 × 784 f32 values needs 2.9 TiB, over the memory budget of \
             18 GiB (raise it with --memory-budget or ODEFLOW_MEMORY_BUDGET)"
        );
        assert_eq!(b.check_elements("small", 1000, 8), Ok(8000));
        let e = b.check_elements("huge", u64::MAX / 2, 4).unwrap_err();
        assert!(matches!(e, BudgetError::MemoryOverflow { .. }));
        assert!(e.to_string().contains("overflows"), "{e}");
        let e = b.check_shape("an IDX array", &[1 << 31, 1 << 31, 1 << 31], 1);
        assert!(
            matches!(e, Err(BudgetError::MemoryOverflow { .. })),
            "{e:?}"
        );
        assert_eq!(b.check_shape("empty", &[0, u64::MAX, u64::MAX], 8), Ok(0));
        assert!(b.check_bytes("x", 18 * GIB).is_ok());
        assert!(b.check_bytes("x", 18 * GIB + 1).is_err());
        assert!(b.with_memory_bytes(0).check_bytes("x", 1).is_err());
        assert_eq!(checked_product(&[]), Some(1));
        assert_eq!(checked_product(&[u64::MAX, 2]), None);
    }

    #[test]
    fn data_set_checks_name_the_shape() {
        let b = Budget::new(DEFAULT_MAX_STEPS, 18 * GIB);
        let e = b.check_dataset(1_000_000_000, 784, "f32", 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a data set of 1e9 × 784 f32 values needs 2.9 TiB, over the memory budget of \
             18 GiB (raise it with --memory-budget or ODEFLOW_MEMORY_BUDGET)"
        );
        assert_eq!(b.check_dataset(60_000, 784, "f32", 4), Ok(60_000 * 784 * 4));
        let e = b.check_dataset(u64::MAX, 3072, "f64", 8).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "a data set of 18446744073709551615 × 3072 f64 values needs more than 16 EiB"
            ),
            "{e}"
        );
        assert_eq!(readable_count(60_000), "60000");
        assert_eq!(readable_count(2_500_000), "2.5e6");
        assert_eq!(readable_count(123_456_789), "123456789");
        assert_eq!(readable_count(1 << 31), "2147483648");
    }

    #[test]
    fn tolerances_below_f64_resolution_are_refused() {
        assert!(check_tolerance("--rtol", 1e-6).is_ok());
        assert!(check_tolerance("--rtol", 1e-14).is_ok());
        let e = check_tolerance("--rtol", 1e-300).unwrap_err().to_string();
        assert!(
            e.starts_with("--rtol 1e-300 is below what f64 arithmetic can resolve"),
            "{e}"
        );
        assert!(e.contains("use 1e-14 or more"), "{e}");
        assert!(!e.contains('\n'));
        for bad in [0.0, -1e-6, f64::NAN, f64::INFINITY] {
            let e = check_tolerance("--atol", bad).unwrap_err().to_string();
            assert!(e.contains("must be a positive, finite tolerance"), "{e}");
        }
    }

    #[test]
    fn byte_sizes_parse_with_suffixes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("16G"), Ok(16 * GIB));
        assert_eq!(parse_bytes("16GiB"), Ok(16 * GIB));
        assert_eq!(parse_bytes(" 2 GB "), Ok(2 * GIB));
        assert_eq!(parse_bytes("1.5G"), Ok(3 * GIB / 2));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("2T"), Ok(2 << 40));
        assert_eq!(parse_bytes("100B"), Ok(100));
        assert_eq!(parse_bytes("1_000"), Ok(1000));
        for bad in [
            "", "G", "abc", "-1G", "1e9", "inf", "NaN", "1.2.3M", "5X", "16385P",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse_bytes("99999999999999999999"),
            Err("is more than 16 EiB".into())
        );
        assert_eq!(parse_bytes("16385P"), Err("is more than 16 EiB".into()));
    }

    #[test]
    fn environment_values_are_read_or_refused() {
        let b = Budget::from_values(Some("5000"), Some("2G")).unwrap();
        assert_eq!((b.max_steps(), b.memory_bytes()), (5000, 2 * GIB));
        let b = Budget::from_values(Some("1e7"), None).unwrap();
        assert_eq!(b.max_steps(), 10_000_000);
        assert_eq!(b.memory_bytes(), default_memory_budget());
        let b = Budget::from_values(None, None).unwrap();
        assert_eq!(b.max_steps(), DEFAULT_MAX_STEPS);
        let e = Budget::from_values(Some("lots"), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ODEFLOW_MAX_STEPS 'lots' is not a positive whole number of steps (e.g. 1000000 or 1e7)"
        );
        assert!(Budget::from_values(Some("0"), None).is_err());
        assert!(Budget::from_values(Some("1.5"), None).is_err());
        let e = Budget::from_values(None, Some("0"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "ODEFLOW_MEMORY_BUDGET '0' must be more than 0 bytes");
        let e = Budget::from_values(None, Some("16Q"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ODEFLOW_MEMORY_BUDGET '16Q' is not a byte size"),
            "{e}"
        );
        // The process environment (whatever it holds) is read without panicking.
        let _ = Budget::from_env();
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        #[test]
        fn readable_is_short_and_reads_back(bits in proptest::prelude::any::<u64>()) {
            let x = f64::from_bits(bits);
            let s = readable(x);
            proptest::prop_assert!(s.len() <= 24, "{s}");
            if x.is_finite() {
                proptest::prop_assert_eq!(s.parse::<f64>().unwrap(), x);
            }
        }

        #[test]
        fn human_bytes_is_short_and_close(n in proptest::prelude::any::<u64>()) {
            let s = human_bytes(n);
            proptest::prop_assert!(s.len() <= 8, "{s}");
            let (v, unit) = s.split_once(' ').unwrap();
            let k = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
                .iter()
                .position(|u| *u == unit)
                .unwrap();
            let back = v.parse::<f64>().unwrap() * 1024f64.powi(k as i32);
            // One decimal below 10 units, none above: within 5 % (exact for bytes).
            proptest::prop_assert!((back - n as f64).abs() <= 0.05 * n as f64 + 0.5, "{n}: {s}");
        }

        #[test]
        fn byte_sizes_never_panic(s in "\\PC{0,12}") {
            let _ = parse_bytes(&s);
            let _ = Budget::from_values(Some(&s), Some(&s));
        }

        #[test]
        fn byte_sizes_round_trip(n in 0u64..(1 << 40), shift in 0usize..5) {
            let unit = ["", "K", "M", "G", "T"][shift];
            let n = n >> (10 * shift);
            proptest::prop_assert_eq!(parse_bytes(&format!("{n}{unit}")), Ok(n << (10 * shift)));
        }

        #[test]
        fn step_counts_cover_the_span(h in 1e-6f64..10.0, span in 0f64..100.0) {
            let n = steps_for_step_size(h, span).unwrap();
            // n steps reach the end (up to the 1e-9·h noise ignored), n - 1 do not.
            proptest::prop_assert!(n as f64 * h >= span - 1e-9 * h * (n as f64 + 1.0));
            if n > 1 {
                proptest::prop_assert!(((n - 1) as f64) * h < span);
            }
        }
    }

    #[test]
    fn default_memory_budget_is_three_quarters_of_the_smaller_limit() {
        let meminfo = "MemTotal:       24683784 kB\nMemFree:        23176468 kB\n";
        let total = mem_total_from_meminfo(meminfo);
        assert_eq!(total, Some(24_683_784 * 1024));
        assert_eq!(memory_budget_from(Some(16 * GIB), None), 12 * GIB);
        assert_eq!(memory_budget_from(Some(16 * GIB), Some(4 * GIB)), 3 * GIB);
        assert_eq!(memory_budget_from(None, None), FALLBACK_MEMORY_BYTES);
        assert_eq!(memory_budget_from(Some(0), None), FALLBACK_MEMORY_BYTES);
        assert_eq!(mem_total_from_meminfo("nothing here"), None);
        assert_eq!(mem_total_from_meminfo("MemTotal: x kB"), None);
        let d = default_memory_budget();
        assert!(d > 0);
    }
}
