//! What the transactional cases cost, said in sentences generated from the
//! recorded reports: the book's prose names no figure that a new measurement
//! could change.

use super::cases::Case;
use super::report::{BenchReport, Figure};
use crate::metrics::format_us;

/// The transactional figures of a report, by commit interval.
fn transactional(report: &BenchReport) -> Vec<(u64, &Figure)> {
    report
        .figures
        .iter()
        .filter_map(|f| match f.case {
            Case::Transactional { commit_interval_ms } => Some((commit_interval_ms, f)),
            _ => None,
        })
        .collect()
}

/// The mean drain-and-commit time of a report's transactional cases, as
/// "X" or "X to Y".
fn commit_range(report: &BenchReport) -> Option<String> {
    let means: Vec<f64> = transactional(report)
        .iter()
        .filter_map(|(_, f)| f.transactions.map(|t| t.mean_commit_ms))
        .collect();
    let lo = means.iter().copied().reduce(f64::min)?;
    let hi = means.iter().copied().reduce(f64::max)?;
    Some(if (hi - lo).abs() < 0.05 {
        format_us(lo * 1000.0)
    } else {
        format!("{} to {}", format_us(lo * 1000.0), format_us(hi * 1000.0))
    })
}

/// The cost of exactly-once in the recorded runs, as Markdown bullets: how
/// long a `read_committed` consumer waited per commit interval, how long a
/// commit took (on one broker and, if given, on three), and at which
/// intervals a commit took longer than the interval itself.
pub fn transaction_cost_markdown(
    single: &BenchReport,
    three: Option<&BenchReport>,
) -> String {
    let mut out = String::new();
    let waits: Vec<String> = transactional(single)
        .iter()
        .filter_map(|(interval, f)| {
            let e2e = f.end_to_end.as_ref()?.latency.p50_us as f64;
            Some(format!(
                "{interval} ms: {} ({:.2}× the interval)",
                format_us(e2e),
                e2e / 1000.0 / *interval as f64
            ))
        })
        .collect();
    if !waits.is_empty() {
        out += &format!(
            "- Median end-to-end latency of a `read_committed` consumer, per commit interval: {}.\n",
            waits.join("; ")
        );
    }
    if let Some(range) = commit_range(single) {
        out += &format!(
            "- A commit (draining what is in flight, then `EndTxn`) took {range} on average on \
             {}",
            single.backend_description
        );
        match three.and_then(|t| commit_range(t).map(|r| (t, r))) {
            Some((t, r)) => {
                out += &format!(", and {r} on {}.\n", t.backend_description)
            }
            None => out += ".\n",
        }
    }
    let plain: Vec<String> = single
        .figures
        .iter()
        .filter(|f| !matches!(f.case, Case::Transactional { .. }))
        .filter_map(|f| {
            let e2e = f.end_to_end.as_ref()?.latency.p50_us as f64;
            Some(format!("{} {}", f.label, format_us(e2e)))
        })
        .collect();
    if !plain.is_empty() {
        out += &format!(
            "- The same median for the producers without transactions, measured at the same full \
             speed: {}.\n",
            plain.join("; ")
        );
    }
    let slower: Vec<String> = transactional(single)
        .iter()
        .filter(|(interval, f)| {
            f.transactions
                .is_some_and(|t| t.mean_commit_ms > *interval as f64)
        })
        .map(|(interval, _)| format!("{interval} ms"))
        .collect();
    out += &if slower.is_empty() {
        "- At every interval measured, a commit took less time than the interval.\n"
            .to_string()
    } else {
        format!(
            "- A commit took longer than the interval itself at {}: there the commits, not the \
             interval, set the pace.\n",
            slower.join(", ")
        )
    };
    out
}
