//! What the checker found, and how a learner reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::History;

const NO_FAULT: &str = "no fault";

/// How many ids a finding list keeps (the count keeps counting).
pub const SHOWN: usize = 10;

/// The kinds of anomaly the checker looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Lost,
    Duplicated,
    AbortedRead,
    OutOfOrder,
    Unexpected,
    OverCommitted,
    ReprocessingPending,
}

impl Kind {
    /// The label a learner reads.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Lost => "lost",
            Kind::Duplicated => "duplicated",
            Kind::AbortedRead => "aborted reads",
            Kind::OutOfOrder => "out of order",
            Kind::Unexpected => "not in the input",
            Kind::OverCommitted => "offsets past output",
            Kind::ReprocessingPending => "reprocessing pending",
        }
    }

    /// What one finding of this kind means, in a sentence.
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Lost => "input ids the committed output lacks",
            Kind::Duplicated => "ids the committed output holds more than once",
            Kind::AbortedRead => {
                "ids a read_committed reader saw at positions of aborted transactions"
            }
            Kind::OutOfOrder => {
                "ids written before an id that followed them in their input partition"
            }
            Kind::Unexpected => "ids in the committed output that the input never held",
            Kind::OverCommitted => {
                "ids the group's offsets call done that the committed output lacks (lost for good)"
            }
            Kind::ReprocessingPending => {
                "ids already in the committed output that the group's offsets do not cover yet"
            }
        }
    }
}

/// One anomalous id: when it happened (milliseconds on the history's clock)
/// and the fault steps in force then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: u64,
    pub at_ms: u64,
    pub faults: Vec<String>,
}

/// The findings of one kind: the first [`SHOWN`] in id order, how many in
/// all, and how many under each combination of faults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomalies {
    pub kind: Kind,
    pub count: u64,
    pub shown: Vec<Finding>,
    /// Faults in force ("none" if none) -> how many findings.
    pub by_fault: BTreeMap<String, u64>,
}

impl Anomalies {
    pub(super) fn new(
        kind: Kind,
        findings: impl Iterator<Item = Finding>,
    ) -> Anomalies {
        let mut a = Anomalies {
            kind,
            count: 0,
            shown: Vec::new(),
            by_fault: BTreeMap::new(),
        };
        for f in findings {
            a.count += 1;
            *a.by_fault.entry(fault_label(&f.faults)).or_insert(0) += 1;
            if a.shown.len() < SHOWN {
                a.shown.push(f);
            }
        }
        a
    }

    /// The ids shown (at most [`SHOWN`]).
    pub fn ids(&self) -> Vec<u64> {
        self.shown.iter().map(|f| f.id).collect()
    }
}

fn fault_label(faults: &[String]) -> String {
    if faults.is_empty() {
        NO_FAULT.into()
    } else {
        faults.join(" + ")
    }
}

/// The checker's judgement of a whole history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub input_records: u64,
    pub input_partitions: u64,
    pub committed_records: u64,
    pub uncommitted_records: u64,
    /// Whether the history says which output positions were aborted.
    pub aborted_known: bool,
    /// Output positions of aborted transactions (none of them read, unless
    /// `aborted_reads` says otherwise).
    pub aborted_in_log: u64,
    /// Input partition -> the output partitions its records went to.
    pub partition_map: BTreeMap<i32, BTreeSet<i32>>,
    pub lost: Anomalies,
    pub duplicated: Anomalies,
    pub aborted_reads: Anomalies,
    pub out_of_order: Anomalies,
    pub unexpected: Anomalies,
    pub over_committed: Anomalies,
    pub reprocessing_pending: Anomalies,
    pub faults: Vec<String>,
}

impl Verdict {
    pub(super) fn new(h: &History) -> Verdict {
        let none = |kind| Anomalies::new(kind, std::iter::empty());
        let partitions: BTreeSet<i32> = h.input.iter().map(|r| r.partition).collect();
        Verdict {
            input_records: h.input.len() as u64,
            input_partitions: partitions.len() as u64,
            committed_records: h.committed.len() as u64,
            uncommitted_records: h.uncommitted.len() as u64,
            aborted_known: h.aborted.is_some(),
            aborted_in_log: 0,
            partition_map: BTreeMap::new(),
            lost: none(Kind::Lost),
            duplicated: none(Kind::Duplicated),
            aborted_reads: none(Kind::AbortedRead),
            out_of_order: none(Kind::OutOfOrder),
            unexpected: none(Kind::Unexpected),
            over_committed: none(Kind::OverCommitted),
            reprocessing_pending: none(Kind::ReprocessingPending),
            faults: h.faults.iter().map(|f| f.name.clone()).collect(),
        }
    }

    /// Every kind's findings, in the order the verdict shows them.
    pub fn all(&self) -> [&Anomalies; 7] {
        [
            &self.lost,
            &self.duplicated,
            &self.aborted_reads,
            &self.out_of_order,
            &self.unexpected,
            &self.over_committed,
            &self.reprocessing_pending,
        ]
    }

    /// No anomaly of any kind.
    pub fn clean(&self) -> bool {
        self.all().iter().all(|a| a.count == 0)
    }

    /// Output set = input set: nothing lost, nothing from elsewhere.
    pub fn same_ids(&self) -> bool {
        self.lost.count == 0 && self.unexpected.count == 0
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Exactly-once history: {} input records on {} partitions; {} committed output records ({} in the log counting aborted ones)",
            self.input_records, self.input_partitions, self.committed_records, self.uncommitted_records
        )?;
        let faults = if self.faults.is_empty() {
            "none".to_string()
        } else {
            self.faults.join(", ")
        };
        writeln!(f, "  faults: {faults}")?;
        for a in self.all() {
            write_anomalies(f, a)?;
        }
        let aborted = if self.aborted_known {
            "checked against the log's abort markers"
        } else {
            "not checked: the history does not say which transactions were aborted"
        };
        writeln!(
            f,
            "  records of aborted transactions in the log: {} (aborted reads {aborted})",
            self.aborted_in_log
        )?;
        let map: Vec<String> = self
            .partition_map
            .iter()
            .map(|(i, outs)| {
                let outs: Vec<String> = outs.iter().map(i32::to_string).collect();
                format!("{i}->{}", outs.join("/"))
            })
            .collect();
        writeln!(
            f,
            "  input partition -> output partitions: {}",
            map.join(", ")
        )?;
        writeln!(
            f,
            "  output ids = input ids: {}",
            if self.same_ids() { "yes" } else { "no" }
        )?;
        if self.clean() {
            write!(f, "Verdict: exactly once held")
        } else {
            let broken: Vec<&str> = self
                .all()
                .iter()
                .filter(|a| a.count > 0)
                .map(|a| a.kind.label())
                .collect();
            write!(f, "Verdict: exactly once broken ({})", broken.join(", "))
        }
    }
}

fn write_anomalies(f: &mut fmt::Formatter<'_>, a: &Anomalies) -> fmt::Result {
    if a.count == 0 {
        return writeln!(f, "  {:<22}0", a.kind.label());
    }
    writeln!(
        f,
        "  {:<22}{}: {}",
        a.kind.label(),
        a.count,
        a.kind.meaning()
    )?;
    let shown: Vec<String> = a
        .shown
        .iter()
        .map(|x| format!("{} at {:.1} s", x.id, x.at_ms as f64 / 1000.0))
        .collect();
    let more = if a.count > a.shown.len() as u64 {
        format!(" and {} more", a.count - a.shown.len() as u64)
    } else {
        String::new()
    };
    writeln!(f, "    ids: {}{more}", shown.join(", "))?;
    let during: Vec<String> = a
        .by_fault
        .iter()
        .map(|(fault, n)| match fault.as_str() {
            NO_FAULT => format!("{n} with no fault in force"),
            _ => format!("{n} during {fault}"),
        })
        .collect();
    writeln!(f, "    when: {}", during.join("; "))
}
