//! The plots of a run, as PNG and SVG: throughput (ops/s and MB/s) and latency percentiles
//! against value size, one line per operation. Drawn with plotters and the DejaVu Sans font
//! the crate vendors (`assets/DejaVuSans.ttf`), so nothing depends on the system's fonts.
//!
//! The value size axis is a log2 scale whose ticks are the sizes the run measured
//! ("16 B", "4 KiB", ...). Degenerate runs (one size, no phases, phases without requests)
//! still draw: the ranges are widened and a note says what is missing.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;

use crate::files::client_tag;
use crate::results::{Phase, RunResults};
use crate::values::show_size;

/// Size in pixels of every image.
pub const SIZE: (u32, u32) = (1000, 700);

const FONT: &str = "sans-serif";

static REGISTER_FONT: Once = Once::new();

/// Registers the vendored font under the family names plotters asks for. Idempotent.
pub fn register_fonts() {
    REGISTER_FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for family in ["sans-serif", "serif", "monospace"] {
            for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique]
            {
                // The bytes are a valid TrueType font (a test checks it draws); a failure here
                // would only show as FontUnavailable when drawing, which render reports.
                let _ = plotters::style::register_font(family, style, bytes);
            }
        }
    });
}

/// Draws `throughput-<tag>.{png,svg}` and `latency-<tag>.{png,svg}` into `dir` (created if
/// needed); returns their paths.
pub fn render(results: &RunResults, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    register_fonts();
    std::fs::create_dir_all(dir)?;
    let tag = client_tag(results);
    let data = PlotData::of(results);
    let mut written = Vec::new();

    for kind in [Kind::Throughput, Kind::Latency] {
        let png = dir.join(format!("{}-{tag}.png", kind.name()));
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            kind.draw(&root, &data)?;
            root.present().map_err(io_err)?;
        }
        written.push(png);

        let svg_path = dir.join(format!("{}-{tag}.svg", kind.name()));
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            kind.draw(&root, &data)?;
            root.present().map_err(io_err)?;
        }
        std::fs::write(&svg_path, svg)?;
        written.push(svg_path);
    }
    Ok(written)
}

#[derive(Clone, Copy)]
enum Kind {
    Throughput,
    Latency,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Throughput => "throughput",
            Kind::Latency => "latency",
        }
    }

    fn draw<DB: DrawingBackend>(
        self,
        root: &DrawingArea<DB, Shift>,
        data: &PlotData,
    ) -> std::io::Result<()> {
        match self {
            Kind::Throughput => throughput(root, data),
            Kind::Latency => latency(root, data),
        }
    }
}

fn io_err<E: std::fmt::Display>(e: E) -> std::io::Error {
    std::io::Error::other(format!("plot: {e}"))
}

/// What the plots draw, taken from the results once.
struct PlotData {
    title: String,
    /// Operations in a stable order: SET, GET, MIXED, then any other in name order.
    ops: Vec<OpSeries>,
    /// Every measured size, ascending, deduplicated.
    sizes: Vec<usize>,
}

struct OpSeries {
    op: String,
    /// One point per size, ascending (if a size ran twice, the later phase wins).
    points: Vec<Point>,
}

struct Point {
    x: f64,
    ops_per_sec: f64,
    mb_per_sec: f64,
    /// p50, p90, p99, p99.9 in ms.
    latency_ms: [f64; 4],
}

const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "p99.9"];

/// The x coordinate of a size: log2 of it (a size of 0 sits where 1 byte would).
fn size_x(size: usize) -> f64 {
    (size.max(1) as f64).log2()
}

/// The x axis: a log2 scale of value sizes whose ticks are the measured sizes ("16 B",
/// "4 KiB", ...), thinned when there are more than the chart has room for.
#[derive(Debug, Clone)]
struct SizeAxis {
    lo: f64,
    hi: f64,
    /// Measured sizes, ascending, deduplicated.
    sizes: Vec<usize>,
}

impl SizeAxis {
    /// Where `x` falls across the axis, 0 at the left end and 1 at the right.
    fn fraction(&self, x: f64) -> f64 {
        (x - self.lo) / (self.hi - self.lo)
    }

    /// Tick positions: every measured size, or every n-th (and the last) to stay within `max`.
    fn ticks(&self, max: usize) -> Vec<f64> {
        if self.sizes.is_empty() {
            return (4..=10).step_by(2).map(f64::from).collect();
        }
        let step = self.sizes.len().div_ceil(max.max(1)).max(1);
        let mut ticks: Vec<f64> = self.sizes.iter().step_by(step).map(|&s| size_x(s)).collect();
        let last = size_x(self.sizes[self.sizes.len() - 1]);
        if ticks.last() != Some(&last) && ticks.len() < max.max(2) {
            ticks.push(last);
        }
        ticks
    }

    /// The tick label of an x position: the measured size there, else the power of two.
    fn label(&self, x: f64) -> String {
        match self.sizes.iter().find(|&&s| (size_x(s) - x).abs() < 1e-9) {
            Some(&s) => show_size(s),
            None => show_size(x.exp2().round().max(0.0) as usize),
        }
    }
}

impl Ranged for SizeAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        let t = if t.is_finite() { t.clamp(-1.0, 2.0) } else { 0.0 };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // At most 12 labelled ticks, whatever the hint allows, so the labels never overlap.
        self.ticks(hint.max_num_points().min(12))
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for SizeAxis {
    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

impl PlotData {
    fn of(results: &RunResults) -> PlotData {
        let m = &results.meta;
        let title = format!("{} ({}), {}", m.target, m.mode, m.workload);
        let mut names: Vec<&str> = results.phases.iter().map(|p| p.op.as_str()).collect();
        names.sort_by_key(|op| (op_rank(op), *op));
        names.dedup();
        let ops = names
            .into_iter()
            .map(|op| {
                let mut phases: Vec<&Phase> =
                    results.phases.iter().filter(|p| p.op == op).collect();
                phases.sort_by_key(|p| p.size);
                let mut points: Vec<(usize, Point)> = Vec::new();
                for p in phases {
                    let l = &p.latency;
                    let point = Point {
                        x: size_x(p.size),
                        ops_per_sec: finite(p.ops_per_sec()),
                        mb_per_sec: finite(p.mb_per_sec()),
                        latency_ms: [l.p50, l.p90, l.p99, l.p999].map(|us| us as f64 / 1000.0),
                    };
                    match points.last_mut() {
                        Some((size, last)) if *size == p.size => *last = point,
                        _ => points.push((p.size, point)),
                    }
                }
                OpSeries {
                    op: op.to_string(),
                    points: points.into_iter().map(|(_, p)| p).collect(),
                }
            })
            .collect();
        let mut sizes: Vec<usize> = results.phases.iter().map(|p| p.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        PlotData { title, ops, sizes }
    }

    /// The value size axis: log2 of the size, widened by half a doubling on each side (a
    /// whole one for a single size), ticks at the measured sizes.
    fn axis(&self) -> SizeAxis {
        let (lo, hi) = match (self.sizes.first(), self.sizes.last()) {
            (Some(&lo), Some(&hi)) if lo != hi => (size_x(lo) - 0.5, size_x(hi) + 0.5),
            (Some(&one), _) => (size_x(one) - 1.0, size_x(one) + 1.0),
            _ => (4.0, 10.0),
        };
        SizeAxis { lo, hi, sizes: self.sizes.clone() }
    }

    fn has_requests(&self) -> bool {
        self.ops.iter().any(|o| o.points.iter().any(|p| p.ops_per_sec > 0.0))
    }
}

fn op_rank(op: &str) -> u8 {
    match op {
        "SET" => 0,
        "GET" => 1,
        "MIXED" => 2,
        _ => 3,
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

fn op_color(index: usize, op: &str) -> RGBColor {
    const OTHERS: [RGBColor; 4] = [
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
    ];
    match op {
        "SET" => RGBColor(0x1f, 0x77, 0xb4),
        "GET" => RGBColor(0xd6, 0x27, 0x28),
        "MIXED" => RGBColor(0x2c, 0xa0, 0x2c),
        _ => OTHERS[index % OTHERS.len()],
    }
}

const PERCENTILE_COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
];

/// The top of a linear axis from 0: room above the highest point for the legend.
fn y_top(max: f64) -> f64 {
    if max > 0.0 && max.is_finite() { max * 1.3 } else { 1.0 }
}

/// Short number for axis labels: 1234567 -> "1.23M", 0.05 -> "0.05".
fn short_number(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled == 0.0 {
        "0".to_string()
    } else if scaled.abs() >= 100.0 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else if scaled.abs() >= 0.01 {
        format!("{scaled:.2}")
    } else {
        format!("{scaled:.3}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

fn throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PlotData,
) -> std::io::Result<()> {
    root.fill(&WHITE).map_err(io_err)?;
    let root = root
        .titled(&format!("redkeep bench throughput: {}", data.title), (FONT, 22))
        .map_err(io_err)?;
    let (top, bottom) = root.split_vertically(50.percent());
    let none = !data.has_requests();
    line_chart(
        &top,
        data,
        "ops/s per value size",
        "ops/s",
        data.ops.iter().flat_map(|o| &o.points).map(|p| p.ops_per_sec).fold(0.0, f64::max),
        &|o: &OpSeries| o.points.iter().map(|p| (p.x, p.ops_per_sec)).collect(),
        none,
    )?;
    line_chart(
        &bottom,
        data,
        "MB/s (10^6 bytes of values) per value size",
        "MB/s",
        data.ops.iter().flat_map(|o| &o.points).map(|p| p.mb_per_sec).fold(0.0, f64::max),
        &|o: &OpSeries| o.points.iter().map(|p| (p.x, p.mb_per_sec)).collect(),
        none,
    )?;
    Ok(())
}

type SeriesOf<'a> = &'a dyn Fn(&OpSeries) -> Vec<(f64, f64)>;

/// One linear chart: a line (with markers) per operation.
fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &PlotData,
    caption: &str,
    y_desc: &str,
    y_max: f64,
    series_of: SeriesOf<'_>,
    no_data: bool,
) -> std::io::Result<()> {
    let axis = data.axis();
    let top = y_top(y_max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(axis.clone(), 0.0..top)
        .map_err(io_err)?;
    configure(&mut chart, y_desc, &|v: &f64| short_number(*v))?;
    let mut placed = Vec::new();
    for (i, o) in data.ops.iter().enumerate() {
        let color = op_color(i, &o.op);
        let points = series_of(o);
        placed.extend(points.iter().map(|&(x, y)| (axis.fraction(x), y / top)));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(io_err)?
            .label(o.op.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(io_err)?;
    }
    let legend = (!data.ops.is_empty()).then(|| legend_position(&placed));
    let note = if data.ops.is_empty() {
        Some("no phases measured")
    } else if no_data {
        Some("no requests completed")
    } else {
        None
    };
    finish(&mut chart, area, legend, note)
}

/// The upper corner whose neighbourhood the points (as fractions of the plot, 0..1 on both
/// axes) leave freer: the legend goes there.
fn legend_position(points: &[(f64, f64)]) -> SeriesLabelPosition {
    let highest = |left: bool| {
        points
            .iter()
            .filter(|(fx, _)| if left { *fx < 0.3 } else { *fx > 0.7 })
            .map(|&(_, fy)| fy)
            .fold(0.0f64, f64::max)
    };
    if highest(true) + 0.05 < highest(false) {
        SeriesLabelPosition::UpperLeft
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// The mesh with the axis descriptions and the size tick labels.
fn configure<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<SizeAxis, Y>>,
    y_desc: &str,
    y_label: &dyn Fn(&Y::ValueType) -> String,
) -> std::io::Result<()>
where
    DB: DrawingBackend,
    Y: Ranged + ValueFormatter<<Y as Ranged>::ValueType>,
{
    chart
        .configure_mesh()
        .x_desc("value size (log2 scale)")
        .y_desc(y_desc)
        .y_label_formatter(y_label)
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .draw()
        .map_err(io_err)
}

/// The legend (where asked), and a note across the chart where there is nothing to draw.
fn finish<'a, DB: DrawingBackend + 'a, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<SizeAxis, Y>>,
    area: &DrawingArea<DB, Shift>,
    legend: Option<SeriesLabelPosition>,
    note: Option<&str>,
) -> std::io::Result<()> {
    if let Some(position) = legend {
        chart
            .configure_series_labels()
            .position(position)
            .margin(12)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0x99, 0x99, 0x99))
            .label_font((FONT, 13))
            .draw()
            .map_err(io_err)?;
    }
    if let Some(note) = note {
        let (w, h) = area.dim_in_pixel();
        let style = TextStyle::from((FONT, 20).into_font()).color(&RGBColor(0x88, 0x88, 0x88)).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        );
        area.draw(&Text::new(note, (w as i32 / 2, h as i32 / 2), style)).map_err(io_err)?;
    }
    Ok(())
}

/// A log10 axis (latency in ms) with ticks at 1, 2 and 5 times the powers of ten.
#[derive(Debug, Clone)]
struct LogAxis {
    lo: f64,
    hi: f64,
}

/// The 1-2-5 values from below `lo` to above `hi`, ascending.
fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    (first..=last).flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k))).collect()
}

impl LogAxis {
    /// The range in ms for these latencies: from a 1-2-5 value below the lowest to one above
    /// the highest with the top fifth of the plot left for the legend. Latencies of 0 (below
    /// the 1 µs resolution) are drawn at the bottom.
    fn for_latencies(values: impl Iterator<Item = f64>) -> LogAxis {
        let (lo, hi) = values
            .filter(|v| *v > 0.0 && v.is_finite())
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if hi <= 0.0 {
            return LogAxis { lo: 0.01, hi: 10.0 };
        }
        let nice = one_two_five(lo, hi);
        let lo =
            nice.iter().rev().copied().find(|&v| v <= lo / 1.15).unwrap_or(lo / 2.0).max(0.001);
        let hi = (hi * 1.15).max(lo * 5.0);
        let hi = 10f64.powf(hi.log10() + (hi / lo).log10() * 0.25);
        let hi = nice.iter().copied().find(|&v| v >= hi).unwrap_or(hi);
        LogAxis { lo, hi }
    }

    fn fraction(&self, y: f64) -> f64 {
        (y / self.lo).ln() / (self.hi / self.lo).ln()
    }

    /// Ticks: the 1-2-5 values in range, or only the powers of ten when those are too many.
    fn ticks(&self, max: usize) -> Vec<f64> {
        let inside = |v: &f64| *v >= self.lo * (1.0 - 1e-9) && *v <= self.hi * (1.0 + 1e-9);
        let all: Vec<f64> = one_two_five(self.lo, self.hi).into_iter().filter(inside).collect();
        if all.len() <= max.max(2) {
            return all;
        }
        let decades: Vec<f64> =
            all.iter().copied().filter(|v| (v.log10() - v.log10().round()).abs() < 1e-9).collect();
        let step = decades.len().div_ceil(max.max(2)).max(1);
        decades.into_iter().step_by(step).collect()
    }
}

impl Ranged for LogAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = self.fraction(*value);
        let t = if t.is_finite() { t.clamp(-1.0, 2.0) } else { 0.0 };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        self.ticks(hint.max_num_points().min(15))
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for LogAxis {
    fn format_ext(&self, value: &f64) -> String {
        short_number(*value)
    }
}

fn latency<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PlotData,
) -> std::io::Result<()> {
    root.fill(&WHITE).map_err(io_err)?;
    let root = root
        .titled(&format!("redkeep bench latency: {}", data.title), (FONT, 22))
        .map_err(io_err)?;
    // One range for all the panels, so that they compare.
    let y_axis =
        LogAxis::for_latencies(data.ops.iter().flat_map(|o| &o.points).flat_map(|p| p.latency_ms));
    let axis = data.axis();
    let panels: Vec<Option<&OpSeries>> =
        if data.ops.is_empty() { vec![None] } else { data.ops.iter().map(Some).collect() };
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let caption = match panel {
            Some(o) => format!("{} latency percentiles (log scale)", o.op),
            None => "latency percentiles".to_string(),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, 17))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(axis.clone(), y_axis.clone())
            .map_err(io_err)?;
        configure(&mut chart, "latency (ms)", &|v: &f64| short_number(*v))?;
        let Some(o) = panel else {
            finish(&mut chart, area, None, Some("no phases measured"))?;
            continue;
        };
        let mut placed = Vec::new();
        for (k, name) in PERCENTILES.iter().enumerate() {
            let color = PERCENTILE_COLORS[k];
            let points: Vec<(f64, f64)> =
                o.points.iter().map(|p| (p.x, p.latency_ms[k].max(y_axis.lo))).collect();
            placed.extend(points.iter().map(|&(x, y)| (axis.fraction(x), y_axis.fraction(y))));
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(io_err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(io_err)?;
        }
        let none = !o.points.iter().any(|p| p.ops_per_sec > 0.0);
        finish(
            &mut chart,
            area,
            Some(legend_position(&placed)),
            none.then_some("no requests completed"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::{Latency, RunMeta};

    /// A plausible run: SET then GET for each of several sizes.
    pub(crate) fn sample(sizes: &[usize], ops: &[&str]) -> RunResults {
        let meta = RunMeta {
            client_ids: vec![1],
            target: "127.0.0.1:7000".into(),
            mode: "cluster".into(),
            topology: vec![
                "127.0.0.1:7000 master 0-5460".into(),
                "127.0.0.1:7001 master 5461-10922".into(),
                "127.0.0.1:7002 master 10923-16383".into(),
            ],
            redis_version: "7.2.4".into(),
            redkeep_version: "0.1.0".into(),
            command_line: "redkeep bench --sizes 16,4096 --note <a&b>".into(),
            started_at: "2025-01-02T03:04:05Z".into(),
            connections: 50,
            pipeline: 1,
            workload: "set-then-get".into(),
            key_pattern: "key:{client}:{size}:{n}".into(),
            rate: None,
        };
        let mut phases = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            for op in ops {
                let slow = if *op == "SET" { 1.3 } else { 1.0 };
                let base = (60.0 + 10.0 * i as f64) * slow;
                let requests = 100_000u64;
                phases.push(Phase {
                    op: op.to_string(),
                    size,
                    requests,
                    errors: if *op == "GET" { 3 } else { 0 },
                    missing: if *op == "GET" { 3 } else { 0 },
                    wrong: 0,
                    seconds: 1.0 + i as f64 * 0.8 * slow,
                    latency: Latency {
                        mean: base * 1.1,
                        p50: base as u64,
                        p90: (base * 1.8) as u64,
                        p99: (base * 4.0) as u64,
                        p999: (base * 9.0) as u64,
                        max: (base * 30.0) as u64,
                        histogram: vec![(base as u64, requests)],
                    },
                    batches: Vec::new(),
                });
            }
        }
        RunResults { meta, phases }
    }

    fn png_dims(bytes: &[u8]) -> (u32, u32) {
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        (w, h)
    }

    fn check_svg(text: &str, labels: &[&str]) {
        let start = text.trim_start();
        assert!(
            start.starts_with("<svg") || start.starts_with("<?xml"),
            "starts like SVG: {}",
            &start[..40]
        );
        assert!(text.trim_end().ends_with("</svg>"), "ends like SVG");
        // XML-ish: tags balance (every `<` closes with `>`).
        assert_eq!(text.matches('<').count(), text.matches('>').count());
        for label in labels {
            assert!(text.contains(label), "SVG has {label:?}");
        }
    }

    #[test]
    fn renders_png_and_svg_plots() {
        let dir = tempfile::tempdir().unwrap();
        let results = sample(&[16, 64, 256, 1024, 4096, 16384, 65536, 524288], &["SET", "GET"]);
        let paths = render(&results, dir.path()).unwrap();
        let names: Vec<String> =
            paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "throughput-client1.png",
                "throughput-client1.svg",
                "latency-client1.png",
                "latency-client1.svg"
            ]
        );
        for path in &paths {
            let bytes = std::fs::read(path).unwrap();
            if path.extension().unwrap() == "png" {
                assert_eq!(png_dims(&bytes), SIZE);
                assert!(bytes.len() > 10_000, "a non-trivial image: {} bytes", bytes.len());
            }
        }
        let throughput =
            std::fs::read_to_string(dir.path().join("throughput-client1.svg")).unwrap();
        check_svg(
            &throughput,
            &[
                "value size",
                "ops/s",
                "MB/s",
                "4 KiB",
                "16 B",
                "512 KiB",
                "SET",
                "GET",
                "127.0.0.1:7000",
            ],
        );
        let latency = std::fs::read_to_string(dir.path().join("latency-client1.svg")).unwrap();
        check_svg(
            &latency,
            &["value size", "latency (ms)", "4 KiB", "p50", "p99.9", "SET", "GET", "cluster"],
        );
    }

    #[test]
    fn renders_degenerate_runs() {
        let cases =
            [sample(&[4096], &["SET", "GET"]), sample(&[100], &["MIXED"]), sample(&[], &[]), {
                let mut r = sample(&[16, 1024], &["SET"]);
                for p in &mut r.phases {
                    p.requests = 0;
                    p.seconds = 0.0;
                    p.latency = Latency::default();
                }
                r
            }];
        for results in cases {
            let dir = tempfile::tempdir().unwrap();
            let paths = render(&results, dir.path()).unwrap();
            assert_eq!(paths.len(), 4);
            for path in &paths {
                let bytes = std::fs::read(path).unwrap();
                if path.extension().unwrap() == "png" {
                    assert_eq!(png_dims(&bytes), SIZE);
                } else {
                    check_svg(&String::from_utf8(bytes).unwrap(), &["value size"]);
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        render(&sample(&[4096], &["SET", "GET"]), dir.path()).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("throughput-client1.svg")).unwrap();
        check_svg(&svg, &["4 KiB", "ops/s", "MB/s"]);
    }

    #[test]
    fn labels() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(1_234_567.0), "1.23M");
        assert_eq!(short_number(50_000.0), "50k");
        assert_eq!(short_number(0.05), "0.05");
        let axis = PlotData::of(&sample(&[16, 1000, 4096], &["GET"])).axis();
        assert_eq!(axis.label(size_x(1000)), "1000 B");
        assert_eq!(axis.label(size_x(4096)), "4 KiB");
        assert_eq!(axis.label(13.0), "8 KiB");
        assert_eq!(axis.ticks(12).len(), 3);
        let sizes: Vec<usize> = (0..20).map(|i| 1 << i).collect();
        let axis = PlotData::of(&sample(&sizes, &["SET"])).axis();
        let ticks = axis.ticks(12);
        assert!(ticks.len() <= 12, "{ticks:?}");
        assert_eq!(ticks.first(), Some(&0.0));
        assert_eq!(axis.map(&axis.lo, (0, 100)), 0);
        assert_eq!(axis.map(&axis.hi, (0, 100)), 100);
        let y = LogAxis::for_latencies([0.06, 0.5, 1.5].into_iter());
        assert!(y.lo <= 0.06 / 1.15 && y.hi >= 1.5 * 1.15, "{y:?}");
        let ticks = y.ticks(15);
        assert!(ticks.contains(&0.1) && ticks.contains(&1.0), "{ticks:?}");
        assert!(ticks.iter().all(|t| *t >= y.lo * 0.999 && *t <= y.hi * 1.001));
        assert_eq!(
            ticks.iter().map(|t| short_number(*t)).collect::<Vec<_>>()[..3],
            ["0.05", "0.1", "0.2"]
        );
        let wide = LogAxis { lo: 0.001, hi: 100_000.0 };
        assert!(wide.ticks(6).len() <= 6, "{:?}", wide.ticks(6));
        let empty = LogAxis::for_latencies([0.0].into_iter());
        assert!(empty.lo < empty.hi);
    }
}
