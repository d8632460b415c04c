//! Numbers as report text: rates as percentages, differences of rates in
//! percentage points, counts with thousands separators, durations.

/// Shown where a number is missing.
pub(crate) const NONE: &str = "—";

/// A success rate: `62.5%`.
pub(crate) fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// A difference of rates: `+12.5 pp`.
pub(crate) fn points(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| format!("{:+.1} pp", v * 100.0))
}

/// A count with thousands separators: `1,234,567`.
pub(crate) fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A count that may be fractional (a mean): rounded, with separators.
pub(crate) fn approx_count(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| count(v.max(0.0).round() as u64))
}

/// A cost in the price table's currency.
pub(crate) fn cost(value: f64) -> String {
    format!("{value:.4}")
}

/// A duration: `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`.
pub(crate) fn duration(ms: u64) -> String {
    let seconds = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if seconds < 60 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if seconds < 3600 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h {:02}m", seconds / 3600, (seconds % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(rate(Some(0.625)), "62.5%");
        assert_eq!(rate(None), "—");
        assert_eq!(points(Some(0.125)), "+12.5 pp");
        assert_eq!(points(Some(-0.5)), "-50.0 pp");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(approx_count(Some(1499.6)), "1,500");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(7_380_000), "2h 03m");
    }
}
