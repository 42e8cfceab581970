//! Drawing one [`Panel`]: axis ranges from the data, linear or log axes, series, legend.

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Legend, Panel, Scale, Style};

/// Matplotlib's "tab10" palette: distinct, print-friendly colours.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Draws `panel` into `area`.
pub(super) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), String> {
    // Keep only points that can be placed on the axes (finite, positive on log axes).
    let usable = |v: f64, scale: Scale| v.is_finite() && (scale == Scale::Linear || v > 0.0);
    let points: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|&(x, y)| usable(x, panel.x_scale) && usable(y, panel.y_scale))
                .collect()
        })
        .collect();
    let all = points.iter().flatten();
    let x = axis_range(all.clone().map(|p| p.0), panel.x_scale, &panel.title, "x")?;
    let y = match panel.y_limits {
        Some((lo, hi)) if hi > lo && (panel.y_scale == Scale::Linear || lo > 0.0) => (lo, hi),
        _ => axis_range(all.map(|p| p.1), panel.y_scale, &panel.title, "y")?,
    };
    let lin = |r: (f64, f64)| -> RangedCoordf64 { (r.0..r.1).into() };
    let log = |r: (f64, f64)| -> LogCoord<f64> { (r.0..r.1).log_scale().into() };
    match (panel.x_scale, panel.y_scale) {
        (Scale::Linear, Scale::Linear) => draw_in(area, panel, &points, lin(x), lin(y)),
        (Scale::Linear, Scale::Log) => draw_in(area, panel, &points, lin(x), log(y)),
        (Scale::Log, Scale::Linear) => draw_in(area, panel, &points, log(x), lin(y)),
        (Scale::Log, Scale::Log) => draw_in(area, panel, &points, log(x), log(y)),
    }
}

/// The padded data range of one axis.
fn axis_range(
    values: impl Iterator<Item = f64>,
    scale: Scale,
    panel: &str,
    axis: &str,
) -> Result<(f64, f64), String> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return match scale {
            Scale::Linear => Ok((0.0, 1.0)),
            Scale::Log => Err(format!(
                "panel '{panel}' has no point with a positive {axis} for its log axis"
            )),
        };
    }
    Ok(match scale {
        Scale::Linear => {
            let pad = if hi > lo {
                0.05 * (hi - lo)
            } else {
                0.1 * lo.abs().max(1.0)
            };
            (lo - pad, hi + pad)
        }
        Scale::Log => {
            let decades = (hi / lo).log10();
            let factor = if decades > 0.0 {
                10f64.powf(0.05 * decades)
            } else {
                10.0
            };
            (lo / factor, hi * factor)
        }
    })
}

fn draw_in<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    points: &[Vec<(f64, f64)>],
    x: X,
    y: Y,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    let (x_range, y_range) = (chart.x_range(), chart.y_range());
    let x_log = log_labeller(x_range.start, x_range.end);
    let y_log = log_labeller(y_range.start, y_range.end);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15));
    let linear = |v: &f64| {
        if v.abs() < 1e-12 {
            "0".to_string()
        } else {
            short_number(*v)
        }
    };
    if panel.x_scale == Scale::Log {
        mesh.x_label_formatter(&x_log);
    } else {
        mesh.x_label_formatter(&linear);
    }
    if panel.y_scale == Scale::Log {
        mesh.y_label_formatter(&y_log);
    } else {
        mesh.y_label_formatter(&linear);
    }
    mesh.draw().map_err(err)?;
    let mut any_label = false;
    let mut slot = 0usize;
    for (series, pts) in panel.series.iter().zip(points) {
        if series.style == Style::Band {
            let color = PALETTE[(slot + PALETTE.len() - 1) % PALETTE.len()];
            if pts.len() >= 3 {
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        pts.clone(),
                        color.mix(0.2).filled(),
                    )))
                    .map_err(err)?;
            }
            continue;
        }
        let color = PALETTE[slot % PALETTE.len()];
        slot += 1;
        let line = matches!(series.style, Style::Line | Style::LineMarkers);
        let markers = matches!(series.style, Style::Markers | Style::LineMarkers);
        let legend = move |(lx, ly): (i32, i32)| -> DynElement<'static, DB, (i32, i32)> {
            if line {
                PathElement::new(vec![(lx, ly), (lx + 20, ly)], color.stroke_width(2)).into_dyn()
            } else {
                Circle::new((lx + 10, ly), 4, color.filled()).into_dyn()
            }
        };
        let label = series.label.as_str();
        if line {
            let ann = chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(err)?;
            if !label.is_empty() {
                ann.label(label).legend(legend);
            }
        }
        if markers {
            let radius = if line { 3 } else { 4 };
            let ann = chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, radius, color.filled())))
                .map_err(err)?;
            if !line && !label.is_empty() {
                ann.label(label).legend(legend);
            }
        }
        any_label |= !label.is_empty();
    }
    if any_label {
        chart
            .configure_series_labels()
            .position(match panel.legend {
                Legend::UpperRight => SeriesLabelPosition::UpperRight,
                Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
                Legend::LowerRight => SeriesLabelPosition::LowerRight,
                Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Tick labels of a log axis over `[lo, hi]`: powers of ten only (the other ticks keep their
/// grid line), unless the axis spans less than about one and a half decades.
fn log_labeller(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let label_all = (hi / lo).abs().log10() < 1.5;
    move |&v: &f64| {
        let e = v.log10();
        if (e - e.round()).abs() < 1e-9 {
            power_of_ten(e.round() as i32)
        } else if label_all {
            short_number(v)
        } else {
            String::new()
        }
    }
}

/// `10^e` as people write it on an axis: `0.01`, `1`, `1000`, `1e-5`, `1e6`.
fn power_of_ten(e: i32) -> String {
    match e {
        -3..=-1 => format!("{:.*}", e.unsigned_abs() as usize, 10f64.powi(e)),
        0..=3 => format!("{}", 10i32.pow(e.unsigned_abs())),
        _ => format!("1e{e}"),
    }
}

/// A number with at most three significant digits, without trailing zeros.
fn short_number(v: f64) -> String {
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        format!("{mantissa}e{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_padded_and_degenerate_ranges_widened() {
        let (lo, hi) = axis_range([0.0, 10.0].into_iter(), Scale::Linear, "p", "x").unwrap();
        assert!((lo + 0.5).abs() < 1e-12 && (hi - 10.5).abs() < 1e-12);
        let (lo, hi) = axis_range([2.0].into_iter(), Scale::Linear, "p", "x").unwrap();
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = axis_range([1e-3, 1e1].into_iter(), Scale::Log, "p", "y").unwrap();
        assert!(lo < 1e-3 && hi > 1e1 && lo > 1e-4 && hi < 1e2);
        assert_eq!(
            axis_range(std::iter::empty(), Scale::Linear, "p", "x").unwrap(),
            (0.0, 1.0)
        );
        assert!(axis_range(std::iter::empty(), Scale::Log, "p", "y").is_err());
    }

    #[test]
    fn log_tick_labels_are_short() {
        let wide = log_labeller(1e-9, 1.0);
        assert_eq!(wide(&1e-5), "1e-5");
        assert_eq!(wide(&9.999999999999999e-5), "1e-4");
        assert_eq!(wide(&0.01), "0.01");
        assert_eq!(wide(&1.0), "1");
        assert_eq!(wide(&1000.0), "1000");
        assert_eq!(wide(&3e-5), "");
        let narrow = log_labeller(0.02, 0.5);
        assert_eq!(narrow(&0.05), "0.05");
        assert_eq!(narrow(&0.1), "0.1");
        assert_eq!(short_number(0.0625), "0.0625");
        assert_eq!(short_number(123.456), "123");
        assert_eq!(short_number(2.5e-7), "2.5e-7");
        assert_eq!(short_number(3e6), "3e6");
    }
}
