//! Panels of curves on log-log axes, written as one SVG document.

use std::fmt::Write;

use crate::axis::{LogAxis, label};

/// One curve: its legend name, its colour and dash, and its points (x, y).
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend text, e.g. `rbuild edit`.
    pub name: String,
    /// An SVG colour.
    pub colour: &'static str,
    /// Drawn dashed (a peer) rather than solid.
    pub dashed: bool,
    /// The points, sorted by x.
    pub points: Vec<(f64, f64)>,
}

/// A chart: a title, its axes' names and its curves.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The title above the chart.
    pub title: String,
    /// The x axis' name.
    pub x_name: String,
    /// The y axis' name.
    pub y_name: String,
    /// The curves.
    pub series: Vec<Series>,
}

const WIDTH: f64 = 440.0;
const HEIGHT: f64 = 330.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
const LEGEND_LINE: f64 = 16.0;

/// The SVG of `panels` in a grid `columns` wide, each with its legend
/// below it.
pub fn svg(panels: &[Panel], columns: usize) -> String {
    let legend_rows = panels.iter().map(|p| p.series.len()).max().unwrap_or(0);
    let cell = HEIGHT + LEGEND_LINE * legend_rows as f64 + 10.0;
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let (width, height) = (WIDTH * columns as f64, cell * rows as f64);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    for (i, panel) in panels.iter().enumerate() {
        let (x, y) = (WIDTH * (i % columns) as f64, cell * (i / columns) as f64);
        let _ = writeln!(out, r#"<g transform="translate({x} {y})">"#);
        draw_panel(&mut out, panel);
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

/// Draws one panel at the origin.
fn draw_panel(out: &mut String, panel: &Panel) {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let (min_x, max_x) = bounds(points().map(|p| p.0));
    let (min_y, max_y) = bounds(points().map(|p| p.1));
    let (left, right) = (LEFT, WIDTH - RIGHT);
    let (top, bottom) = (TOP, HEIGHT - BOTTOM);
    let xs = LogAxis::around(min_x, max_x, left, right);
    let ys = LogAxis::around(min_y, max_y, bottom, top);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        (left + right) / 2.0,
        escape(&panel.title)
    );
    for x in xs.ticks() {
        let px = xs.pixel(x);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 14.0,
            label(x)
        );
    }
    for y in ys.ticks() {
        let py = ys.pixel(y);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 4.0,
            py + 4.0,
            label(y)
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        right - left,
        bottom - top
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        bottom + 32.0,
        escape(&panel.x_name)
    );
    let (cx, cy) = (14.0, (top + bottom) / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{cx}" y="{cy}" text-anchor="middle" transform="rotate(-90 {cx} {cy})">{}</text>"#,
        escape(&panel.y_name)
    );
    for (i, series) in panel.series.iter().enumerate() {
        let dash = if series.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let path: Vec<String> = series
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", xs.pixel(x), ys.pixel(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            series.colour
        );
        for &(x, y) in &series.points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                xs.pixel(x),
                ys.pixel(y),
                series.colour
            );
        }
        let ly = HEIGHT + LEGEND_LINE * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{left}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            left + 24.0,
            series.colour,
            left + 30.0,
            ly + 4.0,
            escape(&series.name)
        );
    }
}

/// The least and greatest of `values` (1 and 10 when there are none).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    }
}

/// Text made safe inside an SVG element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(series: Vec<Series>) -> Panel {
        Panel {
            title: "time <files>".into(),
            x_name: "files".into(),
            y_name: "seconds".into(),
            series,
        }
    }

    #[test]
    fn draws_each_series_as_a_polyline_with_its_points_and_legend() {
        let series = Series {
            name: "rbuild edit".into(),
            colour: "#1f77b4",
            dashed: false,
            points: vec![(1000.0, 0.1), (10_000.0, 1.0)],
        };
        let peer = Series {
            name: "buildkit11 edit".into(),
            dashed: true,
            ..series.clone()
        };
        let out = svg(&[panel(vec![series, peer])], 2);
        assert_eq!(out.matches("<polyline").count(), 2);
        assert_eq!(out.matches("<circle").count(), 4);
        assert_eq!(
            out.matches("stroke-dasharray").count(),
            2,
            "the peer's curve and legend"
        );
        assert!(out.contains(">rbuild edit</text>"));
        assert!(out.contains("time &lt;files&gt;"));
        assert!(out.starts_with("<svg") && out.ends_with("</svg>\n"));
    }

    #[test]
    fn the_points_land_at_their_log_positions() {
        let series = Series {
            name: "s".into(),
            colour: "red",
            dashed: false,
            points: vec![(1000.0, 0.1), (10_000.0, 1.0)],
        };
        let out = svg(&[panel(vec![series])], 1);
        // x spans 1k..10k over LEFT..WIDTH-RIGHT, y 0.1..1 over the plot's height.
        let expected = format!(
            "points=\"{:.1},{:.1} {:.1},{:.1}\"",
            LEFT,
            HEIGHT - BOTTOM,
            WIDTH - RIGHT,
            TOP
        );
        assert!(out.contains(&expected), "{out}");
    }

    #[test]
    fn panels_fill_a_grid_row_by_row() {
        let out = svg(&[panel(vec![]), panel(vec![]), panel(vec![])], 2);
        assert!(out.contains(&format!("width=\"{}\"", 2.0 * WIDTH)));
        assert!(out.contains(&format!("translate({WIDTH} 0)")));
        let second_row = format!("translate(0 {})", HEIGHT + 10.0);
        assert!(
            out.contains(&second_row),
            "the third panel starts the second row"
        );
        assert_eq!(out.matches("font-weight=\"bold\"").count(), 3);
    }
}
