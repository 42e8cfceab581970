//! Grouped bar charts on a logarithmic axis (field errors per method), drawn with plotters
//! in the style of [`crate::plot`] (bundled font, tab10 palette, atomic files).

use std::path::Path;

use plotters::prelude::*;

use crate::error::CliError;
use crate::output;
use crate::plot::{self, Format};

/// Matplotlib's tab10 colours, as in [`crate::plot`].
const PALETTE: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
];

/// Bars of several groups (legend entries) for each category (x-axis label).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title.
    pub title: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Category names, left to right.
    pub categories: Vec<String>,
    /// `(legend, one value per category)`; non-positive or non-finite values are left out.
    pub groups: Vec<(String, Vec<f64>)>,
}

/// Draws `chart` into `path` (PNG or SVG by extension).
pub fn save(chart: &BarChart, path: &Path) -> Result<(), CliError> {
    let format = Format::from_path(path)?;
    plot::register_font();
    let width = (220 * chart.categories.len() as u32).clamp(640, 1600);
    let size = (width, plot::PANEL_HEIGHT);
    let fail = |e: String| CliError::runtime(format!("cannot draw '{}': {e}", path.display()));
    match format {
        Format::Png => output::write_via_temp(path, |tmp| {
            draw(chart, BitMapBackend::new(tmp, size).into_drawing_area()).map_err(fail)
        }),
        Format::Svg => {
            let mut svg = String::new();
            draw(
                chart,
                SVGBackend::with_string(&mut svg, size).into_drawing_area(),
            )
            .map_err(fail)?;
            output::write_atomic(path, svg.as_bytes())
        }
    }
}

fn draw<DB: DrawingBackend>(
    chart: &BarChart,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let values = chart
        .groups
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return Err(format!("bar chart '{}' has no positive value", chart.title));
    }
    let (y0, y1) = (lo / 3.0, hi * 3.0);
    let n = chart.categories.len().max(1);
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, (y0..y1).log_scale())
        .map_err(err)?;
    let names = chart.categories.clone();
    let label = move |v: &f64| {
        let i = v.floor();
        if (v - i - 0.5).abs() < 1e-9 && (i as usize) < names.len() {
            names[i as usize].clone()
        } else {
            String::new()
        }
    };
    c.configure_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&label)
        .disable_x_mesh()
        .y_desc(chart.y_label.as_str())
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let groups = chart.groups.len().max(1);
    let w = 0.8 / groups as f64;
    for (g, (legend, vals)) in chart.groups.iter().enumerate() {
        let color = PALETTE[g % PALETTE.len()];
        let bars = vals
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite() && **v > 0.0)
            .map(|(i, &v)| {
                let x = i as f64 + 0.1 + g as f64 * w;
                Rectangle::new([(x, y0), (x + w * 0.92, v)], color.filled())
            });
        c.draw_series(bars)
            .map_err(err)?
            .label(legend.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
