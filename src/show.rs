//! How commands show sizes, as Docker shows them.

/// How long ago, as Docker's CREATED column says it (`5 minutes ago`).
pub fn human_since(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let ago = match seconds {
        s if s < 1 => String::from("Less than a second"),
        1 => String::from("1 second"),
        s if s < MINUTE => format!("{s} seconds"),
        s if s < 2 * MINUTE => String::from("About a minute"),
        s if s < HOUR => format!("{} minutes", s / MINUTE),
        s if s < 2 * HOUR => String::from("About an hour"),
        s if s < 2 * DAY => format!("{} hours", s / HOUR),
        s if s < 14 * DAY => format!("{} days", s / DAY),
        s if s < 90 * DAY => format!("{} weeks", s / (7 * DAY)),
        s if s < 730 * DAY => format!("{} months", s / (30 * DAY)),
        s => format!("{} years", s / (365 * DAY)),
    };
    format!("{ago} ago")
}

/// Sizes as Docker prints them (decimal units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}{}", UNITS[unit]).replace(".000", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_times_ago() {
        assert_eq!(human_since(1), "1 second ago");
        assert_eq!(human_since(30), "30 seconds ago");
        assert_eq!(human_since(90), "About a minute ago");
        assert_eq!(human_since(3 * 3600), "3 hours ago");
        assert_eq!(human_since(3 * 86_400), "3 days ago");
        assert_eq!(human_since(800 * 86_400), "2 years ago");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.500MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }
}
