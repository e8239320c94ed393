//! Numbers as the charts write them, and the small helpers over recorded
//! values the charts share.

use super::model::Unit;

/// A number for an axis tick (`tick`) or a value label.
pub(super) fn format_value(v: f64, unit: Unit, tick: bool) -> String {
    match unit {
        // A count has no fractional ticks: their grid lines stay, unlabelled.
        Unit::Count if tick && v.fract().abs() > 1e-9 => String::new(),
        Unit::Count => {
            if tick || v.fract() == 0.0 || v >= 100.0 {
                thousands(v)
            } else {
                format!("{v:.1}")
            }
        }
        Unit::Rate => {
            if v >= 1e6 {
                format!("{} M", trim(v / 1e6, 2))
            } else if v >= 1e3 {
                format!("{} k", trim(v / 1e3, 1))
            } else {
                trim(v, 1)
            }
        }
        Unit::Millis => {
            if v >= 100.0 {
                format!("{v:.0}")
            } else if v >= 10.0 {
                trim(v, 1)
            } else {
                trim(v, 2)
            }
        }
    }
}

/// `v` with at most `decimals` decimals, trailing zeros dropped.
pub(super) fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `1390.2` as `1,390`.
pub(super) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 {
        out.insert(0, '-');
    }
    out
}

/// The lower middle value (the benchmark's own choice of median run).
pub(super) fn median(runs: &[f64]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1390.0), "1,390");
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(format_value(12.0, Unit::Count, false), "12");
        assert_eq!(format_value(12.5, Unit::Count, false), "12.5");
        assert_eq!(format_value(0.5, Unit::Count, true), "");
        assert_eq!(format_value(312_400.0, Unit::Rate, false), "312.4 k");
        assert_eq!(format_value(1_000_000.0, Unit::Rate, false), "1 M");
        assert_eq!(format_value(0.425, Unit::Millis, false), "0.42");
        assert_eq!(format_value(180.2, Unit::Millis, false), "180");
    }
}
