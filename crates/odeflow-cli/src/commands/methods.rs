//! `odeflow methods`: the method catalogue as JSON, or as a table for people.
//!
//! ```text
//! odeflow methods            # JSON array of odeflow::solve::MethodInfo on stdout
//! odeflow methods --table    # aligned table on stdout
//! odeflow methods --out m.json
//! ```

use clap::Args;
use odeflow::solve::{method_catalogue, MethodInfo, MethodKind};

use crate::error::CliError;
use crate::progress::Reporter;

/// Flags of `odeflow methods`.
#[derive(Debug, Args)]
pub struct MethodsArgs {}

/// Runs `odeflow methods`.
pub fn run(args: MethodsArgs, reporter: &Reporter) -> Result<(), CliError> {
    let _ = args;
    let methods = method_catalogue();
    reporter.result(&methods, || table(&methods))
}

fn kind_name(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Explicit => "explicit",
        MethodKind::Embedded => "embedded",
        MethodKind::Symplectic => "symplectic",
        MethodKind::Implicit => "implicit",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The catalogue as an aligned text table; embedded pairs show their order as `p(p̂)`.
fn table(methods: &[MethodInfo]) -> String {
    let header = [
        "name", "order", "stages", "kind", "fsal", "dense", "aliases",
    ]
    .map(String::from);
    let rows: Vec<[String; 7]> = methods
        .iter()
        .map(|m| {
            [
                m.name.clone(),
                match m.embedded_order {
                    Some(e) => format!("{}({e})", m.order),
                    None => m.order.to_string(),
                },
                m.stages.to_string(),
                kind_name(m.kind).to_string(),
                yes_no(m.fsal).to_string(),
                yes_no(m.dense_output).to_string(),
                if m.aliases.is_empty() {
                    "-".to_string()
                } else {
                    m.aliases.join(", ")
                },
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_method_with_aligned_columns() {
        let methods = method_catalogue();
        let text = table(&methods);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), methods.len() + 1);
        assert!(lines[0].starts_with("name"));
        let dopri = lines.iter().find(|l| l.starts_with("dopri5 ")).unwrap();
        assert!(
            dopri.contains("5(4)") && dopri.contains("embedded"),
            "{dopri}"
        );
        assert!(
            dopri.contains("dp5") && dopri.contains("dormand-prince"),
            "{dopri}"
        );
        // The kind column starts at the same place in every row.
        let col = lines[0].find("kind").unwrap();
        for l in &lines[1..] {
            let rest = &l[col..];
            assert!(
                ["explicit", "embedded", "symplectic", "implicit"]
                    .iter()
                    .any(|k| rest.starts_with(k)),
                "{l}"
            );
        }
    }
}
