//! Charts as inline SVG, drawn by plotters: percentile distributions on the "nines" scale and
//! per-second timelines with fault and outage windows. Pure: data in, SVG text out.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Width and height of every chart, px (the page scales them down on narrow screens).
const SIZE: (u32, u32) = (960, 340);
const FONT: &str = "sans-serif";
/// Line colours (Tableau 10): distinct, readable on white.
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

/// The colour of the `i`-th line.
fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The colour of the `i`-th line as CSS (`#1f77b4`), for the legend the page writes.
pub fn css_color(i: usize) -> String {
    let RGBColor(r, g, b) = color(i);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// µs as an axis label: `500µs`, `2.5ms`, `100ms`, `1.5s`.
fn axis_us(v: &f64) -> String {
    let trim = |x: f64| {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match *v {
        v if v < 1e3 => format!("{}µs", trim(v)),
        v if v < 1e6 => format!("{}ms", trim(v / 1e3)),
        v => format!("{}s", trim(v / 1e6)),
    }
}

/// An axis value without a useless `.0`: `600`, `2.5`.
fn plain(v: &f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Why a chart could not be drawn (plotters' error, as text).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart {title:?}: {why}")]
pub struct ChartError {
    title: String,
    why: String,
}

fn err(title: &str) -> impl Fn(String) -> ChartError + '_ {
    move |why| ChartError {
        title: title.to_string(),
        why,
    }
}

/// One line of a percentile chart: a label (for the page's legend, which lists the lines in
/// the same order and colours, [`css_color`]) and its `(percentile, µs)` points, ending in
/// `(100, max)` (see `pushsim_metrics::Histo::percentiles`).
pub struct Distribution<'a> {
    /// Legend text.
    pub label: String,
    /// The points.
    pub points: &'a [(f64, u64)],
}

/// A window of the run to shade on a timeline.
pub struct Band {
    /// Start, s from the run start.
    pub from_s: f64,
    /// End, s (the run's end when the window stayed open).
    pub until_s: f64,
    /// What happened (drawn at the top of the window).
    pub label: String,
    /// A service outage (red) rather than a fault rule (amber).
    pub outage: bool,
}

/// One line of a timeline chart: a label (for the page's legend) and its `(second, value)`
/// points.
pub struct Line {
    /// Legend text.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// Position on the nines axis: 0 for 0 %, 1 for 90 %, 2 for 99 % …
fn nines(pct: f64) -> f64 {
    -(1.0 - pct / 100.0).max(1e-12).log10()
}

/// The percentile at a position of the nines axis, as a label: `90%`, `99.9%`.
fn nines_label(x: &f64) -> String {
    let pct = 100.0 * (1.0 - 10f64.powf(-*x));
    let decimals = (x.ceil() as i32 - 2).clamp(0, 6) as usize;
    format!("{pct:.decimals$}%")
}

/// A series' points on the chart's axes: the max sits at the last resolved percentile's
/// position (a vertical step), as HdrHistogram's plots draw it.
fn plotted(points: &[(f64, u64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for &(p, us) in points {
        let x = if p >= 100.0 {
            out.last().map(|l| l.0).unwrap_or(0.0)
        } else {
            nines(p)
        };
        out.push((x, us.max(1) as f64));
    }
    out
}

fn svg(
    title: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(title)(e.to_string()))?;
        draw(&root).map_err(err(title))?;
        root.present().map_err(|e| err(title)(e.to_string()))?;
    }
    Ok(out)
}

/// Every chart's frame: its title, margins and label areas.
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, (FONT, 18))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(70);
    b
}

/// HdrHistogram-style percentile distribution: x the percentile on the nines scale, y the
/// latency on a log scale; one line per series.
pub fn percentiles(title: &str, series: &[Distribution<'_>]) -> Result<String, ChartError> {
    // Colours by position, as the page's legend lists them.
    let lines: Vec<Vec<(f64, f64)>> = series.iter().map(|s| plotted(s.points)).collect();
    let all = || lines.iter().flatten();
    let x_max = all().map(|p| p.0).fold(1.0, f64::max).ceil();
    let y_min = all().map(|p| p.1).fold(f64::MAX, f64::min).min(1e9);
    let y_max = all().map(|p| p.1).fold(1.0, f64::max);
    let (lo, hi) = ((y_min / 1.5).max(1.0), y_max * 1.5);
    svg(title, |root| {
        let mut chart = builder(root, title)
            .build_cartesian_2d(0f64..x_max, (lo..hi).log_scale())
            .map_err(|x| x.to_string())?;
        chart
            .configure_mesh()
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&nines_label)
            .y_label_formatter(&axis_us)
            .x_desc("percentile")
            .y_desc("latency")
            .label_style((FONT, 14))
            .draw()
            .map_err(|x| x.to_string())?;
        for (i, points) in lines.iter().enumerate() {
            let color = color(i);
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|x| x.to_string())?;
        }
        Ok(())
    })
}

/// A per-second timeline: lines over the run's seconds, fault and outage windows shaded and
/// labelled.
pub fn timeline(
    title: &str,
    y_desc: &str,
    duration_s: f64,
    bands: &[Band],
    lines: &[Line],
) -> Result<String, ChartError> {
    let x_max = duration_s.max(1.0);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    svg(title, |root| {
        let mut chart = builder(root, title)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|x| x.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start")
            .y_desc(y_desc)
            .x_label_formatter(&plain)
            .y_label_formatter(&plain)
            .label_style((FONT, 14))
            .draw()
            .map_err(|x| x.to_string())?;
        for (k, b) in bands.iter().enumerate() {
            let color = if b.outage {
                RGBColor(200, 30, 30)
            } else {
                RGBColor(220, 130, 0)
            };
            let until = b.until_s.min(x_max);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(b.from_s, 0.0), (until, y_max)],
                    color.mix(0.13).filled(),
                )))
                .map_err(|x| x.to_string())?;
            // Labels step down so overlapping windows stay readable.
            let y = y_max * (0.97 - 0.07 * (k % 6) as f64);
            chart
                .draw_series(std::iter::once(Text::new(
                    b.label.clone(),
                    (b.from_s, y),
                    (FONT, 13).into_font().color(&color),
                )))
                .map_err(|x| x.to_string())?;
        }
        for (i, l) in lines.iter().enumerate() {
            let color = color(i);
            chart
                .draw_series(LineSeries::new(
                    l.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|x| x.to_string())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines_label(&0.0), "0%");
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&4.0), "99.99%");
    }

    #[test]
    fn the_max_steps_up_at_the_last_resolved_percentile() {
        let p = plotted(&[(0.0, 10), (90.0, 20), (100.0, 50)]);
        assert_eq!(p.len(), 3);
        assert!((p[1].0 - 1.0).abs() < 1e-9);
        assert_eq!(p[2], (p[1].0, 50.0));
    }

    #[test]
    fn charts_carry_their_titles_and_windows_escaped() {
        let pts = [(0.0, 100), (90.0, 200), (99.0, 900), (100.0, 1500)];
        let s = percentiles(
            "wake-up <warm>",
            &[Distribution {
                label: "a&b".into(),
                points: &pts,
            }],
        )
        .unwrap();
        assert!(s.starts_with("<svg"), "{s}");
        assert!(s.contains("wake-up &lt;warm&gt;"), "{s}");
        assert!(s.contains("99%") && s.contains("90%"), "nines labels: {s}");
        let t = timeline(
            "connected",
            "agents",
            30.0,
            &[Band {
                from_s: 5.0,
                until_s: 10.0,
                label: "service.kill".into(),
                outage: true,
            }],
            &[Line {
                label: "direct_primary".into(),
                points: vec![(0.0, 0.0), (1.0, 10.0)],
            }],
        )
        .unwrap();
        assert!(t.contains("service.kill"), "{t}");
        assert!(t.contains("<rect"), "the outage band: {t}");
    }
}
