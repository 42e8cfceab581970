//! Plots for people: figures of one or more panels, each with several labelled series.
//!
//! A command describes *what* to draw as plain data ([`Figure`], [`Panel`], [`Series`]) and
//! calls [`save`]; the file extension picks the backend (`.png` through plotters' bitmap
//! backend, `.svg` through its SVG backend). Text is rendered with the bundled DejaVu Sans
//! font (see `assets/DejaVuSans-LICENSE.txt`), registered once on first use, so plots look
//! the same on every machine and need no system fontconfig.
//!
//! Files are written atomically (a temporary file next to the target, then a rename), so a
//! crash never leaves half a PNG behind.

mod panel;

pub mod runs;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::CliError;
use crate::output;

/// The bundled font (DejaVu Sans 2.37).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Width of one panel in pixels.
pub const PANEL_WIDTH: u32 = 640;
/// Height of one panel in pixels.
pub const PANEL_HEIGHT: u32 = 480;
/// Height of the figure title band in pixels.
const TITLE_HEIGHT: u32 = 40;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A polyline through the points.
    Line,
    /// A marker at each point.
    Markers,
    /// A polyline with a marker at each point.
    LineMarkers,
    /// A shaded region (e.g. mean ± std): `points` is a closed polygon — the lower curve
    /// followed by the upper curve in reverse. Drawn translucent in the colour of the
    /// preceding series, with no legend entry and no palette slot of its own.
    Band,
}

/// Axis scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear axis.
    Linear,
    /// Base-10 logarithmic axis (points with a non-positive coordinate are left out).
    Log,
}

/// Where a panel's legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Legend {
    /// Upper right corner (default).
    #[default]
    UpperRight,
    /// Upper left corner.
    UpperLeft,
    /// Lower right corner.
    LowerRight,
    /// Lower left corner.
    LowerLeft,
}

/// One labelled series of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Line, markers or both.
    pub style: Style,
}

impl Series {
    /// A series drawn as a line.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            style: Style::Line,
        }
    }

    /// A series drawn as markers only.
    pub fn markers(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            style: Style::Markers,
        }
    }

    /// A shaded band between `lower` and `upper` (two curves over the same x values), in the
    /// colour of the preceding series.
    pub fn band(lower: &[(f64, f64)], upper: &[(f64, f64)]) -> Self {
        let mut points = lower.to_vec();
        points.extend(upper.iter().rev().copied());
        Self {
            label: String::new(),
            points,
            style: Style::Band,
        }
    }

    /// A series drawn as a line with a marker at each point.
    pub fn line_markers(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            style: Style::LineMarkers,
        }
    }
}

/// One set of axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Caption above the axes.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Scale of the horizontal axis.
    pub x_scale: Scale,
    /// Scale of the vertical axis.
    pub y_scale: Scale,
    /// The series, drawn in order; each gets the next colour of the palette.
    pub series: Vec<Series>,
    /// Fixed range of the vertical axis (linear axes); `None` fits the data.
    pub y_limits: Option<(f64, f64)>,
    /// Where the legend goes.
    pub legend: Legend,
}

impl Panel {
    /// An empty panel with linear axes.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            y_limits: None,
            legend: Legend::UpperRight,
        }
    }

    /// Places the legend.
    pub fn legend(mut self, at: Legend) -> Self {
        self.legend = at;
        self
    }

    /// Fixes the vertical axis to `[lo, hi]` (points outside are clipped).
    pub fn y_limits(mut self, lo: f64, hi: f64) -> Self {
        self.y_limits = Some((lo, hi));
        self
    }

    /// Sets the axis scales.
    pub fn scales(mut self, x: Scale, y: Scale) -> Self {
        self.x_scale = x;
        self.y_scale = y;
        self
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }
}

/// A titled row of panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Title over all panels.
    pub title: String,
    /// Panels, left to right.
    pub panels: Vec<Panel>,
}

/// Image formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Portable Network Graphics (`.png`).
    Png,
    /// Scalable Vector Graphics (`.svg`).
    Svg,
}

impl Format {
    /// The format named by `path`'s extension, or an error naming the path.
    pub fn from_path(path: &Path) -> Result<Format, CliError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(CliError::input(format!(
                "cannot plot to '{}': the file name must end in .png or .svg",
                path.display()
            ))),
        }
    }
}

/// Registers the bundled font with plotters (once per process).
pub fn register_font() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // The font is compiled in and known to parse; the unit test below checks it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws `fig` into `path` (PNG or SVG by extension), atomically.
pub fn save(fig: &Figure, path: &Path) -> Result<(), CliError> {
    let format = Format::from_path(path)?;
    if fig.panels.is_empty() {
        return Err(CliError::runtime(format!(
            "nothing to plot into '{}'",
            path.display()
        )));
    }
    register_font();
    let n = fig.panels.len() as u32;
    let size = (PANEL_WIDTH * n, PANEL_HEIGHT + TITLE_HEIGHT);
    let fail = |e: String| CliError::runtime(format!("cannot draw '{}': {e}", path.display()));
    match format {
        Format::Png => output::write_via_temp(path, |tmp| {
            let backend = BitMapBackend::new(tmp, size);
            draw(fig, backend.into_drawing_area()).map_err(fail)
        }),
        Format::Svg => {
            let mut svg = String::new();
            {
                let backend = SVGBackend::with_string(&mut svg, size);
                draw(fig, backend.into_drawing_area()).map_err(fail)?;
            }
            output::write_atomic(path, svg.as_bytes())
        }
    }
}

fn draw<DB: DrawingBackend>(
    fig: &Figure,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = root
        .titled(&fig.title, ("sans-serif", 24))
        .map_err(|e| e.to_string())?;
    let areas = body.split_evenly((1, fig.panels.len()));
    for (area, panel) in areas.iter().zip(&fig.panels) {
        panel::draw(area, panel)?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_font_parses() {
        assert!(plotters::style::register_font("odeflow-test", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.PNG")).unwrap(),
            Format::Png
        );
        assert_eq!(Format::from_path(Path::new("b.svg")).unwrap(), Format::Svg);
        let e = Format::from_path(Path::new("b.jpg")).unwrap_err();
        assert!(e.message().contains("b.jpg"), "{e}");
        assert!(Format::from_path(Path::new("noext")).is_err());
    }

    #[test]
    fn png_and_svg_are_written_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let panel = Panel::new("decay", "t", "y")
            .with(Series::line(
                "exp(-t)",
                vec![(0.0, 1.0), (1.0, 0.37), (2.0, 0.14)],
            ))
            .with(Series::markers("samples", vec![(0.5, 0.6), (1.5, 0.22)]));
        let log = Panel::new("log–log", "h", "error")
            .scales(Scale::Log, Scale::Log)
            .with(Series::line_markers(
                "rk4",
                vec![(0.1, 1e-5), (0.05, 6e-7), (0.0, 1.0)],
            ));
        let fig = Figure {
            title: "test figure".into(),
            panels: vec![panel, log],
        };
        let png = dir.path().join("sub/fig.png");
        save(&fig, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let svg = dir.path().join("fig.svg");
        save(&fig, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg") && text.contains("test figure") && text.contains("rk4"));
        // Only the two plots remain: no temporary files are left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn log_axes_need_a_positive_point() {
        let dir = tempfile::tempdir().unwrap();
        let fig = Figure {
            title: "bad".into(),
            panels: vec![Panel::new("p", "x", "y")
                .scales(Scale::Linear, Scale::Log)
                .with(Series::line("s", vec![(0.0, 0.0), (1.0, -1.0)]))],
        };
        let e = save(&fig, &dir.path().join("bad.png")).unwrap_err();
        assert!(e.message().contains("log"), "{e}");
    }
}
