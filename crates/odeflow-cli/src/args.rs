//! Value parsers shared by the commands' flags.
//!
//! clap calls these while parsing; an `Err(String)` becomes
//! `invalid value '<v>' for '--flag <FLAG>': <reason>`, which names both the flag and the
//! value. Numbers must be finite everywhere: a NaN time, step or state is always a mistake.

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

/// Formats numbers as a comma-separated list (the inverse of [`float_list`]).
pub fn join(values: &[f64]) -> String {
    values
        .iter()
        .map(f64::to_string)
        .collect::<Vec<_>>()
        .join(",")
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
