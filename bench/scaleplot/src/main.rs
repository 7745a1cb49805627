//! Draws bench/scale.sh's scale curves: build time and peak RSS against
//! the number of files in the context and the number of layers in the
//! image, one curve per tool and scenario, on log-log axes (where linear
//! growth is a slope of one), as one SVG.
//!
//!     rbuild-scaleplot bench/results/scale.csv bench/results/scale.svg

mod axis;
mod plot;
mod table;

use std::path::PathBuf;

use anyhow::{Context, bail};

use plot::{Panel, Series};
use table::Row;

/// The scenarios in legend order, each with its colour.
const SCENARIOS: [(&str, &str); 3] = [
    ("cold", "#d62728"),
    ("noop", "#2ca02c"),
    ("edit", "#1f77b4"),
];

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [csv, out] = &args[..] else {
        bail!("usage: rbuild-scaleplot SCALE.CSV OUT.SVG");
    };
    let rows = table::read(csv)?;
    let panels = [
        panel(
            &rows,
            "files",
            "Build time against context size",
            "files in the context",
            Metric::Seconds,
        ),
        panel(
            &rows,
            "files",
            "Peak RSS against context size",
            "files in the context",
            Metric::RssMb,
        ),
        panel(
            &rows,
            "layers",
            "Build time against image layers",
            "layers in the image",
            Metric::Seconds,
        ),
        panel(
            &rows,
            "layers",
            "Peak RSS against image layers",
            "layers in the image",
            Metric::RssMb,
        ),
    ];
    std::fs::write(out, plot::svg(&panels, 2))
        .with_context(|| format!("cannot write {}", out.display()))
}

/// What a panel's y axis shows.
#[derive(Clone, Copy)]
enum Metric {
    /// Median wall-clock seconds.
    Seconds,
    /// Median peak RSS in mebibytes (only where measured).
    RssMb,
}

/// The panel of `kind`'s rows for `metric`: one series per tool and
/// scenario, the peers' dashed.
fn panel(rows: &[Row], kind: &str, title: &str, x_name: &str, metric: Metric) -> Panel {
    let mut tools: Vec<&str> = Vec::new();
    for row in rows {
        if !tools.contains(&row.tool.as_str()) {
            tools.push(&row.tool);
        }
    }
    let mut series = Vec::new();
    for tool in tools {
        for (scenario, colour) in SCENARIOS {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.tool == tool && r.kind == kind && r.scenario == scenario)
                .filter_map(|r| match metric {
                    Metric::Seconds => Some((r.n, r.seconds)),
                    Metric::RssMb => r.rss_kb.map(|kb| (r.n, kb / 1024.0)),
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                name: format!("{tool} {scenario}"),
                colour,
                dashed: tool != "rbuild",
                points,
            });
        }
    }
    let y_name = match metric {
        Metric::Seconds => "seconds (median)",
        Metric::RssMb => "peak RSS, MiB (median)",
    };
    Panel {
        title: title.to_string(),
        x_name: x_name.to_string(),
        y_name: y_name.to_string(),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tool: &str, kind: &str, n: f64, scenario: &str, rss_kb: Option<f64>) -> Row {
        Row {
            tool: tool.into(),
            kind: kind.into(),
            n,
            scenario: scenario.into(),
            seconds: n / 1000.0,
            rss_kb,
        }
    }

    #[test]
    fn one_series_per_tool_and_scenario_sorted_by_size() {
        let rows = [
            row("rbuild", "files", 10_000.0, "edit", Some(2048.0)),
            row("rbuild", "files", 1000.0, "edit", Some(1024.0)),
            row("rbuild", "layers", 10.0, "edit", Some(1024.0)),
            row("buildkit11", "files", 1000.0, "edit", None),
        ];
        let time = panel(&rows, "files", "t", "files", Metric::Seconds);
        let names: Vec<&str> = time.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["rbuild edit", "buildkit11 edit"]);
        assert_eq!(time.series[0].points, [(1000.0, 1.0), (10_000.0, 10.0)]);
        assert!(!time.series[0].dashed && time.series[1].dashed);

        let rss = panel(&rows, "files", "m", "files", Metric::RssMb);
        assert_eq!(rss.series.len(), 1, "the peer's RSS was not measured");
        assert_eq!(rss.series[0].points, [(1000.0, 1.0), (10_000.0, 2.0)]);
    }
}
