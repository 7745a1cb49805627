//! A logarithmic axis: values to pixels, and its ticks at 1, 2 and 5 of
//! every decade.

/// A log-scaled axis mapping `[lo, hi]` onto pixels `[from, to]`.
#[derive(Debug, Clone, Copy)]
pub struct LogAxis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl LogAxis {
    /// An axis spanning the decades around `min..=max` (both positive),
    /// drawn from pixel `from` to pixel `to`.
    pub fn around(min: f64, max: f64, from: f64, to: f64) -> Self {
        let lo = 10f64.powf(min.log10().floor());
        let mut hi = 10f64.powf(max.log10().ceil());
        if hi <= lo {
            hi = lo * 10.0;
        }
        LogAxis { lo, hi, from, to }
    }

    /// The pixel of `value`.
    pub fn pixel(&self, value: f64) -> f64 {
        let t = (value.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.from + t * (self.to - self.from)
    }

    /// The tick values within the axis: 1, 2 and 5 times each power of ten.
    pub fn ticks(&self) -> Vec<f64> {
        let mut ticks = Vec::new();
        let mut decade = self.lo;
        while decade <= self.hi * 1.000_001 {
            for step in [1.0, 2.0, 5.0] {
                let value = decade * step;
                if value <= self.hi * 1.000_001 {
                    ticks.push(value);
                }
            }
            decade *= 10.0;
        }
        ticks
    }
}

/// A tick's label: `1M`, `1k`, `250k`, `0.05`, `2`.
pub fn label(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{}M", trim(value / 1_000_000.0))
    } else if value >= 1000.0 {
        format!("{}k", trim(value / 1000.0))
    } else {
        trim(value)
    }
}

/// A number without trailing zeros (up to three decimals).
fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_whole_decades_and_maps_them_evenly() {
        let axis = LogAxis::around(1000.0, 250_000.0, 0.0, 300.0);
        assert_eq!(axis.pixel(1000.0), 0.0);
        assert!((axis.pixel(10_000.0) - 100.0).abs() < 1e-9);
        assert!((axis.pixel(1_000_000.0) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn a_reversed_range_runs_downwards() {
        let axis = LogAxis::around(0.01, 10.0, 200.0, 0.0);
        assert_eq!(axis.pixel(0.01), 200.0);
        assert!((axis.pixel(10.0) - 0.0).abs() < 1e-9);
    }

    #[test]
    fn ticks_are_one_two_five_per_decade() {
        let axis = LogAxis::around(0.02, 0.9, 0.0, 1.0);
        let labels: Vec<String> = axis.ticks().into_iter().map(label).collect();
        assert_eq!(labels, ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]);
    }

    #[test]
    fn a_single_value_gets_one_decade() {
        let axis = LogAxis::around(50.0, 50.0, 0.0, 1.0);
        assert_eq!(
            axis.ticks().last().copied().map(label),
            Some("100".to_string())
        );
    }

    #[test]
    fn labels_use_k_and_m_for_thousands_and_millions() {
        assert_eq!(label(1_000_000.0), "1M");
        assert_eq!(label(250_000.0), "250k");
        assert_eq!(label(2000.0), "2k");
        assert_eq!(label(0.5), "0.5");
    }
}
