//! What `lab bench` measured: the figures per case, the report around them,
//! and the report written out, as the book's Markdown and as the terminal's
//! aligned text. Both writings build their tables of figures the same way, from
//! one list of columns per table (`Table`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::cases::in_flight;
use super::{
    BenchOptions, BrokerLog, Case, CpuPerRecord, EncodingCost, PerfResult, PerfRun,
    WireCounts,
};
use crate::cluster::Backend;
use crate::error::{Doing, Error, Result};
use crate::metrics::{format_us, LatencySummary, Throughput};

/// The figures of one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub case: Case,
    pub label: String,
    /// e.g. `Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092`.
    pub backend_description: String,
    pub kafka_version: String,
    /// The librdkafka settings used (the transactional id left out).
    pub producer_settings: BTreeMap<String, String>,
    pub records: u64,
    pub record_bytes: usize,
    /// Records whose delivery report was an error, in all runs (none on a
    /// healthy broker).
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Producer alone: first measured send to the last acknowledgement or
    /// commit; of the median run.
    pub throughput: Throughput,
    /// Records/s of every producer-alone run, in the order they ran.
    pub throughput_runs: Vec<f64>,
    /// Producer alone: handing a record over to its delivery report (median run).
    pub ack_latency: LatencySummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TransactionStats>,
    /// The second pass, with a consumer reading along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end: Option<EndToEnd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_performance: Option<PerfRun>,
    /// Throughput (records/s) as a fraction of the acks=all case's: the median
    /// of the ratios of runs of the same round, which ran close together in
    /// time (a round is every case once), so that a busy spell of the machine
    /// cancels out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_acks_all: Option<f64>,
    /// Throughput (records/s) as a fraction of ProducerPerformance's on the
    /// same case: the median of `vs_producer_performance_pairs` (in reports
    /// recorded before those, the ratio of the two medians).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_producer_performance: Option<f64>,
    /// The ratio of each pair of runs, a lab run and the ProducerPerformance
    /// run right after it, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vs_producer_performance_pairs: Vec<f64>,
    /// How fast the broker's log grew in the median producer-alone run.
    #[serde(default)]
    pub broker_log: BrokerLog,
    /// librdkafka's counters over the median run's measured part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireCounts>,
}

/// A client's throughput further than this (as a fraction) from its
/// broker's log is flagged: one of the two is not measuring what it says.
pub const DISAGREEMENT: f64 = 0.10;

/// How the commits of a transactional case went.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionStats {
    pub commit_interval_ms: u64,
    /// Transactions committed in the measured part (the last one included).
    pub commits: u64,
    /// Time spent draining delivery reports and committing, in all.
    pub commit_seconds: f64,
    /// Per commit, drain included.
    pub mean_commit_ms: f64,
}

/// The pass with a consumer reading the topic while the producer writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndToEnd {
    /// Measured records the consumer received.
    pub received: u64,
    /// From the record's `sent_at_us` to the consumer receiving it.
    pub latency: LatencySummary,
    /// The producer's throughput in this pass (sharing the CPU with the consumer).
    pub throughput: Throughput,
    pub ack_latency: LatencySummary,
}

/// Everything `lab bench` measured. Serializes to JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub backend: Backend,
    pub backend_description: String,
    /// Brokers in the cluster (0 in reports recorded before it was kept).
    #[serde(default)]
    pub brokers: usize,
    pub kafka_version: String,
    pub librdkafka_version: String,
    pub options: BenchOptions,
    /// /proc/loadavg (1, 5, 15 minutes) before and after: other work on the
    /// machine shows up here.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    pub cpus: usize,
    pub started_unix_secs: u64,
    pub seconds: f64,
    pub payload_encoding: EncodingCost,
    /// Time spent waiting for dirty pages to be written back (see
    /// `BenchOptions::settle_dirty_mb`), and the most dirty page cache seen
    /// at the start of a measured run, in MB.
    pub settle_seconds: f64,
    pub max_dirty_mb_at_start: Option<u64>,
    pub figures: Vec<Figure>,
    /// What was skipped or went wrong, and caveats for reading the figures.
    pub notes: Vec<String>,
}

impl BenchReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bench report always serializes")
    }

    /// Reads a report written by `lab bench --json FILE` (the book's is
    /// `book/src/generated/bench.json`).
    pub fn read(path: impl AsRef<std::path::Path>) -> Result<BenchReport> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).doing(format!(
            "cannot read {} (write one with `lab bench --json FILE`)",
            path.display()
        ))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::BadData(format!("{} is not a lab bench report: {e}", path.display()))
        })
    }

    pub fn figure(&self, case: Case) -> Option<&Figure> {
        self.figures.iter().find(|f| f.case == case)
    }

    /// `1 broker`, `3 brokers, replication factor 3`: what the acks settings
    /// wait for depends on it.
    pub fn setup(&self) -> String {
        match self.brokers {
            0 => "broker count not recorded".into(),
            1 => "1 broker".into(),
            n => format!("{n} brokers, replication factor {}", n.min(3)),
        }
    }

    /// The report as the book shows it: throughput, latency and transaction
    /// tables, the line naming what measured them, and the notes.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = Table::new(&self.figures, &[&BOOK_THROUGHPUT]).markdown();
        out += "\n";
        out += &Table::new(&self.figures, &[&[CASE], &LATENCIES]).markdown();
        let transactional = Table::new(
            self.figures.iter().filter(|f| f.transactions.is_some()),
            &[&BOOK_TRANSACTIONS],
        );
        if !transactional.rows.is_empty() {
            out += "\n";
            out += &transactional.markdown();
        }
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(|| "?".into(), |l| format!("{:.2}", l[0]))
        };
        out += &format!(
            "\nMeasured on {}, librdkafka {}, {} CPUs (load average {} before, {} after): \
             {} after {} warm-up records, the median of {}, {}, \
             max.in.flight.requests.per.connection={}.\n",
            self.backend_description,
            self.librdkafka_version,
            self.cpus,
            load(self.load_before),
            load(self.load_after),
            per_case(o),
            o.warmup_records,
            count(o.repetitions.max(1), "interleaved run"),
            count(o.partitions, "partition"),
            in_flight(o.one_in_flight),
        );
        if !self.notes.is_empty() {
            out += "\n";
            for note in &self.notes {
                out += &format!("- {note}\n");
            }
        }
        let warnings = self.warnings();
        if !warnings.is_empty() {
            out += "\n";
            for warning in &warnings {
                out += &format!("**Warning:** {warning}\n\n");
            }
        }
        out
    }

    /// Where the time goes: CPU per record on each side for both clients,
    /// and librdkafka's requests and wake-ups, with the line naming what
    /// measured them.
    pub fn cpu_markdown(&self) -> String {
        let mut out = String::new();
        let cpu = Table::new(
            self.figures.iter().filter(|f| cpu(f.broker_log).is_some()),
            &[&BOOK_CPU],
        );
        if !cpu.rows.is_empty() {
            out += &cpu.markdown();
            out += "\n";
        }
        let wire = Table::new(
            self.figures.iter().filter(|f| f.wire.is_some()),
            &[&BOOK_WIRE],
        );
        if !wire.rows.is_empty() {
            out += &wire.markdown();
            out += "\n";
        }
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(|| "?".into(), |l| format!("{:.2}", l[0]))
        };
        out += &format!(
            "Measured on {}, librdkafka {}, {} CPUs (load average {} before, {} after): {} \
             after {} warm-up records, the median of {}, {}. CPU: microseconds of CPU time \
             (user and system, every thread, from /proc) per record over the measured window, \
             the client's process and the broker's, in the median runs.\n",
            self.backend_description,
            self.librdkafka_version,
            self.cpus,
            load(self.load_before),
            load(self.load_after),
            per_case(&self.options),
            self.options.warmup_records,
            count(self.options.repetitions.max(1), "interleaved run"),
            count(self.options.partitions, "partition"),
        );
        out
    }

    /// Where a client's figure and its broker's log disagree by more than
    /// [`DISAGREEMENT`], one sentence each (the lab's run, then
    /// ProducerPerformance's, per case). Unknown broker figures are not compared.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for f in &self.figures {
            let java = f.producer_performance.as_ref();
            let pairs = [
                ("the lab", Some(f.throughput.records_per_sec), f.broker_log),
                (
                    "ProducerPerformance",
                    java.map(|p| p.result.records_per_sec),
                    java.map_or(BrokerLog::NotChecked, |p| p.broker_log),
                ),
            ];
            for (client, rate, broker) in pairs {
                let (Some(rate), Some(log)) = (rate, broker.records_per_sec()) else {
                    continue;
                };
                let off = rate / log - 1.0;
                if off.abs() > DISAGREEMENT {
                    warnings.push(format!(
                        "{}: {client} reports {rate:.0} records/s, but the broker's log grew at \
                         {log:.0} records/s over the same run ({:+.0} %, more than {:.0} %): \
                         the client's clock and the broker's log disagree about this run",
                        f.label,
                        off * 100.0,
                        DISAGREEMENT * 100.0
                    ));
                }
            }
        }
        warnings
    }
}

impl BenchReport {
    /// The terminal's tables of CPU per record and librdkafka's counters,
    /// where the report has them.
    fn write_cpu_text(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpu = Table::new(
            self.figures.iter().filter(|f| cpu(f.broker_log).is_some()),
            &[&BOOK_CPU],
        );
        if !cpu.rows.is_empty() {
            f.write_str("CPU per record, µs (median runs' measured windows)\n")?;
            f.write_str(&cpu.text(&[&[22], &[9, 12], &[9, 13], &[14, 10]]))?;
            writeln!(f)?;
        }
        let wire = Table::new(
            self.figures.iter().filter(|f| f.wire.is_some()),
            &[&BOOK_WIRE],
        );
        if !wire.rows.is_empty() {
            f.write_str(
                "librdkafka's counters over the median runs' measured parts\n",
            )?;
            f.write_str(&wire.text(&[&[22], &[9, 16, 21, 16]]))?;
            writeln!(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for BenchReport {
    /// The report for the terminal: what measured it, two tables of the
    /// figures, the payload's encoding cost, a legend and the notes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} ({} warm-up, median of {}), {}, max.in.flight={}; {}; librdkafka {}",
            per_case(o),
            o.warmup_records,
            count(o.repetitions.max(1), "run"),
            count(o.partitions, "partition"),
            in_flight(o.one_in_flight),
            self.backend_description,
            self.librdkafka_version
        )?;
        let load = |l: Option<[f64; 3]>| {
            l.map_or_else(
                || "?".into(),
                |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]),
            )
        };
        writeln!(
            f,
            "{} CPUs; load average before {}, after {}; {:.0} s in all, {:.0} s of it \
             waiting for dirty pages (at most {} MB dirty at a run's start)",
            self.cpus,
            load(self.load_before),
            load(self.load_after),
            self.seconds,
            self.settle_seconds,
            self.max_dirty_mb_at_start
                .map_or_else(|| "?".into(), |d| d.to_string()),
        )?;
        writeln!(f)?;
        let throughput = Table::new(&self.figures, &[&TERMINAL_THROUGHPUT]);
        f.write_str(&throughput.text(&[&[22, 9, 9, 7, 6], &[9, 9, 7], &[6, 9]]))?;
        writeln!(f)?;
        let latencies = Table::new(&self.figures, &[&[CASE], &LATENCIES]);
        f.write_str(&latencies.text(&[&[22], &[9, 9, 9], &[9, 9, 9]]))?;
        writeln!(f)?;
        let details = Table::new(&self.figures, &[&TERMINAL_DETAILS]);
        f.write_str(&details.text(&[&[22, 12], &[9, 9, 9], &[9, 9, 9], &[8, 10]]))?;
        writeln!(f)?;
        self.write_cpu_text(f)?;
        let e = &self.payload_encoding;
        writeln!(
            f,
            "payload encoding per {} B record: JSON (record::value) {:.0} ns, template {:.0} ns",
            e.record_bytes, e.json_ns_per_record, e.template_ns_per_record
        )?;
        writeln!(
            f,
            "x all: records/s as a fraction of acks=all; PP: Kafka's ProducerPerformance (Java \
             client) on the same case; x PP: lab / PP, the median of the pairs (lab run, PP run) \
             and their range; broker: the rate the broker's log grew at in the same run; \
             MB = 2^20 bytes"
        )?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for warning in self.warnings() {
            writeln!(f, "WARNING: {warning}")?;
        }
        Ok(())
    }
}

/// `100000 records of 1024 B per case`.
fn per_case(o: &BenchOptions) -> String {
    format!("{} records of {} B per case", o.records, o.record_bytes)
}

/// `1 partition`, `3 partitions`.
pub(super) fn count(n: impl Into<i64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

// ---------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------

/// A column of a table of figures: its heading, and its cell for a figure
/// (None: not measured, written as a dash).
type Column = (&'static str, fn(&Figure) -> Option<String>);

/// A table of figures, a row per case: built once from its columns (given in
/// parts, e.g. the case, then [`LATENCIES`]), written for the book (Markdown)
/// or for the terminal (aligned text).
struct Table {
    headings: Vec<&'static str>,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    fn new<'a>(
        figures: impl IntoIterator<Item = &'a Figure>,
        parts: &[&[Column]],
    ) -> Table {
        let columns: Vec<Column> = parts.concat();
        Table {
            headings: columns.iter().map(|(heading, _)| *heading).collect(),
            rows: figures
                .into_iter()
                .map(|f| columns.iter().map(|(_, cell)| cell(f)).collect())
                .collect(),
        }
    }

    /// The rows' cells, `dash` where nothing was measured.
    fn cells<'t>(&'t self, dash: &'t str) -> impl Iterator<Item = Vec<&'t str>> + 't {
        self.rows
            .iter()
            .map(move |row| row.iter().map(|c| c.as_deref().unwrap_or(dash)).collect())
    }

    /// Markdown: the case left-aligned, the figures right-aligned, `–` where
    /// nothing was measured; a column measured in no row is left out (a run
    /// without end-to-end latency showed three columns of dashes).
    fn markdown(&self) -> String {
        let keep: Vec<usize> = (0..self.headings.len())
            .filter(|&i| i == 0 || self.rows.iter().any(|r| r[i].is_some()))
            .collect();
        let line = |cells: &[&str]| {
            let kept: Vec<&str> = keep.iter().map(|&i| cells[i]).collect();
            format!("| {} |\n", kept.join(" | "))
        };
        let mut out = line(&self.headings);
        out += &format!("|---{}|\n", "|---:".repeat(keep.len() - 1));
        for row in self.cells("–") {
            out += &line(&row);
        }
        out
    }

    /// Aligned text: the columns in groups parted by `|`, `widths` per group;
    /// the case left-aligned, the figures right-aligned, `-` where nothing was
    /// measured.
    fn text(&self, widths: &[&[usize]]) -> String {
        let line = |cells: &[&str]| {
            let mut out = String::new();
            let mut cells = cells.iter();
            for (g, group) in widths.iter().enumerate() {
                for (i, &w) in group.iter().enumerate() {
                    let cell = cells.next().copied().unwrap_or_default();
                    match (g, i) {
                        (0, 0) => out += &format!("{cell:<w$}"),
                        (_, 0) => out += &format!(" | {cell:>w$}"),
                        _ => out += &format!(" {cell:>w$}"),
                    }
                }
            }
            out + "\n"
        };
        let mut out = line(&self.headings);
        for row in self.cells("-") {
            out += &line(&row);
        }
        out
    }
}

/// The first column of every table.
const CASE: Column = ("case", |f| Some(f.label.clone()));

/// Send-to-ack latency of the producer alone, then end-to-end latency: the
/// same columns in the book and in the terminal.
const LATENCIES: [Column; 6] = [
    ("ack p50", |f| Some(format_us(f.ack_latency.p50_us as f64))),
    ("ack p99", |f| Some(format_us(f.ack_latency.p99_us as f64))),
    ("ack p99.9", |f| {
        Some(format_us(f.ack_latency.p999_us as f64))
    }),
    ("e2e p50", |f| end_to_end(f, |l| l.p50_us)),
    ("e2e p99", |f| end_to_end(f, |l| l.p99_us)),
    ("e2e p99.9", |f| end_to_end(f, |l| l.p999_us)),
];

/// The book's throughput table.
const BOOK_THROUGHPUT: [Column; 10] = [
    CASE,
    ("records/s", records_per_sec),
    ("MB/s", mb_per_sec),
    ("× acks=all", vs_acks_all),
    ("runs, k/s", runs),
    // Short headings: ten columns must fit the book's page.
    ("broker", broker_records_per_sec),
    ("Java", java_records_per_sec),
    ("Java's broker", java_broker_records_per_sec),
    ("lab ÷ Java", vs_java),
    ("pairs", vs_java_pairs),
];

/// The book's table of the transactional cases.
const BOOK_TRANSACTIONS: [Column; 5] = [
    CASE,
    ("records sent", |f| Some(f.throughput.records.to_string())),
    ("transactions", commits),
    ("mean transaction", |f| {
        let t = f.transactions?;
        let ms = f.throughput.seconds * 1000.0 / t.commits.max(1) as f64;
        Some(format!("{ms:.0} ms"))
    }),
    ("mean drain + commit", |f| {
        f.transactions
            .map(|t| format!("{:.1} ms", t.mean_commit_ms))
    }),
];

/// CPU per record on each side, for both clients, and whether CPU explains
/// the gap between them: Java's CPU per record (client and broker) over the
/// lab's, beside the lab's throughput over Java's.
const BOOK_CPU: [Column; 7] = [
    CASE,
    ("lab µs", |f| {
        cpu(f.broker_log).map(|c| format!("{:.2}", c.client_us))
    }),
    ("lab's broker", |f| {
        cpu(f.broker_log).map(|c| format!("{:.2}", c.broker_us))
    }),
    ("Java µs", |f| {
        java_cpu(f).map(|c| format!("{:.2}", c.client_us))
    }),
    ("Java's broker", |f| {
        java_cpu(f).map(|c| format!("{:.2}", c.broker_us))
    }),
    ("CPU Java ÷ lab", |f| {
        let (lab, java) = (cpu(f.broker_log)?, java_cpu(f)?);
        let ratio = (java.client_us + java.broker_us) / (lab.client_us + lab.broker_us);
        ratio.is_finite().then(|| format!("{ratio:.2}"))
    }),
    ("lab ÷ Java", vs_java),
];

/// The same cases under other settings, one row per run and case: the
/// lab's throughput, its CPU per record on each side, its broker thread's
/// wake-ups per record. `runs`: each report with what distinguishes it.
pub fn cpu_comparison_markdown(runs: &[(&str, &BenchReport)]) -> String {
    let mut out = String::from(
        "| run | case | records/s | lab µs | lab's broker | wake-ups/record |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let dash = || "–".to_string();
    for (what, report) in runs {
        for f in &report.figures {
            let c = cpu(f.broker_log);
            out += &format!(
                "| {what} | {} | {:.0} | {} | {} | {} |\n",
                f.label,
                f.throughput.records_per_sec,
                c.map_or_else(dash, |c| format!("{:.2}", c.client_us)),
                c.map_or_else(dash, |c| format!("{:.2}", c.broker_us)),
                f.wire
                    .and_then(|w| w.wakeups_per_record())
                    .map_or_else(dash, |w| format!("{w:.3}")),
            );
        }
    }
    out
}

/// How the records travelled: librdkafka's requests and its broker thread's
/// wake-ups over the measured part, and the Java client's records per
/// request (its whole run).
const BOOK_WIRE: [Column; 5] = [
    CASE,
    ("requests", |f| {
        f.wire.map(|w| w.produce_requests.to_string())
    }),
    ("records/request", |f| {
        f.wire?.records_per_request().map(|r| format!("{r:.0}"))
    }),
    ("Java records/request", |f| {
        let m = f.producer_performance.as_ref()?.metrics;
        m.records_per_request.map(|r| format!("{r:.0}"))
    }),
    ("wake-ups/record", |f| {
        f.wire?.wakeups_per_record().map(|w| format!("{w:.3}"))
    }),
];

/// The CPU per record of a run's measured window, if read.
fn cpu(log: BrokerLog) -> Option<CpuPerRecord> {
    match log {
        BrokerLog::Grew(g) => g.cpu,
        _ => None,
    }
}

/// ProducerPerformance's CPU per record (its median run's).
fn java_cpu(f: &Figure) -> Option<CpuPerRecord> {
    cpu(f.producer_performance.as_ref()?.broker_log)
}

/// The terminal's first table: the lab's throughput, ProducerPerformance's,
/// and their ratio.
const TERMINAL_THROUGHPUT: [Column; 10] = [
    CASE,
    ("rec/s", records_per_sec),
    ("broker", broker_records_per_sec),
    ("MB/s", mb_per_sec),
    ("x all", vs_acks_all),
    ("PP rec/s", java_records_per_sec),
    ("PP broker", java_broker_records_per_sec),
    ("PP MB/s", |f| {
        java(f).map(|p| format!("{:.1}", p.mb_per_sec))
    }),
    ("x PP", vs_java),
    ("pairs", vs_java_pairs),
];

/// The terminal's second table: the spread of the runs, ProducerPerformance's
/// latency, the end-to-end pass, the transactions.
const TERMINAL_DETAILS: [Column; 10] = [
    CASE,
    ("runs k rec/s", runs),
    ("PP p50", |f| java(f).map(|p| format!("{:.0} ms", p.p50_ms))),
    ("PP p99", |f| java(f).map(|p| format!("{:.0} ms", p.p99_ms))),
    ("PP p99.9", |f| {
        java(f).map(|p| format!("{:.0} ms", p.p999_ms))
    }),
    ("e2e rec/s", |f| {
        let e = f.end_to_end.as_ref()?;
        Some(format!("{:.0}", e.throughput.records_per_sec))
    }),
    ("received", |f| {
        f.end_to_end.as_ref().map(|e| e.received.to_string())
    }),
    ("failed", |f| Some(f.failed.to_string())),
    ("commits", commits),
    ("commit ms", |f| {
        f.transactions.map(|t| format!("{:.1}", t.mean_commit_ms))
    }),
];

fn records_per_sec(f: &Figure) -> Option<String> {
    Some(format!("{:.0}", f.throughput.records_per_sec))
}

fn mb_per_sec(f: &Figure) -> Option<String> {
    Some(format!("{:.1}", f.throughput.mb_per_sec))
}

fn vs_acks_all(f: &Figure) -> Option<String> {
    f.vs_acks_all.map(|r| format!("{r:.2}"))
}

fn runs(f: &Figure) -> Option<String> {
    Some(spread(&f.throughput_runs))
}

/// ProducerPerformance's result, if it ran.
fn java(f: &Figure) -> Option<PerfResult> {
    f.producer_performance.as_ref().map(|p| p.result)
}

fn java_records_per_sec(f: &Figure) -> Option<String> {
    java(f).map(|p| format!("{:.0}", p.records_per_sec))
}

fn vs_java(f: &Figure) -> Option<String> {
    f.vs_producer_performance.map(|r| format!("{r:.2}"))
}

/// A broker-side figure: records/s, `unknown` where the lab could not read
/// the broker's log, None in reports from before the check.
fn broker_cell(log: BrokerLog) -> Option<String> {
    match log {
        BrokerLog::NotChecked => None,
        BrokerLog::Unknown => Some("unknown".into()),
        BrokerLog::Grew(g) => Some(format!("{:.0}", g.records_per_sec)),
    }
}

fn broker_records_per_sec(f: &Figure) -> Option<String> {
    broker_cell(f.broker_log)
}

fn java_broker_records_per_sec(f: &Figure) -> Option<String> {
    broker_cell(f.producer_performance.as_ref()?.broker_log)
}

/// The lowest and highest ratio of the pairs: `0.93-1.08`.
fn vs_java_pairs(f: &Figure) -> Option<String> {
    let pairs = &f.vs_producer_performance_pairs;
    let lo = pairs.iter().copied().reduce(f64::min)?;
    let hi = pairs.iter().copied().reduce(f64::max)?;
    Some(format!("{lo:.2}-{hi:.2}"))
}

fn end_to_end(f: &Figure, percentile: fn(&LatencySummary) -> u64) -> Option<String> {
    let e = f.end_to_end.as_ref()?;
    Some(format_us(percentile(&e.latency) as f64))
}

fn commits(f: &Figure) -> Option<String> {
    f.transactions.map(|t| t.commits.to_string())
}

/// The lowest and highest of some records/s, in thousands: `301-320`.
fn spread(runs: &[f64]) -> String {
    let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = runs.iter().copied().fold(0.0, f64::max);
    match runs.len() {
        0 => "-".into(),
        1 => format!("{:.0}", lo / 1000.0),
        _ => format!("{:.0}-{:.0}", lo / 1000.0, hi / 1000.0),
    }
}
