//! The CSV that bench/scale.sh writes, read into typed rows.

use std::path::Path;

/// One measured point: a tool's median for one size and scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The engine measured (`rbuild`, `buildkit11`).
    pub tool: String,
    /// What grows: `files` (context size) or `layers` (image layers).
    pub kind: String,
    /// The size: files in the context or layers in the image.
    pub n: f64,
    /// `cold`, `noop` or `edit`.
    pub scenario: String,
    /// Median wall-clock seconds.
    pub seconds: f64,
    /// Median peak RSS in kilobytes, where it was measured.
    pub rss_kb: Option<f64>,
}

/// A CSV that is not the one bench/scale.sh writes.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The CSV's path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line has the wrong number of fields or a field is not a number.
    #[error("{path}:{line}: {what}")]
    Line {
        /// The CSV's path.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
}

/// The header bench/scale.sh writes on the first line.
const HEADER: &str = "tool,kind,n,scenario,runs,median_s,median_peak_rss_kb";

/// Reads the CSV at `path`: its header, then one row per line.
pub fn read(path: &Path) -> Result<Vec<Row>, TableError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TableError::Read {
        path: name.clone(),
        source,
    })?;
    parse(&name, &text)
}

/// Parses the CSV text of the file `name` (named in errors).
pub fn parse(name: &str, text: &str) -> Result<Vec<Row>, TableError> {
    let bad = |line: usize, what: String| TableError::Line {
        path: name.to_string(),
        line,
        what,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, HEADER)) => {}
        _ => return Err(bad(1, format!("expected the header {HEADER}"))),
    }
    let mut rows = Vec::new();
    for (index, line) in lines.filter(|(_, l)| !l.is_empty()) {
        let number = index + 1;
        let fields: Vec<&str> = line.split(',').collect();
        let [tool, kind, n, scenario, _runs, seconds, rss] = fields[..] else {
            return Err(bad(
                number,
                format!("expected 7 fields, found {}", fields.len()),
            ));
        };
        let num = |field: &str, what: &str| {
            field
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| bad(number, format!("{what} {field:?} is not a positive number")))
        };
        rows.push(Row {
            tool: tool.to_string(),
            kind: kind.to_string(),
            n: num(n, "size")?,
            scenario: scenario.to_string(),
            seconds: num(seconds, "time")?,
            rss_kb: if rss.is_empty() {
                None
            } else {
                Some(num(rss, "RSS")?)
            },
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_with_and_without_rss() {
        let text = format!(
            "{HEADER}\nrbuild,files,1000,cold,5,.25,20480\nbuildkit11,files,1000,noop,5,1.5,\n"
        );
        let rows = parse("scale.csv", &text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].n, 1000.0);
        assert_eq!(rows[0].seconds, 0.25);
        assert_eq!(rows[0].rss_kb, Some(20480.0));
        assert_eq!(rows[1].tool, "buildkit11");
        assert_eq!(rows[1].rss_kb, None);
    }

    #[test]
    fn a_bad_field_is_named_with_its_line() {
        let text =
            format!("{HEADER}\nrbuild,files,1000,cold,5,.25,1\nrbuild,files,ten,cold,5,.25,1\n");
        let err = parse("scale.csv", &text).unwrap_err().to_string();
        assert_eq!(err, "scale.csv:3: size \"ten\" is not a positive number");
    }

    #[test]
    fn a_missing_header_is_an_error() {
        let err = parse("x.csv", "rbuild,files,1,cold,5,1,1\n").unwrap_err();
        assert!(err.to_string().starts_with("x.csv:1: expected the header"));
    }
}
