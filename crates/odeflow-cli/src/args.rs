//! Value parsers shared by the commands' flags, and the resolution of a built-in system
//! with a state given on the command line.
//!
//! clap calls these while parsing; an `Err(String)` becomes
//! `invalid value '<v>' for '--flag <FLAG>': <reason>`, which names both the flag and the
//! value. Numbers must be finite everywhere: a NaN time, step or state is always a mistake.

use odeflow::systems::{BuiltinSystem, System};

use crate::error::CliError;

/// A comma-separated list of finite numbers, e.g. `--y0 0,1` or `--t-eval 0,0.5,1`.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatList(pub Vec<f64>);

/// Parses a finite number.
pub fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{v} is not finite; give a finite number"));
    }
    Ok(v)
}

/// Parses a positive finite number (step sizes, tolerances, intervals).
pub fn positive(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v <= 0.0 {
        return Err(format!("must be positive, got {v}"));
    }
    Ok(v)
}

/// Parses a count of at least 1 (batch sizes), e.g. `--batch-size 100`.
pub fn count(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if v == 0 {
        return Err("must be at least 1, got 0".into());
    }
    Ok(v)
}

/// Parses a comma-separated list of finite numbers.
pub fn float_list(s: &str) -> Result<FloatList, String> {
    if s.trim().is_empty() {
        return Err("the list is empty; give comma-separated numbers such as 0,1".into());
    }
    s.split(',')
        .enumerate()
        .map(|(i, item)| {
            let v: f64 = item
                .trim()
                .parse()
                .map_err(|_| format!("item {i} '{}' is not a number", item.trim()))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("item {i} is {v}; every value must be finite"))
            }
        })
        .collect::<Result<_, _>>()
        .map(FloatList)
}

/// Formats numbers as a comma-separated list (the inverse of [`float_list`]), each as the
/// user would write it (`1e300`, never a 300-digit decimal).
pub fn join(values: &[f64]) -> String {
    values
        .iter()
        .map(|&v| odeflow::budget::readable(v))
        .collect::<Vec<_>>()
        .join(",")
}

/// The built-in system `name` and a state for it: `given` (the flag `flag`'s values) or the
/// system's demo state. For `linear` the length of `given` sets the dimension; otherwise a
/// length that differs from the system's is an input error naming the state components.
pub fn system_and_state(
    name: &str,
    given: Option<&FloatList>,
    flag: &str,
) -> Result<(BuiltinSystem, Vec<f64>), CliError> {
    let mut system = BuiltinSystem::from_name(name)?;
    let state = match given {
        Some(list) => list.0.clone(),
        None => system.default_y0(),
    };
    if let (BuiltinSystem::Linear(linear), Some(_)) = (&mut system, given) {
        // y' = λy has as many components as the state given.
        linear.dim = state.len();
    }
    if state.len() != system.dim() {
        return Err(CliError::input(format!(
            "{flag} {} has {} values but system '{}' has {} state components ({}); give {} comma-separated numbers",
            join(&state),
            state.len(),
            system.name(),
            system.dim(),
            system.state_names().join(", "),
            system.dim()
        )));
    }
    Ok((system, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_name_bad_items() {
        assert_eq!(float_list("0, 1.5,-2e-3").unwrap().0, vec![0.0, 1.5, -2e-3]);
        assert!(float_list("1,x").unwrap_err().contains("item 1 'x'"));
        assert!(float_list("nan,1").unwrap_err().contains("item 0 is NaN"));
        assert!(float_list("1,inf").unwrap_err().contains("inf"));
        assert!(float_list("").is_err());
        assert!(float_list("1,,2").unwrap_err().contains("item 1"));
        assert_eq!(join(&[0.0, 1.5]), "0,1.5");
        assert_eq!(join(&[1e300, -1e-12]), "1e300,-1e-12");
        assert_eq!(
            float_list(&join(&[0.1, 1e300])).unwrap().0,
            vec![0.1, 1e300]
        );
    }

    #[test]
    fn scalars_are_checked() {
        assert_eq!(positive("0.01").unwrap(), 0.01);
        assert!(positive("0").unwrap_err().contains("got 0"));
        assert!(positive("-1").unwrap_err().contains("got -1"));
        assert!(positive("NaN").is_err());
        assert!(finite("abc").unwrap_err().contains("'abc'"));
        assert_eq!(finite("-3").unwrap(), -3.0);
    }
}
