//! Line charts as SVG text, drawn with plotters' SVG backend.
//!
//! Only the SVG backend is compiled in: text becomes `<text>` elements
//! (plotters escapes their content) and its layout uses plotters' built-in
//! size estimate, so no font library is needed. Labels are stripped of
//! control characters first, which plotters would pass through.

use plotters::prelude::*;

use crate::escape::plain_label;

/// One line of a chart.
pub(crate) struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// How the y axis is scaled and labelled.
#[derive(Clone, Copy)]
pub(crate) enum YAxis {
    /// A success rate: 0 to 100%.
    Rate,
    /// Differences of rates, in percentage points, around zero.
    Points,
}

/// How the x axis is labelled.
#[derive(Clone, Copy)]
pub(crate) enum XAxis {
    /// Whole numbers only (generations).
    Generation,
    /// Token counts (k, M).
    Tokens,
}

pub(crate) struct LineChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_axis: XAxis,
    pub y_axis: YAxis,
    pub series: Vec<Series>,
}

/// Colours for series that are not told apart by mode.
pub(crate) const BEST_COLOR: RGBColor = RGBColor(31, 119, 180);
pub(crate) const MEAN_COLOR: RGBColor = RGBColor(255, 127, 14);
pub(crate) const TEST_COLOR: RGBColor = RGBColor(148, 103, 189);

const WIDTH: u32 = 760;
const HEIGHT: u32 = 440;

/// The chart as an SVG document.
pub(crate) fn line_chart_svg(chart: &LineChart<'_>) -> Result<String, String> {
    let mut svg = String::new();
    draw(chart, &mut svg).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw(chart: &LineChart<'_>, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let (x_low, x_high) = padded_range(xs, None);
    let (y_low, y_high) = match chart.y_axis {
        YAxis::Rate => (0.0, 1.0),
        YAxis::Points => padded_range(ys, Some(0.0)),
    };
    let mut context = ChartBuilder::on(&root)
        .caption(plain_label(chart.title), ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x_low..x_high, y_low..y_high)?;
    let x_axis = chart.x_axis;
    let y_axis = chart.y_axis;
    let x_format = move |x: &f64| format_x(x_axis, *x);
    let y_format = move |y: &f64| format_y(y_axis, *y);
    let x_labels = match x_axis {
        // One label per generation at most, so plotters never picks halves.
        XAxis::Generation => ((x_high - x_low).round() as usize + 1).clamp(2, 12),
        XAxis::Tokens => 8,
    };
    context
        .configure_mesh()
        .x_desc(plain_label(chart.x_desc))
        .y_desc(plain_label(chart.y_desc))
        .x_labels(x_labels)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    let mut labelled = false;
    for series in chart.series.iter().filter(|s| !s.points.is_empty()) {
        let color = series.color;
        context
            .draw_series(
                LineSeries::new(series.points.iter().copied(), color.stroke_width(2)).point_size(3),
            )?
            .label(plain_label(&series.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        labelled = true;
    }
    if labelled {
        context
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The span of `values` (with `include` in it), widened a little so points
/// do not sit on the frame, and never empty.
fn padded_range(values: impl Iterator<Item = f64>, include: Option<f64>) -> (f64, f64) {
    let mut low = f64::INFINITY;
    let mut high = f64::NEG_INFINITY;
    for value in values.chain(include).filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if high - low < 1e-9 {
        return (low - 0.5, high + 0.5);
    }
    let pad = (high - low) * 0.05;
    (low - pad, high + pad)
}

fn format_x(axis: XAxis, x: f64) -> String {
    match axis {
        XAxis::Generation if (x - x.round()).abs() < 1e-6 && x.round() >= 0.0 => {
            format!("{}", x.round())
        }
        XAxis::Generation => String::new(),
        XAxis::Tokens => short_count(x),
    }
}

fn format_y(axis: YAxis, y: f64) -> String {
    match axis {
        YAxis::Rate => format!("{:.0}%", y * 100.0),
        YAxis::Points => format!("{:+.0} pp", y * 100.0),
    }
}

/// 1234 → `1.2k`, 2_500_000 → `2.5M`.
pub(crate) fn short_count(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_hold_their_series() {
        let chart = LineChart {
            title: "a <title> & more",
            x_desc: "generation",
            y_desc: "success",
            x_axis: XAxis::Generation,
            y_axis: YAxis::Rate,
            series: vec![Series {
                label: "run <\"x\">\u{1b}".into(),
                color: BEST_COLOR,
                points: vec![(0.0, 0.25), (1.0, 0.5), (2.0, 0.75)],
            }],
        };
        let svg = line_chart_svg(&chart).expect("draws");
        assert!(svg.trim_start().starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;title&gt; &amp; more"), "{svg}");
        assert!(svg.contains("run &lt;&quot;x&quot;&gt;"), "{svg}");
        assert!(!svg.contains('\u{1b}'));
        let line = svg
            .lines()
            .find(|l| l.starts_with("<polyline") && l.contains(r##"stroke="#1F77B4""##))
            .expect("the series is drawn");
        let points = line
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert_eq!(points.split_whitespace().count(), 3, "{line}");
        assert!(svg.contains("\n50%\n"), "rates are labelled as percentages");
        assert!(svg.contains("\n2\n"), "generations are labelled");
        assert!(!svg.contains("\n0.5\n"), "no fractional generations");
    }

    #[test]
    fn ranges_are_never_empty() {
        assert_eq!(padded_range([].into_iter(), None), (0.0, 1.0));
        assert_eq!(padded_range([2.0].into_iter(), None), (1.5, 2.5));
        let (low, high) = padded_range([0.1, 0.3].into_iter(), Some(0.0));
        assert!(low < 0.0 && high > 0.3);
        assert_eq!(short_count(2_500_000.0), "2.5M");
        assert_eq!(short_count(1234.0), "1.2k");
        assert_eq!(short_count(12.0), "12");
    }
}
