//! The published statements about what the guarantees cost (Confluent's, and
//! a comparison table common in introductions), checked against recorded
//! reports.

use serde::{Deserialize, Serialize};

use super::{BenchReport, Case};

/// A published statement about what the guarantees cost, checked against a
/// report: what was claimed, by whom, what this run measured, and whether it
/// reproduced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub claim: String,
    pub source: String,
    pub measured: String,
    /// None: the report lacks a case the claim needs.
    pub reproduced: Option<bool>,
}

/// Two throughputs closer than this (as a fraction) are a tie on one noisy
/// machine, not an order.
pub const TIE: f64 = 0.05;

impl Claim {
    /// `claim`, from `source`, checked on `measured` (None: not measured):
    /// `says` what was measured, `holds` whether it reproduced.
    fn checked<T: Copy>(
        claim: String,
        source: &str,
        measured: Option<T>,
        says: impl Fn(T) -> String,
        holds: impl Fn(T) -> bool,
    ) -> Claim {
        Claim {
            claim,
            source: source.into(),
            measured: measured.map_or_else(|| "not measured".into(), says),
            reproduced: measured.map(holds),
        }
    }
}

/// The published relationships the course checks (Confluent's and the
/// module's), against `report` (five requests in flight), for the in-order
/// comparison `in_order` (one in flight), and for the order of the acks
/// settings where followers exist, `replicated` (three brokers).
pub fn published_claims(
    report: &BenchReport,
    in_order: Option<&BenchReport>,
    replicated: Option<&BenchReport>,
) -> Vec<Claim> {
    let mut claims = acks_order(report, replicated);
    claims.extend(idempotence(report));
    claims.extend(transactions(in_order));
    claims.push(commit_interval(report));
    claims.push(harness(report));
    claims
}

/// The lab's throughput of `case` as a fraction of acks=all's in `report`.
fn vs_all(report: &BenchReport, case: Case) -> Option<f64> {
    report.figure(case).and_then(|f| f.vs_acks_all)
}

/// The same ratio for Kafka's own Java client, from its ProducerPerformance runs.
fn java_vs_all(report: &BenchReport, case: Case) -> Option<f64> {
    let rate = |c| {
        report
            .figure(c)?
            .producer_performance
            .as_ref()
            .map(|p| p.result.records_per_sec)
    };
    Some(rate(case)? / rate(Case::AcksAll)?)
}

/// acks=0 before acks=1 before acks=all, on one broker and where followers exist.
fn acks_order(report: &BenchReport, replicated: Option<&BenchReport>) -> Vec<Claim> {
    // The ratios the tables show (each paired by round), so the verdict
    // agrees with the "× acks=all" column.
    let acks_order =
        "acks=0 is faster than acks=1, which is at least as fast as acks=all";
    let setups = [
        (report.setup(), Some(report)),
        (
            replicated.map_or_else(|| "replicated".into(), BenchReport::setup),
            replicated,
        ),
    ];
    setups
        .into_iter()
        .map(|(setup, r)| {
            Claim::checked(
                format!("{acks_order} ({setup})"),
                "a comparison table found in many introductions",
                r.and_then(|r| {
                    Some((vs_all(r, Case::Acks0)?, vs_all(r, Case::Acks1)?))
                }),
                |(a0, a1)| {
                    format!(
                        "acks=0 {a0:.2}×, acks=1 {a1:.2}× the throughput of acks=all"
                    )
                },
                |(a0, a1)| a0 > a1 * (1.0 + TIE) && a1 >= 1.0 - TIE,
            )
        })
        .collect()
}

/// The idempotent producer costs (almost) nothing, in both clients.
fn idempotence(report: &BenchReport) -> Vec<Claim> {
    within_5_percent_in_both_clients(
        "the idempotent producer keeps at least 95 % of acks=all's throughput",
        "Confluent (KIP-98 benchmarks)",
        [
            vs_all(report, Case::Idempotent),
            java_vs_all(report, Case::Idempotent),
        ],
        "",
    )
}

/// Transactions every 100 ms cost a few percent, one request in flight, in
/// both clients.
fn transactions(in_order: Option<&BenchReport>) -> Vec<Claim> {
    let tx100 = Case::Transactional {
        commit_interval_ms: 100,
    };
    within_5_percent_in_both_clients(
        "transactions committed every 100 ms, 1 KB records, one request in \
         flight: within about 5 % of acks=all (Confluent measured 3 %)",
        "Confluent, \"Transactions in Apache Kafka\"",
        [
            in_order.and_then(|r| vs_all(r, tx100)),
            in_order.and_then(|r| java_vs_all(r, tx100)),
        ],
        ", one in flight",
    )
}

/// `claim` for the lab (librdkafka) and for the Java client, given their
/// throughputs as fractions of acks=all's (`ratios`, in that order): it
/// reproduced at 0.95 or more. `setup` ends what was measured.
fn within_5_percent_in_both_clients(
    claim: &str,
    source: &str,
    ratios: [Option<f64>; 2],
    setup: &str,
) -> Vec<Claim> {
    ["lab, librdkafka", "Java client"]
        .into_iter()
        .zip(ratios)
        .map(|(client, ratio)| {
            Claim::checked(
                format!("{claim} ({client})"),
                source,
                ratio,
                |r| format!("{r:.2}× acks=all{setup}"),
                |r| r >= 0.95,
            )
        })
        .collect()
}

/// The cost of transactions falls as the commit interval grows: the
/// shortest interval's throughput against the longest's.
fn commit_interval(report: &BenchReport) -> Claim {
    let curve: Vec<(u64, f64)> = report
        .figures
        .iter()
        .filter_map(|f| match f.case {
            Case::Transactional { commit_interval_ms } => {
                Some((commit_interval_ms, f.throughput.records_per_sec))
            }
            _ => None,
        })
        .collect();
    let ends = (curve.len() >= 2).then(|| {
        let first = curve.iter().min_by_key(|c| c.0).expect("two or more");
        let last = curve.iter().max_by_key(|c| c.0).expect("two or more");
        (*first, *last)
    });
    Claim::checked(
        "the longer the commit interval, the smaller the cost of transactions".into(),
        "Confluent, \"Transactions in Apache Kafka\"",
        ends,
        |((a, ra), (b, rb))| {
            format!(
                "{b} ms commits: {:.2}× the throughput of {a} ms commits",
                rb / ra
            )
        },
        |((_, ra), (_, rb))| rb > ra * (1.0 + TIE),
    )
}

/// The lab's harness keeps up with Kafka's own tool on every case.
fn harness(report: &BenchReport) -> Claim {
    let vs_pp: Vec<f64> = report
        .figures
        .iter()
        .filter_map(|f| f.vs_producer_performance)
        .collect();
    Claim::checked(
        "the lab's harness is no slower than Kafka's own ProducerPerformance \
         (at least 0.9× on every case), so it measures Kafka, not itself"
            .into(),
        "the course's own goal",
        vs_pp.iter().copied().reduce(f64::min),
        |l| format!("lowest ratio {l:.2}× over {} cases", vs_pp.len()),
        |l| l >= 0.9,
    )
}

/// The claims as a Markdown table.
pub fn claims_markdown(claims: &[Claim]) -> String {
    let mut out = String::from(
        "| claim | from | measured here | reproduced |\n|---|---|---|---|\n",
    );
    for c in claims {
        out += &format!(
            "| {} | {} | {} | {} |\n",
            c.claim,
            c.source,
            c.measured,
            match c.reproduced {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::payload::measure_encoding;
    use super::super::{
        parse_producer_performance, BenchOptions, BrokerLog, Figure, LogGrowth, PerfRun,
    };
    use super::*;
    use crate::cluster::Backend;
    use crate::metrics::{LatencySummary, Throughput};

    /// A figure of `case` at `rate` records/s (the lab) and `java` (ProducerPerformance).
    fn figure(case: Case, rate: f64, all: f64, java: f64) -> Figure {
        let result = parse_producer_performance(&format!(
            "1000 records sent, {java} records/sec (1.0 MB/sec), 1.0 ms avg latency, \
             2.0 ms max latency, 1 ms 50th, 2 ms 95th, 2 ms 99th, 2 ms 99.9th."
        ))
        .unwrap();
        Figure {
            case,
            label: case.label(),
            backend_description: "Apache Kafka 4.1.1, 1 broker".into(),
            kafka_version: "4.1.1".into(),
            producer_settings: BTreeMap::new(),
            records: 1000,
            record_bytes: 1024,
            failed: 0,
            first_error: None,
            throughput: Throughput::from_seconds(1000, 1024 * 1000, 1000.0 / rate),
            throughput_runs: vec![rate],
            ack_latency: LatencySummary::default(),
            transactions: None,
            end_to_end: None,
            producer_performance: Some(PerfRun {
                command: Vec::new(),
                tools_jar: String::new(),
                wall_seconds: 1.0,
                result,
                records_per_sec_runs: vec![java],
                warmup_records: 100,
                whole_run: None,
                broker_log: BrokerLog::NotChecked,
                broker_unknown: None,
                metrics: Default::default(),
            }),
            vs_acks_all: Some(rate / all),
            vs_producer_performance: Some(rate / java),
            vs_producer_performance_pairs: vec![rate / java],
            broker_log: BrokerLog::NotChecked,
            wire: None,
        }
    }

    /// The log grew at `rate` records/s.
    fn grew(rate: f64) -> BrokerLog {
        BrokerLog::Grew(LogGrowth {
            bytes: 1_034_000,
            seconds: 1000.0 / rate,
            bytes_per_record: 1034.0,
            records_per_sec: rate,
            cpu: None,
        })
    }

    #[test]
    fn a_client_far_from_its_broker_log_is_warned_about() {
        // acks=all: the lab within 4 % of its log, Java 30 % below its own.
        let mut all = figure(Case::AcksAll, 100_000.0, 100_000.0, 70_000.0);
        all.broker_log = grew(104_000.0);
        all.producer_performance.as_mut().unwrap().broker_log = grew(100_000.0);
        // acks=1: the lab 15 % above its log; Java's log unknown, not compared.
        let mut one = figure(Case::Acks1, 115_000.0, 100_000.0, 90_000.0);
        one.broker_log = grew(100_000.0);
        one.producer_performance.as_mut().unwrap().broker_log = BrokerLog::Unknown;
        let r = report(vec![all, one]);
        let warnings = r.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0]
                .starts_with("acks=all: ProducerPerformance reports 70000 records/s")
                && warnings[0].contains("(-30 %, more than 10 %)"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].starts_with("acks=1: the lab reports 115000 records/s")
                && warnings[1].contains("100000 records/s")
                && warnings[1].contains("(+15 %, more than 10 %)"),
            "{}",
            warnings[1]
        );
        // Both writings show them, and the broker's figures beside the clients'.
        let page = r.markdown();
        assert_eq!(page.matches("**Warning:**").count(), 2, "{page}");
        assert!(page.contains("| broker |"), "{page}");
        assert!(
            page.contains("| 104000 |") && page.contains("| unknown |"),
            "{page}"
        );
        let text = r.to_string();
        assert_eq!(text.matches("WARNING: ").count(), 2, "{text}");
        // Reports from before the check: no broker columns, no warnings.
        let old = report(vec![figure(Case::AcksAll, 1.0, 1.0, 1.0)]);
        assert!(old.warnings().is_empty());
        assert!(!old.markdown().contains("| broker |"));
    }

    fn report(figures: Vec<Figure>) -> BenchReport {
        BenchReport {
            backend: Backend::Kafka,
            backend_description: "Apache Kafka 4.1.1, 1 broker".into(),
            brokers: 1,
            kafka_version: "4.1.1".into(),
            librdkafka_version: "2.12.1".into(),
            options: BenchOptions::default(),
            load_before: None,
            load_after: None,
            cpus: 2,
            started_unix_secs: 0,
            seconds: 1.0,
            payload_encoding: measure_encoding(100),
            settle_seconds: 0.0,
            max_dirty_mb_at_start: None,
            figures,
            notes: Vec::new(),
        }
    }

    #[test]
    fn published_claims_follow_the_figures() {
        let tx = |ms| Case::Transactional {
            commit_interval_ms: ms,
        };
        // The lab: acks=0 clearly first, idempotence at 0.70, a rising curve.
        // Java: idempotence at 0.97.
        let all = 100_000.0;
        let five = report(vec![
            figure(Case::Acks0, 130_000.0, all, 40_000.0),
            figure(Case::Acks1, 101_000.0, all, 40_000.0),
            figure(Case::AcksAll, all, all, 40_000.0),
            figure(Case::Idempotent, 70_000.0, all, 38_800.0),
            figure(tx(10), 40_000.0, all, 20_000.0),
            figure(tx(3000), 69_000.0, all, 38_000.0),
        ]);
        // One in flight: transactions at 100 ms at 0.96 (lab), 0.90 (Java).
        let one = report(vec![
            figure(Case::AcksAll, all, all, 40_000.0),
            figure(tx(100), 96_000.0, all, 36_000.0),
        ]);
        // Three brokers: acks=all waits for followers, the order shows.
        let mut three = report(vec![
            figure(Case::Acks0, 110_000.0, 70_000.0, 1.0),
            figure(Case::Acks1, 95_000.0, 70_000.0, 1.0),
            figure(Case::AcksAll, 70_000.0, 70_000.0, 1.0),
        ]);
        three.brokers = 3;
        let claims = published_claims(&five, Some(&one), Some(&three));
        assert!(
            claims[0].claim.ends_with("(1 broker)"),
            "{}",
            claims[0].claim
        );
        assert!(
            claims[1]
                .claim
                .ends_with("(3 brokers, replication factor 3)"),
            "{}",
            claims[1].claim
        );
        let verdicts: Vec<Option<bool>> = claims.iter().map(|c| c.reproduced).collect();
        assert_eq!(
            verdicts,
            [
                Some(true),  // acks order, one broker
                Some(true),  // acks order, three brokers
                Some(false), // idempotence, lab: 0.70
                Some(true),  // idempotence, Java: 0.97
                Some(true),  // transactions, lab: 0.96
                Some(false), // transactions, Java: 0.90
                Some(true),  // the curve rises
                Some(true),  // lab >= 0.9x ProducerPerformance everywhere
            ],
            "{claims:#?}"
        );
        assert_eq!(claims[2].measured, "0.70× acks=all");
        assert!(
            claims[6].measured.starts_with("3000 ms commits: 1.73×"),
            "{}",
            claims[6].measured
        );
        // A tie between acks=1 and acks=0 is no order; a missing report is no verdict.
        let tie = report(vec![
            figure(Case::Acks0, 102_000.0, all, 1.0),
            figure(Case::Acks1, 100_000.0, all, 1.0),
            figure(Case::AcksAll, all, all, 1.0),
        ]);
        let claims = published_claims(&tie, None, None);
        assert_eq!(claims[0].reproduced, Some(false));
        assert_eq!(claims[1].reproduced, None);
        assert_eq!(claims[4].reproduced, None);
        assert_eq!(claims[4].measured, "not measured");
        let table = claims_markdown(&claims);
        assert!(
            table.contains("| **no** |") && table.contains("| – |"),
            "{table}"
        );
    }
}
