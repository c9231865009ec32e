//! Plots of results directories, each drawn twice: SVG (for the report and for print) and a
//! 1000x600 PNG (for a quick look).
//!
//! - A run directory (`summary.json`, `timeseries.csv`, `latency.csv`) gets
//!   `throughput.svg/.png` and `latency_cdf.svg/.png` ([`plot_run`]).
//! - A comparison directory (`compare.csv`) gets `compare.svg/.png` ([`plot_compare`]).
//! - A sweep directory (`sweep.csv`) gets one figure per swept numeric parameter
//!   ([`plot_sweep`], names in [`sweep_plot_stem`]).
//!
//! [`plot_dir`] recognises the kind of directory and draws everything, including the run
//! directories nested in a comparison or a sweep. Text uses the DejaVu Sans font bundled in the
//! binary (no system font lookup). Every file is written with [`write_atomic`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::output::{
    self, files, load_latency, load_summary, load_table_csv, load_timeseries, write_atomic,
    LatencyPoint, OutputError, Summary, Table, TableKind, TimeseriesRow,
};

/// Width of every plot, pixels (PNG size and SVG view box).
pub const PLOT_WIDTH_PX: u32 = 1000;
/// Height of every plot, pixels.
pub const PLOT_HEIGHT_PX: u32 = 600;
/// Most lines drawn in one sweep panel; further groups are left out and the title says so.
pub const MAX_SERIES: usize = 12;
/// Most bars (protocols) drawn in a comparison figure.
pub const MAX_COMPARE_BARS: usize = 16;

/// The font family every plot uses; the bundled font is registered under this name.
const FONT: &str = "sans-serif";
/// DejaVu Sans, bundled so plots look the same everywhere (license in `cli/assets/`).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const TITLE_PX: u32 = 22;
const AXIS_DESC_PX: u32 = 17;
const TICK_PX: u32 = 16;
const LEGEND_PX: u32 = 15;

/// Categorical colours (Tableau 10), readable on white and distinct in print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Errors of drawing plots.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Reading the inputs or writing a file failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The bundled font could not be loaded.
    #[error("the bundled font cannot be loaded")]
    Font,
    /// Drawing failed.
    #[error("drawing {file}: {message}")]
    Draw {
        /// The file being drawn.
        file: PathBuf,
        /// What the drawing library said.
        message: String,
    },
    /// The input has nothing to plot.
    #[error("{file}: nothing to plot ({what})")]
    NoData {
        /// The input file.
        file: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The directory is neither a run, a comparison nor a sweep.
    #[error("{0} is not a results directory (no summary.json, compare.csv or sweep.csv)")]
    NotResultsDir(PathBuf),
}

/// Registers the bundled font once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

// ---------------------------------------------------------------------------------------------
// Number formatting
// ---------------------------------------------------------------------------------------------

/// Formats with a thousands separator and `decimals` decimals: `12345.6` → `12,345.6`.
pub fn thousands(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (s, None),
    };
    let mut out = String::with_capacity(int.len() + int.len() / 3 + 8);
    if v < 0.0 && s_nonzero(&int, frac.as_deref()) {
        out.push('-');
    }
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(&f);
    }
    out
}

fn s_nonzero(int: &str, frac: Option<&str>) -> bool {
    int.chars()
        .chain(frac.unwrap_or("").chars())
        .any(|c| c != '0')
}

/// Trims trailing zeros of a fixed-point string: `2.50` → `2.5`, `3.00` → `3`.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Short label for a tick or a bar: `1,500`, `25k`, `1.2M`, `0.25`, `0.001`.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    const SUFFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    if a >= 10_000.0 {
        for (scale, suffix) in SUFFIXES {
            if a >= scale {
                let x = v / scale;
                let digits = if x.abs() >= 100.0 {
                    0
                } else if x.abs() >= 10.0 {
                    1
                } else {
                    2
                };
                return format!("{}{suffix}", trim_zeros(format!("{x:.digits$}")));
            }
        }
    }
    if a >= 100.0 || a == 0.0 {
        return thousands(v, 0);
    }
    let digits = if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // three significant digits below 1
        (2 - a.log10().floor() as i32).clamp(2, 9) as usize
    };
    trim_zeros(format!("{v:.digits$}"))
}

/// A tick label formatter for an axis whose largest value is `axis_max`: when the axis reaches
/// 10,000 every tick uses an SI suffix (`5k`, `10k`), otherwise thousands separators (`5,000`),
/// so the ticks of one axis are written alike.
fn tick_format(axis_max: f64) -> impl Fn(&f64) -> String {
    let si = axis_max.abs() >= 10_000.0;
    move |v: &f64| {
        if si && v.abs() >= 1_000.0 {
            let (scale, suffix) = if v.abs() >= 1e9 {
                (1e9, "G")
            } else if v.abs() >= 1e6 {
                (1e6, "M")
            } else {
                (1e3, "k")
            };
            format!("{}{suffix}", trim_zeros(format!("{:.2}", v / scale)))
        } else {
            short_number(*v)
        }
    }
}

/// A tick label formatter for a log axis from `lo` to `hi`: labels at 1, 2 and 5 times a power
/// of ten (only at powers of ten when the axis spans more than three decades); the other ticks
/// stay unlabelled so labels never run into each other.
fn log_tick_format(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let decades = (hi / lo.max(f64::MIN_POSITIVE)).log10();
    let plain = tick_format(hi);
    // plotters' log axis yields each power of ten twice (as the last minor tick of a decade
    // and the first major tick of the next); label it once.
    let last = std::cell::Cell::new(None::<f64>);
    move |v: &f64| {
        if *v <= 0.0 || last.replace(Some(*v)) == Some(*v) {
            return String::new();
        }
        let mantissa = v / 10f64.powf(v.log10().floor());
        let near = |m: f64| (mantissa - m).abs() < 1e-6 * m || (mantissa - 10.0 * m).abs() < 1e-5;
        let show = if decades > 3.0 {
            near(1.0)
        } else {
            near(1.0) || near(2.0) || near(5.0)
        };
        if show {
            plain(v)
        } else {
            String::new()
        }
    }
}

/// A latency for a label: `850 ms`, `12.5 ms`, `1.2 s`, `3.4 min`.
pub fn latency_label(ms: f64) -> String {
    if ms >= 120_000.0 {
        format!("{} min", short_number(ms / 60_000.0))
    } else if ms >= 1_000.0 {
        format!("{} s", short_number(ms / 1_000.0))
    } else {
        format!("{} ms", short_number(ms))
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering to SVG and PNG
// ---------------------------------------------------------------------------------------------

type DrawResult = Result<(), String>;

/// Converts any drawing error to its message.
trait Ctx<T> {
    fn d(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Debug> Ctx<T> for Result<T, E> {
    fn d(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// A figure that can be drawn on any backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Draws `fig` as `dir/<stem>.svg` and `dir/<stem>.png`; returns both paths.
fn render(dir: &Path, stem: &str, fig: &impl Figure) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    let svg_path = dir.join(format!("{stem}.svg"));
    let png_path = dir.join(format!("{stem}.png"));
    let size = (PLOT_WIDTH_PX, PLOT_HEIGHT_PX);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        fig.draw(&root)
            .and_then(|_| root.present().d())
            .map_err(|message| PlotError::Draw {
                file: svg_path.clone(),
                message,
            })?;
    }
    let mut pixels = vec![0u8; (PLOT_WIDTH_PX * PLOT_HEIGHT_PX * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        fig.draw(&root)
            .and_then(|_| root.present().d())
            .map_err(|message| PlotError::Draw {
                file: png_path.clone(),
                message,
            })?;
    }
    let png = encode_png(&pixels).map_err(|message| PlotError::Draw {
        file: png_path.clone(),
        message,
    })?;
    write_atomic(&svg_path, svg.as_bytes())?;
    write_atomic(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut out = Vec::with_capacity(rgb.len() / 8);
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, PLOT_WIDTH_PX, PLOT_HEIGHT_PX, image::ColorType::Rgb8)
        .d()?;
    Ok(out)
}

fn font(px: u32) -> TextStyle<'static> {
    (FONT, px).into_font().color(&BLACK)
}

/// Light grey grid, readable ticks and axis descriptions.
macro_rules! style_mesh {
    ($mesh:expr) => {
        $mesh
            .label_style(font(TICK_PX))
            .axis_desc_style(font(AXIS_DESC_PX))
            .bold_line_style(RGBColor(210, 210, 210))
            .light_line_style(RGBColor(247, 247, 247))
    };
}

/// A legend box with a translucent white background and a thin border.
macro_rules! style_legend {
    ($labels:expr, $pos:expr) => {
        $labels
            .position($pos)
            .margin(12)
            .label_font(font(LEGEND_PX))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
    };
}

/// The largest 1, 2 or 5 times a power of ten at or below `v` (> 0).
fn nice_log_floor(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * p)
        .find(|x| *x <= v * (1.0 + 1e-9))
        .unwrap_or(p)
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (> 0).
fn nice_log_ceil(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|x| *x >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// Upper end of a linear axis that leaves `headroom` (fraction) above the data, at least 1.
fn upper(max: f64, headroom: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * (1.0 + headroom)
    } else {
        1.0
    }
}

// ---------------------------------------------------------------------------------------------
// Run plots
// ---------------------------------------------------------------------------------------------

struct ThroughputFig {
    title: String,
    rows: Vec<TimeseriesRow>,
}

impl Figure for ThroughputFig {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).d()?;
        let x_max = self
            .rows
            .iter()
            .map(|r| r.t_s + 1.0)
            .fold(1.0_f64, f64::max);
        let y_data = self
            .rows
            .iter()
            .map(|r| r.offered_tps.max(r.committed_tps))
            .fold(0.0_f64, f64::max);
        let y_max = upper(y_data, 0.35);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(TITLE_PX))
            .margin(20)
            .margin_right(35)
            .x_label_area_size(55)
            .y_label_area_size(85)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .d()?;
        style_mesh!(chart.configure_mesh())
            .x_desc("simulated time (s)")
            .y_desc("transactions per second (tx/s)")
            .x_label_formatter(&tick_format(x_max))
            .y_label_formatter(&tick_format(y_max))
            .draw()
            .d()?;

        let warm_end = self
            .rows
            .iter()
            .filter(|r| r.warmup)
            .map(|r| r.t_s + 1.0)
            .fold(f64::NAN, f64::max);
        if warm_end.is_finite() {
            let shade = RGBColor(120, 120, 120).mix(0.15).filled();
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, 0.0), (warm_end, y_max)],
                    shade,
                )))
                .d()?
                .label(format!(
                    "warm-up (first {} s, not measured)",
                    short_number(warm_end)
                ))
                .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 20, y + 7)], shade));
        }

        let views: Vec<(f64, u64)> = self
            .rows
            .iter()
            .filter(|r| r.view_changes > 0)
            .map(|r| (r.t_s + 0.5, r.view_changes))
            .collect();
        if !views.is_empty() {
            let total: u64 = views.iter().map(|v| v.1).sum();
            let style = color(4).mix(0.8).stroke_width(1);
            chart
                .draw_series(
                    views
                        .iter()
                        .map(|&(t, _)| PathElement::new(vec![(t, 0.0), (t, y_max / 1.35)], style)),
                )
                .d()?
                .label(format!(
                    "view change ({} in total)",
                    thousands(total as f64, 0)
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x + 10, y - 7), (x + 10, y + 7)], style)
                });
        }

        let offered = color(1).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                self.rows.iter().map(|r| (r.t_s + 0.5, r.offered_tps)),
                8,
                5,
                offered,
            ))
            .d()?
            .label("offered tx/s")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], offered));

        let committed = color(0).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                self.rows.iter().map(|r| (r.t_s + 0.5, r.committed_tps)),
                committed,
            ))
            .d()?
            .label("committed tx/s")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], committed));

        if self.rows.iter().any(|r| r.aborted_tps > 0.0) {
            let aborted = color(3).stroke_width(1);
            chart
                .draw_series(LineSeries::new(
                    self.rows.iter().map(|r| (r.t_s + 0.5, r.aborted_tps)),
                    aborted,
                ))
                .d()?
                .label("aborted tx/s (cross-shard)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], aborted));
        }

        style_legend!(
            chart.configure_series_labels(),
            SeriesLabelPosition::UpperRight
        )
        .draw()
        .d()?;
        Ok(())
    }
}

struct CdfFig {
    title: String,
    points: Vec<LatencyPoint>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Figure for CdfFig {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).d()?;
        let lo_data = self
            .points
            .iter()
            .map(|p| p.latency_ms)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let hi_data = self.points.iter().map(|p| p.latency_ms).fold(0.0, f64::max);
        let empty = !lo_data.is_finite() || hi_data <= 0.0;
        let (lo, hi) = if empty {
            (1.0, 1_000.0)
        } else {
            let lo = nice_log_floor(lo_data / 1.2);
            (lo, nice_log_ceil(hi_data * 1.2).max(lo * 10.0))
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(TITLE_PX))
            .margin(20)
            .margin_right(35)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..100.0)
            .d()?;
        style_mesh!(chart.configure_mesh())
            .x_desc("commit latency (ms, log scale)")
            .y_desc("committed transactions (%)")
            .x_label_formatter(&log_tick_format(lo, hi))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .d()?;
        if empty {
            chart
                .draw_series(std::iter::once(Text::new(
                    "no committed transactions after warm-up",
                    (30.0, 50.0),
                    font(AXIS_DESC_PX + 2),
                )))
                .d()?;
            return Ok(());
        }
        let line = color(0).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                self.points
                    .iter()
                    .map(|p| (p.latency_ms.max(lo), p.percentile)),
                line,
            ))
            .d()?
            .label("cumulative share of committed tx")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
        for (i, (name, pct, value)) in [("p50", 50.0, self.p50_ms), ("p99", 99.0, self.p99_ms)]
            .into_iter()
            .enumerate()
        {
            let Some(v) = value.filter(|v| *v > 0.0) else {
                continue;
            };
            let style = color(1 + 2 * i).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new([(v, 0.0), (v, pct)], 6, 4, style))
                .d()?
                .label(format!("{name} = {}", latency_label(v)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart
                .draw_series(std::iter::once(Circle::new((v, pct), 5, style.filled())))
                .d()?;
        }
        style_legend!(
            chart.configure_series_labels(),
            SeriesLabelPosition::LowerRight
        )
        .draw()
        .d()?;
        Ok(())
    }
}

fn run_title(what: &str, s: Option<&Summary>) -> String {
    match s {
        Some(s) => format!(
            "{what} — {} ({}, {} shard{}, {} nodes, seed {})",
            s.scenario,
            s.consensus,
            s.shards,
            if s.shards == 1 { "" } else { "s" },
            s.nodes,
            s.seed
        ),
        None => what.to_string(),
    }
}

/// Draws the plots of a run directory: `throughput.svg/.png` from `timeseries.csv` and
/// `latency_cdf.svg/.png` from `latency.csv` (titles from `summary.json` when present).
/// Returns the files written.
pub fn plot_run(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, PlotError> {
    let dir = dir.as_ref();
    let summary = if dir.join(files::SUMMARY).is_file() {
        Some(load_summary(dir)?)
    } else {
        None
    };
    let rows = load_timeseries(dir)?;
    if rows.is_empty() {
        return Err(PlotError::NoData {
            file: dir.join(files::TIMESERIES),
            what: "no rows".into(),
        });
    }
    let mut written = render(
        dir,
        "throughput",
        &ThroughputFig {
            title: run_title("Throughput", summary.as_ref()),
            rows,
        },
    )?;

    let mut points = load_latency(dir)?;
    points.sort_by(|a, b| a.percentile.total_cmp(&b.percentile));
    // Nothing committed (or every latency 0): the figure says so instead of failing the run.
    if !points.iter().any(|p| p.latency_ms > 0.0) {
        points.clear();
    }
    let at = |pct: f64| {
        points
            .iter()
            .find(|p| (p.percentile - pct).abs() < 1e-9)
            .map(|p| p.latency_ms)
    };
    let fig = CdfFig {
        title: run_title("Commit latency CDF", summary.as_ref()),
        p50_ms: at(50.0).or(summary.as_ref().and_then(|s| s.latency_ms.p50)),
        p99_ms: at(99.0).or(summary.as_ref().and_then(|s| s.latency_ms.p99)),
        points,
    };
    written.extend(render(dir, "latency_cdf", &fig)?);
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

struct CompareFig {
    title: String,
    names: Vec<String>,
    throughput_tps: Vec<f64>,
    offered_tps: Vec<f64>,
    p50_ms: Vec<Option<f64>>,
    p99_ms: Vec<Option<f64>>,
}

fn bar_x_range(n: usize) -> std::ops::Range<f64> {
    -0.5..(n as f64 - 0.5)
}

impl Figure for CompareFig {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).d()?;
        let root = root.titled(&self.title, font(TITLE_PX)).d()?;
        let (left, right) = root.split_horizontally(PLOT_WIDTH_PX / 2);
        let n = self.names.len();
        let names = &self.names;
        let name_of = move |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        };
        let half = 0.38;

        // Left: offered and committed throughput.
        let y_max = upper(
            self.throughput_tps
                .iter()
                .chain(&self.offered_tps)
                .copied()
                .fold(0.0, f64::max),
            0.3,
        );
        let mut chart = ChartBuilder::on(&left)
            .margin(15)
            .caption("Throughput", font(AXIS_DESC_PX + 1))
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(bar_x_range(n), 0.0..y_max)
            .d()?;
        style_mesh!(chart.configure_mesh())
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_desc("protocol")
            .y_desc("transactions per second (tx/s)")
            .x_label_formatter(&name_of)
            .y_label_formatter(&tick_format(y_max))
            .draw()
            .d()?;
        let offered = RGBColor(200, 200, 200).filled();
        chart
            .draw_series((0..n).map(|i| {
                let x = i as f64;
                Rectangle::new([(x - half, 0.0), (x, self.offered_tps[i])], offered)
            }))
            .d()?
            .label("offered")
            .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 20, y + 7)], offered));
        let committed = color(0).filled();
        chart
            .draw_series((0..n).map(|i| {
                let x = i as f64;
                Rectangle::new([(x, 0.0), (x + half, self.throughput_tps[i])], committed)
            }))
            .d()?
            .label("committed")
            .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 20, y + 7)], committed));
        chart
            .draw_series((0..n).map(|i| {
                let x = i as f64 + half / 2.0;
                Text::new(
                    short_number(self.throughput_tps[i]),
                    (x, self.throughput_tps[i]),
                    font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))
            .d()?;
        style_legend!(
            chart.configure_series_labels(),
            SeriesLabelPosition::UpperRight
        )
        .draw()
        .d()?;

        // Right: latency percentiles, log scale (protocols differ by orders of magnitude).
        let present: Vec<f64> = self
            .p50_ms
            .iter()
            .chain(&self.p99_ms)
            .flatten()
            .copied()
            .filter(|v| *v > 0.0)
            .collect();
        let lo_data = present.iter().copied().fold(f64::INFINITY, f64::min);
        let hi_data = present.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if present.is_empty() {
            (1.0, 10.0)
        } else {
            let lo = 10f64.powf((lo_data / 1.5).log10().floor());
            // headroom for the legend and the value labels
            let hi = 10f64.powf((hi_data * 8.0).log10().ceil());
            (lo, hi.max(lo * 100.0))
        };
        let mut chart = ChartBuilder::on(&right)
            .margin(15)
            .caption("Commit latency", font(AXIS_DESC_PX + 1))
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(bar_x_range(n), (lo..hi).log_scale())
            .d()?;
        style_mesh!(chart.configure_mesh())
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_desc("protocol")
            .y_desc("latency (ms, log scale)")
            .x_label_formatter(&name_of)
            .y_label_formatter(&log_tick_format(lo, hi))
            .draw()
            .d()?;
        for (k, (label, values)) in [("p50", &self.p50_ms), ("p99", &self.p99_ms)]
            .into_iter()
            .enumerate()
        {
            let style = color(k * 2 + 1).filled();
            let offset = if k == 0 { -half } else { 0.0 };
            let bars: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.filter(|v| *v > 0.0).map(|v| (i as f64 + offset, v)))
                .collect();
            chart
                .draw_series(
                    bars.iter()
                        .map(|&(x, v)| Rectangle::new([(x, lo), (x + half, v)], style)),
                )
                .d()?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 20, y + 7)], style));
            chart
                .draw_series(bars.iter().map(|&(x, v)| {
                    Text::new(
                        short_number(v),
                        (x + half / 2.0, v),
                        font(12).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
                }))
                .d()?;
        }
        style_legend!(
            chart.configure_series_labels(),
            SeriesLabelPosition::UpperRight
        )
        .draw()
        .d()?;
        Ok(())
    }
}

fn failed_note(failed: usize, unit: &str) -> String {
    match failed {
        0 => String::new(),
        1 => format!(" (1 failed {unit} skipped)"),
        n => format!(" ({n} failed {unit}s skipped)"),
    }
}

/// Draws `compare.svg/.png` from `DIR/compare.csv`: throughput bars (offered and committed)
/// and p50/p99 latency bars, one group per protocol. Failed protocols are skipped and counted
/// in the title. Returns the files written.
pub fn plot_compare(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, PlotError> {
    let dir = dir.as_ref();
    let file = dir.join(files::COMPARE);
    let table = load_table_csv(&file)?;
    let ok: Vec<_> = table.rows.iter().filter(|r| table.is_ok(r)).collect();
    let failed = table.rows.len() - ok.len();
    if ok.is_empty() {
        return Err(PlotError::NoData {
            file,
            what: "no protocol finished".into(),
        });
    }
    let shown = ok.len().min(MAX_COMPARE_BARS);
    let ok = &ok[..shown];
    let scenario = compare_scenario(dir, &table);
    let mut title = match scenario {
        Some(s) => format!("Protocol comparison — {s}"),
        None => "Protocol comparison".to_string(),
    };
    title.push_str(&failed_note(failed, "protocol"));
    let fig = CompareFig {
        title,
        names: ok
            .iter()
            .map(|r| {
                table
                    .cell(r, "protocol")
                    .map(|c| c.to_text())
                    .unwrap_or_default()
            })
            .collect(),
        throughput_tps: ok
            .iter()
            .map(|r| table.num(r, "throughput_tps").unwrap_or(0.0))
            .collect(),
        offered_tps: ok
            .iter()
            .map(|r| table.num(r, "offered_tps").unwrap_or(0.0))
            .collect(),
        p50_ms: ok.iter().map(|r| table.num(r, "latency_ms_p50")).collect(),
        p99_ms: ok.iter().map(|r| table.num(r, "latency_ms_p99")).collect(),
    };
    render(dir, "compare", &fig)
}

/// The scenario name and seed of a comparison, from the first protocol directory that has a
/// summary.
fn compare_scenario(dir: &Path, table: &Table) -> Option<String> {
    table.rows.iter().find_map(|r| {
        let name = table.cell(r, "protocol")?.to_text();
        let sub = dir.join(safe_component(&name)?);
        let s = load_summary(&sub).ok()?;
        Some(format!("{}, seed {}", s.scenario, s.seed))
    })
}

/// `name` if it is a plain single path component (used to find per-protocol directories).
fn safe_component(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.contains('\0');
    ok.then_some(name)
}

// ---------------------------------------------------------------------------------------------
// Sweeps
// ---------------------------------------------------------------------------------------------

struct Series {
    label: String,
    color: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

struct Panel {
    caption: String,
    y_desc: String,
    series: Vec<Series>,
    /// Draw the line y = x ("all offered load committed").
    identity: bool,
    /// Use a log y axis when the values span more than [`LOG_AXIS_SPAN`].
    log_when_wide: bool,
}

/// Ratio of largest to smallest positive value above which a latency panel uses a log axis.
const LOG_AXIS_SPAN: f64 = 30.0;

struct SweepFig {
    title: String,
    x_desc: String,
    left: Panel,
    right: Panel,
}

impl SweepFig {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> DrawResult {
        let all = || panel.series.iter().flat_map(|s| s.points.iter());
        let x_lo = all().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let x_hi = all().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let (x_lo, x_hi) = if !x_lo.is_finite() {
            (0.0, 1.0)
        } else if x_hi - x_lo <= 0.0 {
            (
                x_lo - 0.5 * x_lo.abs().max(1.0),
                x_hi + 0.5 * x_hi.abs().max(1.0),
            )
        } else {
            let pad = (x_hi - x_lo) * 0.05;
            (
                (x_lo - pad).max(if x_lo >= 0.0 { 0.0 } else { f64::MIN }),
                x_hi + pad,
            )
        };
        let y_max = all().map(|p| p.1).fold(0.0, f64::max);
        let y_min_pos = all()
            .map(|p| p.1)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        // Latencies that span more than LOG_AXIS_SPAN (say 150 ms anchored vs 6 s on-chain)
        // go on a log axis, so the low line is not flattened onto zero.
        let log_y = panel.log_when_wide
            && y_min_pos.is_finite()
            && y_max / y_min_pos > LOG_AXIS_SPAN
            && all().all(|p| p.1 > 0.0);
        // Draws mesh, identity line, series and legend on a chart of either y scale.
        macro_rules! finish {
            ($chart:expr, $y_desc:expr, $y_fmt:expr, $y_hi:expr) => {{
                let mut chart = $chart;
                let y_hi: f64 = $y_hi;
                style_mesh!(chart.configure_mesh())
                    .x_desc(self.x_desc.as_str())
                    .y_desc($y_desc)
                    .x_labels(8)
                    .x_label_formatter(&tick_format(x_hi))
                    .y_label_formatter($y_fmt)
                    .draw()
                    .d()?;
                if panel.identity {
                    let style = RGBColor(150, 150, 150).stroke_width(1);
                    let end = x_hi.min(y_hi);
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(x_lo.max(0.0), x_lo.max(0.0)), (end, end)],
                            4,
                            4,
                            style,
                        ))
                        .d()?
                        .label("ideal (all offered load committed)")
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
                for s in &panel.series {
                    let style = s.color.stroke_width(2);
                    let dashed = s.dashed;
                    let anno = if dashed {
                        chart
                            .draw_series(DashedLineSeries::new(
                                s.points.iter().copied(),
                                7,
                                5,
                                style,
                            ))
                            .d()?
                    } else {
                        chart
                            .draw_series(LineSeries::new(s.points.iter().copied(), style))
                            .d()?
                    };
                    anno.label(&s.label).legend(move |(x, y)| {
                        if dashed {
                            PathElement::new(vec![(x, y), (x + 7, y)], style)
                        } else {
                            PathElement::new(vec![(x, y), (x + 20, y)], style)
                        }
                    });
                    chart
                        .draw_series(
                            s.points
                                .iter()
                                .map(|&p| Circle::new(p, 4, s.color.filled())),
                        )
                        .d()?;
                }
                style_legend!(
                    chart.configure_series_labels(),
                    SeriesLabelPosition::UpperLeft
                )
                .draw()
                .d()?;
            }};
        }
        if log_y {
            let lo = nice_log_floor(y_min_pos / 1.2);
            // headroom for the legend in the upper left
            let hi = nice_log_ceil(y_max * 8.0).max(lo * 10.0);
            let chart = ChartBuilder::on(area)
                .margin(15)
                .caption(&panel.caption, font(AXIS_DESC_PX + 1))
                .x_label_area_size(50)
                .y_label_area_size(75)
                .build_cartesian_2d(x_lo..x_hi, (lo..hi).log_scale())
                .d()?;
            let y_desc = match panel.y_desc.strip_suffix(')') {
                Some(head) => format!("{head}, log scale)"),
                None => format!("{} (log scale)", panel.y_desc),
            };
            finish!(chart, y_desc.as_str(), &log_tick_format(lo, hi), hi);
        } else {
            let mut y_hi = y_max;
            if panel.identity {
                y_hi = y_hi.max(x_hi.min(y_hi * 1.5));
            }
            let y_hi = upper(y_hi, 0.35);
            let chart = ChartBuilder::on(area)
                .margin(15)
                .caption(&panel.caption, font(AXIS_DESC_PX + 1))
                .x_label_area_size(50)
                .y_label_area_size(75)
                .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
                .d()?;
            finish!(chart, panel.y_desc.as_str(), &tick_format(y_hi), y_hi);
        }
        Ok(())
    }
}

impl Figure for SweepFig {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).d()?;
        let root = root.titled(&self.title, font(TITLE_PX)).d()?;
        let (left, right) = root.split_horizontally(PLOT_WIDTH_PX / 2);
        self.draw_panel(&left, &self.left)?;
        self.draw_panel(&right, &self.right)
    }
}

/// File stem of the sweep figure for a swept parameter: `throughput_vs_shards`,
/// `latency_vs_offered_load`, `abort_rate_vs_cross_shard_fraction`,
/// `abort_rate_vs_hot_payer_fraction` (`workload.payment.hot_payer_fraction`), otherwise
/// `throughput_latency_vs_<param>` (characters other than ASCII letters, digits, `-` and `_`
/// become `_`).
pub fn sweep_plot_stem(param: &str) -> String {
    match param {
        "shards" => "throughput_vs_shards".into(),
        "offered_tps" => "latency_vs_offered_load".into(),
        "cross_shard_fraction" => "abort_rate_vs_cross_shard_fraction".into(),
        "workload.payment.hot_payer_fraction" => "abort_rate_vs_hot_payer_fraction".into(),
        other => {
            let safe: String = other
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("throughput_latency_vs_{safe}")
        }
    }
}

/// File stems of further sweep figures for a swept parameter: for `cross_shard_fraction`,
/// `throughput_vs_cross_shard_fraction` (throughput; cross-shard vs single-shard latency).
pub fn extra_sweep_plot_stems(param: &str) -> Vec<String> {
    match param {
        "cross_shard_fraction" => vec!["throughput_vs_cross_shard_fraction".into()],
        _ => Vec::new(),
    }
}

fn param_desc(param: &str) -> String {
    match param {
        "shards" => "shards".into(),
        "offered_tps" => "offered load (tx/s)".into(),
        "cross_shard_fraction" => "cross-shard fraction of transactions".into(),
        "workload.payment.hot_payer_fraction" => "share of payments made by the hot payer".into(),
        "nodes_per_shard" => "nodes per shard".into(),
        "block_max_tx" => "block size limit (tx)".into(),
        other => other.to_string(),
    }
}

/// Draws one figure per swept numeric parameter of `DIR/sweep.csv` (see [`sweep_plot_stem`]):
/// left panel throughput (or achieved load, or abort rate), right panel p50/p99 latency, one line
/// per combination of the other varied parameters (e.g. per protocol). Failed points are skipped
/// and counted in the title. Returns the files written (none if no numeric parameter varies).
pub fn plot_sweep(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, PlotError> {
    let dir = dir.as_ref();
    let file = dir.join(files::SWEEP);
    let table = load_table_csv(&file)?;
    if table.kind != TableKind::Sweep {
        return Err(PlotError::NoData {
            file,
            what: "not a sweep table (first column is not `point`)".into(),
        });
    }
    let ok: Vec<_> = table.rows.iter().filter(|r| table.is_ok(r)).collect();
    let failed = table.rows.len() - ok.len();
    let params = table.param_columns().to_vec();
    // Parameters that take at least two values among the finished points.
    let varying: Vec<&String> = params
        .iter()
        .filter(|p| {
            let mut vals: Vec<String> = ok
                .iter()
                .map(|r| table.cell(r, p).map(|c| c.to_text()).unwrap_or_default())
                .collect();
            vals.sort();
            vals.dedup();
            vals.len() >= 2
        })
        .collect();
    let mut written = Vec::new();
    for param in &varying {
        let numeric = ok.iter().all(|r| table.num(r, param).is_some());
        if !numeric {
            continue;
        }
        // Group lines by the other varying parameters, except those that are a function of
        // this one (a `[[points]]` list that scales, say, clients with shards): grouping by
        // them would give every point its own line.
        let determined = |o: &String| {
            let mut pairs: Vec<(String, String)> = ok
                .iter()
                .map(|r| {
                    let cell =
                        |k: &String| table.cell(r, k).map(|c| c.to_text()).unwrap_or_default();
                    (cell(param), cell(o))
                })
                .collect();
            pairs.sort();
            pairs.dedup();
            pairs.windows(2).all(|w| w[0].0 != w[1].0)
        };
        let others: Vec<&String> = varying
            .iter()
            .copied()
            .filter(|o| o != param && !determined(o))
            .collect();
        // group label -> rows
        let mut groups: BTreeMap<String, Vec<&output::TableRow>> = BTreeMap::new();
        for r in &ok {
            let label = others
                .iter()
                .map(|o| {
                    let v = table.cell(r, o).map(|c| c.to_text()).unwrap_or_default();
                    if o.as_str() == "consensus" || o.as_str() == "protocol" {
                        v
                    } else {
                        // `workload.imaging.mode=onchain` reads as `mode=onchain` in a legend
                        let short = o.rsplit('.').next().unwrap_or(o.as_str());
                        format!("{short}={v}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            groups.entry(label).or_default().push(r);
        }
        let group_count = groups.len();
        let per_group_series = 2; // two lines per group in the latency panel
        let max_groups = (MAX_SERIES / per_group_series).max(1);
        let groups: Vec<(String, Vec<&output::TableRow>)> =
            groups.into_iter().take(max_groups).collect();

        let series_of = |rows: &[&output::TableRow], col: &str, scale: f64| -> Vec<(f64, f64)> {
            // A point that committed nothing has no latency (its summary says 0): leave it out
            // of the latency panel rather than draw a misleading 0 ms.
            let is_latency = col.starts_with("latency_ms");
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| !is_latency || table.num(r, "committed_tx").unwrap_or(1.0) > 0.0)
                .filter_map(|r| Some((table.num(r, param)?, table.num(r, col)? * scale)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        };
        let name = |g: &str, what: &str| {
            if g.is_empty() {
                what.to_string()
            } else {
                format!("{g} {what}")
            }
        };
        let (left_col, left_scale, left_caption, left_y, left_what) = match param.as_str() {
            "cross_shard_fraction" | "workload.payment.hot_payer_fraction" => (
                "cross_shard_abort_rate",
                100.0,
                "Cross-shard abort rate",
                "aborted cross-shard tx (%)",
                "abort rate",
            ),
            "offered_tps" => (
                "throughput_tps",
                1.0,
                "Achieved vs offered load",
                "committed tx/s",
                "committed",
            ),
            _ => (
                "throughput_tps",
                1.0,
                "Throughput",
                "committed tx/s",
                "throughput",
            ),
        };
        let mut left = Panel {
            caption: left_caption.into(),
            y_desc: left_y.into(),
            series: Vec::new(),
            identity: param.as_str() == "offered_tps",
            log_when_wide: false,
        };
        let mut right = Panel {
            caption: "Commit latency".into(),
            y_desc: "latency (ms)".into(),
            series: Vec::new(),
            identity: false,
            log_when_wide: true,
        };
        for (i, (g, rows)) in groups.iter().enumerate() {
            left.series.push(Series {
                label: if g.is_empty() {
                    left_what.to_string()
                } else {
                    g.clone()
                },
                color: color(i),
                dashed: false,
                points: series_of(rows, left_col, left_scale),
            });
            right.series.push(Series {
                label: name(g, "p99"),
                color: color(i),
                dashed: false,
                points: series_of(rows, "latency_ms_p99", 1.0),
            });
            right.series.push(Series {
                label: name(g, "p50"),
                color: color(i),
                dashed: true,
                points: series_of(rows, "latency_ms_p50", 1.0),
            });
        }
        let mut title = match param.as_str() {
            "shards" => "Throughput and latency vs shards".to_string(),
            "offered_tps" => "Latency vs offered load".to_string(),
            "cross_shard_fraction" => "Abort rate and latency vs cross-shard fraction".to_string(),
            "workload.payment.hot_payer_fraction" => {
                "Abort rate and latency vs hot payer share".to_string()
            }
            other => format!("Throughput and latency vs {other}"),
        };
        title.push_str(&format!(" — {} points", ok.len()));
        title.push_str(&failed_note(failed, "point"));
        if group_count > groups.len() {
            title.push_str(&format!(" [first {} of {group_count} lines]", groups.len()));
        }
        let fig = SweepFig {
            title,
            x_desc: param_desc(param),
            left,
            right,
        };
        written.extend(render(dir, &sweep_plot_stem(param), &fig)?);
        let split = table
            .header
            .iter()
            .any(|h| h == "cross_shard_latency_ms_p50");
        if param.as_str() == "cross_shard_fraction" && split {
            // Throughput, and the latency of cross-shard vs single-shard transactions.
            let mut left = Panel {
                caption: "Throughput".into(),
                y_desc: "committed tx/s".into(),
                series: Vec::new(),
                identity: false,
                log_when_wide: false,
            };
            let mut right = Panel {
                caption: "Commit latency: cross-shard vs single-shard".into(),
                y_desc: "latency (ms)".into(),
                series: Vec::new(),
                identity: false,
                log_when_wide: true,
            };
            for (i, (g, rows)) in groups.iter().enumerate() {
                left.series.push(Series {
                    label: if g.is_empty() {
                        "throughput".to_string()
                    } else {
                        g.clone()
                    },
                    color: color(i),
                    dashed: false,
                    points: series_of(rows, "throughput_tps", 1.0),
                });
                for (k, (col, what, dashed)) in [
                    ("cross_shard_latency_ms_p50", "cross-shard p50", false),
                    ("single_shard_latency_ms_p50", "single-shard p50", true),
                ]
                .into_iter()
                .enumerate()
                {
                    // Points where no transaction of that class committed report 0: skip them.
                    let pts: Vec<(f64, f64)> = series_of(rows, col, 1.0)
                        .into_iter()
                        .filter(|p| p.1 > 0.0)
                        .collect();
                    right.series.push(Series {
                        label: name(g, what),
                        color: color(2 * i + k),
                        dashed,
                        points: pts,
                    });
                }
            }
            let mut title = format!(
                "Throughput and cross- vs single-shard latency — {} points",
                ok.len()
            );
            title.push_str(&failed_note(failed, "point"));
            let fig = SweepFig {
                title,
                x_desc: param_desc(param),
                left,
                right,
            };
            for stem in extra_sweep_plot_stems(param) {
                written.extend(render(dir, &stem, &fig)?);
            }
        }
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------------------------

/// What kind of results directory a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// A single run (`summary.json`).
    Run,
    /// A protocol comparison (`compare.csv`).
    Compare,
    /// A parameter sweep (`sweep.csv`).
    Sweep,
}

/// Recognises a results directory: `compare.csv` → comparison, `sweep.csv` → sweep,
/// `summary.json` → run.
pub fn detect_dir(dir: impl AsRef<Path>) -> Option<DirKind> {
    let dir = dir.as_ref();
    if dir.join(files::COMPARE).is_file() {
        Some(DirKind::Compare)
    } else if dir.join(files::SWEEP).is_file() {
        Some(DirKind::Sweep)
    } else if dir.join(files::SUMMARY).is_file() {
        Some(DirKind::Run)
    } else {
        None
    }
}

/// The run directories nested in a comparison (`DIR/<protocol>/`) or a sweep
/// (`DIR/points/<n>/`) that hold a `summary.json`, in table order.
pub fn nested_run_dirs(dir: impl AsRef<Path>, kind: DirKind) -> Result<Vec<PathBuf>, PlotError> {
    let dir = dir.as_ref();
    let (file, sub): (&str, Option<&str>) = match kind {
        DirKind::Run => return Ok(Vec::new()),
        DirKind::Compare => (files::COMPARE, None),
        DirKind::Sweep => (files::SWEEP, Some(files::POINTS_DIR)),
    };
    let table = load_table_csv(dir.join(file))?;
    let mut out = Vec::new();
    for r in &table.rows {
        let name = r.cells.first().map(|c| c.to_text()).unwrap_or_default();
        let Some(name) = safe_component(&name) else {
            continue;
        };
        let p = match sub {
            Some(s) => dir.join(s).join(name),
            None => dir.join(name),
        };
        if p.join(files::SUMMARY).is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

/// Recognises the directory (run, comparison or sweep) and draws all its plots, including those
/// of the run directories nested in a comparison or a sweep. Returns every file written.
pub fn plot_dir(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, PlotError> {
    let dir = dir.as_ref();
    let kind = detect_dir(dir).ok_or_else(|| PlotError::NotResultsDir(dir.to_path_buf()))?;
    let mut written = Vec::new();
    for sub in nested_run_dirs(dir, kind)? {
        written.extend(plot_run(&sub)?);
    }
    match kind {
        DirKind::Run => written.extend(plot_run(dir)?),
        DirKind::Compare => written.extend(plot_compare(dir)?),
        DirKind::Sweep => written.extend(plot_sweep(dir)?),
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(1234567.891, 1), "1,234,567.9");
        assert_eq!(thousands(-1234.0, 0), "-1,234");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(short_number(1500.0), "1,500");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(1_250_000.0), "1.25M");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(0.001234), "0.00123");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(latency_label(850.0), "850 ms");
        assert_eq!(latency_label(1500.0), "1.5 s");
        assert_eq!(latency_label(600_000.0), "10 min");
    }

    #[test]
    fn stems() {
        assert_eq!(sweep_plot_stem("shards"), "throughput_vs_shards");
        assert_eq!(
            sweep_plot_stem("workload.x/y"),
            "throughput_latency_vs_workload_x_y"
        );
    }
}
