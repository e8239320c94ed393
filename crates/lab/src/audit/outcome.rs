//! The result of a run: the counts, what produced them, and how long it took.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::{Counts, Fates, IdRanges, Observed};
use crate::cluster::{Backend, Cluster};
use crate::semantics::Semantic;

/// One run of one semantic, as the audit counted it. Serializes to JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub semantic: Semantic,
    pub backend: Backend,
    /// e.g. `Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092`.
    pub backend_description: String,
    pub kafka_version: String,
    pub librdkafka_version: String,
    pub input_topic: String,
    pub output_topic: Option<String>,
    /// The consumer group that processed the input topic.
    pub group: String,
    /// The fault injected, in words (None on the happy path).
    pub fault: Option<String>,
    pub records: u64,
    pub payload_bytes: usize,
    #[serde(flatten)]
    pub counts: Counts,
    /// What the counts count, id by id: which were lost, which duplicated.
    #[serde(default)]
    pub fates: Fates,
    /// Where the fault struck, in record ids (None on the happy path).
    #[serde(default)]
    pub window: Option<FaultWindow>,
    /// Records whose delivery failed, with librdkafka's verdict on each.
    #[serde(default)]
    pub failures: Vec<crate::produce::Failure>,
    pub produce_seconds: f64,
    pub consume_seconds: f64,
}

impl Outcome {
    /// An outcome of `semantic` on `cluster` with nothing counted yet: what
    /// every scenario fills in from there.
    pub fn new(
        cluster: &Cluster,
        semantic: Semantic,
        records: u64,
        input_topic: String,
    ) -> Outcome {
        Outcome {
            semantic,
            backend: cluster.backend(),
            backend_description: cluster.describe(),
            kafka_version: cluster.kafka_version().to_string(),
            librdkafka_version: crate::cluster::librdkafka_version(),
            input_topic,
            output_topic: None,
            group: String::new(),
            fault: None,
            records,
            payload_bytes: 100,
            counts: Counts::default(),
            fates: Fates::default(),
            window: None,
            failures: Vec::new(),
            produce_seconds: 0.0,
            consume_seconds: 0.0,
        }
    }

    /// Counts and fates from one set of observations (see [`crate::audit`]).
    pub fn record_audit(&mut self, observed: &Observed<'_>) {
        (self.counts, self.fates) = crate::audit::audit(observed);
    }

    /// Lost and duplicated ids outside the fault window: empty when the
    /// window accounts for everything that went wrong, the claim a timeline
    /// makes. Without a window, every such id.
    pub fn fates_outside_window(&self) -> Vec<u64> {
        let inside =
            |id: &u64| self.window.as_ref().is_some_and(|w| w.ids.contains(*id));
        let mut outside: Vec<u64> = self
            .fates
            .lost
            .iter()
            .chain(self.fates.duplicated_ids())
            .filter(|id| !inside(id))
            .collect();
        outside.sort_unstable();
        outside
    }

    /// Records per second through the producer stage.
    pub fn produce_rate(&self) -> f64 {
        self.counts.sent as f64 / self.produce_seconds.max(1e-9)
    }

    /// Pretty JSON, for files and for `lab run --json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an outcome always serializes")
    }

    /// Shown as a table when a notebook cell ends with an `Outcome` (evcxr
    /// looks for this method by name).
    pub fn evcxr_display(&self) {
        let c = &self.counts;
        let mut html = format!(
            "<p><b>{}</b> on {}</p><table><tr><th>sent</th><th>acknowledged</th>\
             <th>durable</th><th>delivered</th><th>lost</th><th>duplicated</th>\
             <th>aborted reads</th></tr>",
            self.semantic, self.backend_description
        );
        html += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            c.sent, c.acknowledged, c.durable, c.delivered, c.lost, c.duplicated, c.aborted_reads
        );
        println!("EVCXR_BEGIN_CONTENT text/html\n{html}\nEVCXR_END_CONTENT");
    }

    /// A Markdown table of several outcomes, with the line naming the backend(s).
    pub fn markdown_table(outcomes: &[Outcome]) -> String {
        let mut out = String::from(
            "| semantic | sent | acknowledged | durable | delivered | lost | duplicated | aborted reads |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for o in outcomes {
            let c = &o.counts;
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                o.semantic,
                c.sent,
                c.acknowledged,
                c.durable,
                c.delivered,
                c.lost,
                c.duplicated,
                c.aborted_reads
            );
        }
        let mut sources: Vec<&str> = outcomes
            .iter()
            .map(|o| o.backend_description.as_str())
            .collect();
        sources.dedup();
        if let Some(first) = outcomes.first() {
            out += &format!(
                "\nMeasured on {}, librdkafka {}.\n",
                sources.join("; "),
                first.librdkafka_version
            );
        }
        out
    }
}

/// Where a scenario's fault struck, in record ids. Records are sent in id
/// order, so a stretch of ids is a stretch of the run; a timeline shades it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// What happened to the records in it, in a few words.
    pub label: String,
    /// The window spans ids `from..to` (half-open; `from == to` when the fault
    /// reached no record, e.g. an acknowledgement nobody waited for).
    pub from: u64,
    pub to: u64,
    /// The ids in `from..to` the fault reached: all of them, unless the
    /// records it reached were spread over several partitions (a consumer's
    /// batch, one Produce request) and so interleaved with others.
    pub ids: IdRanges,
    /// When, in seconds since the run started, if the scenario timed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<[f64; 2]>,
}

impl FaultWindow {
    /// A window of every id in `range`.
    pub fn span(label: impl Into<String>, range: std::ops::Range<u64>) -> FaultWindow {
        FaultWindow {
            label: label.into(),
            from: range.start,
            to: range.end.max(range.start),
            ids: IdRanges::span(range),
            seconds: None,
        }
    }

    /// A window of exactly `ids`, spanning from the first to the last (or an
    /// empty window at `at` if there are none).
    pub fn of_ids(label: impl Into<String>, ids: IdRanges, at: u64) -> FaultWindow {
        let (from, to) = ids.bounds().map_or((at, at), |(a, b)| (a, b + 1));
        FaultWindow {
            label: label.into(),
            from,
            to,
            ids,
            seconds: None,
        }
    }
}

impl fmt::Display for Outcome {
    /// A summary table for a terminal or a notebook cell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(f, "{} on {}", self.semantic, self.backend_description)?;
        if let Some(fault) = &self.fault {
            writeln!(f, "  fault: {fault}")?;
        }
        if let Some(w) = &self.window {
            writeln!(
                f,
                "  window: ids {}..{} ({} records): {}",
                w.from,
                w.to,
                w.ids.len(),
                w.label
            )?;
        }
        let rows = [
            ("sent", c.sent, "records handed to the producer"),
            (
                "acknowledged",
                c.acknowledged,
                "delivery report said success",
            ),
            (
                "durable",
                c.durable,
                "distinct ids in the log (read_committed)",
            ),
            ("written twice", c.written_twice, "extra copies in the log"),
            (
                "lost in log",
                c.lost_in_log,
                "acknowledged, yet not in the log",
            ),
            (
                "aborted in log",
                c.aborted_in_log,
                "records of aborted transactions",
            ),
            (
                "delivered",
                c.delivered,
                "distinct ids at the end of the pipeline",
            ),
            ("lost", c.lost, "source records never delivered"),
            ("duplicated", c.duplicated, "deliveries beyond the first"),
            (
                "aborted reads",
                c.aborted_reads,
                "aborted records a reader saw",
            ),
        ];
        for (name, value, meaning) in rows {
            writeln!(f, "  {name:<14} {value:>9}   {meaning}")?;
        }
        write!(
            f,
            "  produced at {:.0} records/s; consumed in {:.2} s",
            self.produce_rate(),
            self.consume_seconds
        )
    }
}
