//! A checker for the whole history of one exactly-once read-process-write
//! pipeline (input topic -> processor -> output topic), in the spirit of
//! Jepsen's checkers and of the verification in Kafka's own transaction
//! system test: it takes what was read back after the run and judges all of
//! it at once. Pure: it never talks to Kafka ([`recorder`] records a
//! [`History`] from a finished run; [`crate::audit::dump_log`] recounts the
//! broker's files independently).
//!
//! The rules, each by record id (ids are unique in the input):
//!
//! - **lost**: an input id absent from the committed output.
//! - **duplicated**: an id more than once in the committed output.
//! - **aborted read**: a committed-view record at an output position (partition,
//!   offset) that an independent record of the log says belongs to an aborted
//!   transaction ([`History::aborted`], from the log's ABORT markers). Without
//!   that record the two views cannot convict each other: a record present
//!   uncommitted and absent committed is *aborted in the log* (the audit's rule,
//!   by position here), and a reader that leaked it would have put it in the
//!   committed view, where nothing distinguishes it any more.
//! - **out of order**: the processor reads each input partition in order and
//!   writes each record with the same key through the same partitioner, so the
//!   records of one input partition that land in one output partition must keep
//!   their input order (with the lab's default partitioner and equal partition
//!   counts, input partition p goes to output partition p; the checker does not
//!   assume it, it checks every observed pair). Only an id's first copy counts:
//!   a later copy is a duplicate, not a reordering.
//! - **unexpected**: an id in the committed output that the input never held
//!   (with *lost*, this says whether output set = input set).
//! - **over-committed**: an input record below the group's committed offset of
//!   its partition that is not in the committed output (the group says "done",
//!   the output does not have it: a restart will never read it again).
//! - **reprocessing pending**: an input record at or past the group's committed
//!   offset whose output is already committed (a restart reads it again and,
//!   unless the transaction that wrote it also moved the offsets, writes it
//!   twice).
//!
//! Each finding is placed in time, on the history's clock (milliseconds since
//! its first input record), and named with the fault steps in force then.

pub mod recorder;
mod verdict;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use verdict::{Anomalies, Finding, Kind, Verdict, SHOWN};

/// One record as a reader saw it: its id, where it sits, and when it was
/// written (its timestamp, in milliseconds since the history's start: for an
/// input record when the source produced it, for an output record when the
/// processor wrote it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub id: u64,
    pub partition: i32,
    pub offset: i64,
    pub at_ms: u64,
}

impl Seen {
    fn position(&self) -> Position {
        Position {
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// A place in a topic.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// The consumer group's committed offset of one input partition: the next
/// offset it would read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    pub partition: i32,
    pub next: i64,
}

/// A moment of the run: a time on the history's clock, or the moment the
/// processor had written so many records (counted in the uncommitted output
/// view, in the order they were written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Ms(u64),
    Records(u64),
}

/// One fault and when it was in force: from `from` until `until` (to the end
/// of the run if `None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStep {
    /// What a learner reads, e.g. "broker SIGKILL + restart".
    pub name: String,
    pub from: Mark,
    pub until: Option<Mark>,
}

/// Everything the checker judges: what went in, what came out as two kinds
/// of reader saw it, where the group's offsets ended, and the faults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the history's clock starts, in milliseconds since the epoch.
    pub started_at_ms: i64,
    /// The input records, each partition in offset order.
    pub input: Vec<Seen>,
    /// The output as a `read_committed` reader saw it.
    pub committed: Vec<Seen>,
    /// The output as a `read_uncommitted` reader saw it.
    pub uncommitted: Vec<Seen>,
    /// Output positions known, independently of both readers, to belong to
    /// aborted transactions (from the log's ABORT markers). `None`: not known,
    /// and aborted reads cannot be judged.
    #[serde(default)]
    pub aborted: Option<Vec<Position>>,
    /// The group's committed offsets at the end, per input partition.
    pub group_offsets: Vec<GroupOffset>,
    #[serde(default)]
    pub faults: Vec<FaultStep>,
}

impl History {
    /// Reads a history saved as JSON.
    pub fn from_json(text: &str) -> Result<History> {
        serde_json::from_str(text).map_err(|e| {
            Error::BadData(format!(
                "not a pipeline history ({e}); record one with lab::audit::checker::recorder"
            ))
        })
    }

    /// The history as JSON, one record per line (a fixture stays readable
    /// and its diffs small).
    pub fn to_json(&self) -> String {
        let value = serde_json::to_value(self).expect("a history always serializes");
        let serde_json::Value::Object(fields) = value else {
            unreachable!("a history is a JSON object")
        };
        let mut out = String::from("{");
        for (i, (name, value)) in fields.iter().enumerate() {
            out += if i == 0 { "\n  " } else { ",\n  " };
            out += &format!("{}: ", serde_json::Value::from(name.as_str()));
            match value {
                serde_json::Value::Array(items) if !items.is_empty() => {
                    let lines: Vec<String> =
                        items.iter().map(|x| format!("    {x}")).collect();
                    out += &format!("[\n{}\n  ]", lines.join(",\n"));
                }
                other => out += &other.to_string(),
            }
        }
        out + "\n}\n"
    }

    /// The moment `mark` stands for, on the history's clock.
    pub fn moment(&self, mark: Mark) -> u64 {
        match mark {
            Mark::Ms(ms) => ms,
            Mark::Records(n) => {
                let mut written: Vec<u64> =
                    self.uncommitted.iter().map(|r| r.at_ms).collect();
                written.sort_unstable();
                match n {
                    0 => 0,
                    n => written
                        .get(n as usize - 1)
                        .or(written.last())
                        .copied()
                        .unwrap_or(0),
                }
            }
        }
    }

    /// The names of the fault steps in force at `ms`.
    pub fn faults_at(&self, ms: u64) -> Vec<String> {
        self.faults
            .iter()
            .filter(|f| {
                self.moment(f.from) <= ms && f.until.is_none_or(|u| ms < self.moment(u))
            })
            .map(|f| f.name.clone())
            .collect()
    }

    /// The last moment of the history.
    fn end_ms(&self) -> u64 {
        [&self.input, &self.committed, &self.uncommitted]
            .iter()
            .flat_map(|v| v.iter().map(|r| r.at_ms))
            .max()
            .unwrap_or(0)
    }

    /// Refuses a history no reader could have seen: two records at one position.
    fn validate(&self) -> Result<()> {
        for (what, view) in [
            ("input", &self.input),
            ("committed output", &self.committed),
            ("uncommitted output", &self.uncommitted),
        ] {
            let mut at = HashSet::new();
            for r in view.iter() {
                if !at.insert(r.position()) {
                    return Err(Error::BadData(format!(
                        "the history's {what} holds two records at partition {} offset {}: \
                         it was not read from one log; record it anew",
                        r.partition, r.offset
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Judges a whole history. Fails only on a history that cannot be real.
pub fn check(h: &History) -> Result<Verdict> {
    h.validate()?;
    let ctx = Context::new(h);
    let mut v = Verdict::new(h);
    v.lost = ctx.collect(Kind::Lost, ctx.lost());
    v.duplicated = ctx.collect(Kind::Duplicated, ctx.duplicated());
    v.aborted_reads = ctx.collect(Kind::AbortedRead, ctx.aborted_reads());
    v.out_of_order = ctx.collect(Kind::OutOfOrder, ctx.out_of_order());
    v.unexpected = ctx.collect(Kind::Unexpected, ctx.unexpected());
    let (over, pending) = ctx.offsets();
    v.over_committed = ctx.collect(Kind::OverCommitted, over);
    v.reprocessing_pending = ctx.collect(Kind::ReprocessingPending, pending);
    v.aborted_in_log = ctx.aborted_in_log();
    v.partition_map = ctx.partition_map();
    Ok(v)
}

/// A finding before it is placed among the faults: (id, moment in ms).
type Found = (u64, u64);

/// The history, indexed.
struct Context<'a> {
    h: &'a History,
    /// Input id -> its first input record.
    input: HashMap<u64, &'a Seen>,
    /// Id -> its committed output copies, in the order read.
    committed: HashMap<u64, Vec<&'a Seen>>,
    /// Id -> its uncommitted output copies.
    uncommitted: HashMap<u64, Vec<&'a Seen>>,
    /// Input partition -> its records in offset order.
    by_partition: BTreeMap<i32, Vec<&'a Seen>>,
}

impl<'a> Context<'a> {
    fn new(h: &'a History) -> Context<'a> {
        let mut input = HashMap::new();
        let mut by_partition: BTreeMap<i32, Vec<&Seen>> = BTreeMap::new();
        for r in &h.input {
            input.entry(r.id).or_insert(r);
            by_partition.entry(r.partition).or_default().push(r);
        }
        for records in by_partition.values_mut() {
            records.sort_by_key(|r| r.offset);
        }
        Context {
            h,
            input,
            committed: by_id(&h.committed),
            uncommitted: by_id(&h.uncommitted),
            by_partition,
        }
    }

    /// The findings of one kind, as (id, moment), in id order, with the
    /// faults in force at each moment.
    fn collect(&self, kind: Kind, found: Vec<Found>) -> Anomalies {
        let mut found = found;
        found.sort_unstable();
        Anomalies::new(
            kind,
            found.into_iter().map(|(id, at_ms)| Finding {
                id,
                at_ms,
                faults: self.h.faults_at(at_ms),
            }),
        )
    }

    fn lost(&self) -> Vec<Found> {
        self.input
            .keys()
            .filter(|id| !self.committed.contains_key(id))
            .map(|&id| (id, self.when_missing(id)))
            .collect()
    }

    /// When a record that never reached the committed output went missing:
    /// when its last uncommitted copy was written if it has one; else when the
    /// processor wrote the last record before it of its input partition; else
    /// when it was produced.
    fn when_missing(&self, id: u64) -> u64 {
        if let Some(copy) = self.uncommitted.get(&id).and_then(|c| c.last()) {
            return copy.at_ms;
        }
        let Some(r) = self.input.get(&id) else {
            return self.h.end_ms();
        };
        let partition = &self.by_partition[&r.partition];
        partition
            .iter()
            .take_while(|earlier| earlier.offset < r.offset)
            .filter_map(|earlier| self.uncommitted.get(&earlier.id)?.first())
            .map(|copy| copy.at_ms)
            .last()
            .unwrap_or(r.at_ms)
    }

    fn duplicated(&self) -> Vec<Found> {
        self.committed
            .iter()
            .filter(|(_, copies)| copies.len() > 1)
            .map(|(&id, copies)| {
                let mut times: Vec<u64> = copies.iter().map(|c| c.at_ms).collect();
                times.sort_unstable();
                (id, times[1])
            })
            .collect()
    }

    fn aborted_reads(&self) -> Vec<Found> {
        let Some(aborted) = &self.h.aborted else {
            return Vec::new();
        };
        let aborted: HashSet<&Position> = aborted.iter().collect();
        self.h
            .committed
            .iter()
            .filter(|r| aborted.contains(&r.position()))
            .map(|r| (r.id, r.at_ms))
            .collect()
    }

    /// Per (input partition, output partition), the first copies in output
    /// order: each must come later in the input than every one before it.
    fn out_of_order(&self) -> Vec<Found> {
        let mut seen = HashSet::new();
        let mut output = self.h.committed.clone();
        output.sort_by_key(|r| (r.partition, r.offset));
        // (input partition, output partition) -> highest input offset so far.
        let mut highest: HashMap<(i32, i32), i64> = HashMap::new();
        let mut found = Vec::new();
        for r in output {
            let Some(source) = self.input.get(&r.id) else {
                continue;
            };
            if !seen.insert(r.id) {
                continue;
            }
            let top = highest.entry((source.partition, r.partition)).or_insert(-1);
            if source.offset < *top {
                found.push((r.id, r.at_ms));
            } else {
                *top = source.offset;
            }
        }
        found
    }

    fn unexpected(&self) -> Vec<Found> {
        self.committed
            .iter()
            .filter(|(id, _)| !self.input.contains_key(id))
            .map(|(&id, copies)| (id, copies[0].at_ms))
            .collect()
    }

    /// The two offset checks: (over-committed, reprocessing pending).
    fn offsets(&self) -> (Vec<Found>, Vec<Found>) {
        let next: HashMap<i32, i64> = self
            .h
            .group_offsets
            .iter()
            .map(|g| (g.partition, g.next))
            .collect();
        let (mut over, mut pending) = (Vec::new(), Vec::new());
        for (partition, records) in &self.by_partition {
            let committed_to = next.get(partition).copied().unwrap_or(0);
            for r in records {
                let in_output = self.committed.contains_key(&r.id);
                if r.offset < committed_to && !in_output {
                    over.push((r.id, self.when_missing(r.id)));
                } else if r.offset >= committed_to && in_output {
                    pending.push((r.id, self.h.end_ms()));
                }
            }
        }
        (over, pending)
    }

    /// Output positions of aborted transactions, by the audit's rule (present
    /// uncommitted, absent committed), with the independent record's ones.
    fn aborted_in_log(&self) -> u64 {
        let committed: HashSet<Position> =
            self.h.committed.iter().map(Seen::position).collect();
        let mut aborted: BTreeSet<Position> = self
            .h
            .uncommitted
            .iter()
            .map(Seen::position)
            .filter(|p| !committed.contains(p))
            .collect();
        aborted.extend(self.h.aborted.iter().flatten().copied());
        aborted.len() as u64
    }

    /// Which output partitions each input partition's records went to.
    fn partition_map(&self) -> BTreeMap<i32, BTreeSet<i32>> {
        let mut map: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
        for r in &self.h.committed {
            if let Some(source) = self.input.get(&r.id) {
                map.entry(source.partition).or_default().insert(r.partition);
            }
        }
        map
    }
}

fn by_id(view: &[Seen]) -> HashMap<u64, Vec<&Seen>> {
    let mut map: HashMap<u64, Vec<&Seen>> = HashMap::new();
    for r in view {
        map.entry(r.id).or_default().push(r);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: u64, partition: i32, offset: i64, at_ms: u64) -> Seen {
        Seen {
            id,
            partition,
            offset,
            at_ms,
        }
    }

    /// Input: partition 0 holds 0..4, partition 1 holds 4..8; the output
    /// is one partition, written in time order 0, 4, 1, 5, 2, 6, 3, 7.
    fn interleaved() -> History {
        let input = (0..8).map(|id| seen(id, (id / 4) as i32, (id % 4) as i64, 0));
        let order = [0, 4, 1, 5, 2, 6, 3, 7];
        let output: Vec<Seen> = order
            .iter()
            .enumerate()
            .map(|(i, &id)| seen(id, 0, i as i64, 100 * (i as u64 + 1)))
            .collect();
        History {
            input: input.collect(),
            committed: output.clone(),
            uncommitted: output,
            group_offsets: vec![
                GroupOffset {
                    partition: 0,
                    next: 4,
                },
                GroupOffset {
                    partition: 1,
                    next: 4,
                },
            ],
            aborted: Some(Vec::new()),
            ..Default::default()
        }
    }

    #[test]
    fn two_input_partitions_interleaved_in_one_output_partition_are_in_order() {
        let h = interleaved();
        let v = check(&h).unwrap();
        assert!(v.clean(), "{v}");
        assert_eq!(v.partition_map[&0], BTreeSet::from([0]));
        assert_eq!(v.partition_map[&1], BTreeSet::from([0]));
        // Swapping 4 and 1 crosses partitions: still in order. Swapping 1 and
        // 2 does not: 1 now follows 2.
        let mut h2 = interleaved();
        h2.committed.swap(1, 2);
        let (a, b) = (h2.committed[1].offset, h2.committed[2].offset);
        (h2.committed[1].offset, h2.committed[2].offset) = (b, a);
        assert!(check(&h2).unwrap().clean());
        let mut h3 = interleaved();
        h3.committed[2].id = 2;
        h3.committed[4].id = 1;
        assert_eq!(check(&h3).unwrap().out_of_order.ids(), [1]);
    }

    #[test]
    fn fault_steps_are_placed_by_time_or_by_records_written() {
        let mut h = interleaved();
        // The 3rd write is at 300 ms, the 5th at 500 ms.
        assert_eq!(h.moment(Mark::Records(3)), 300);
        assert_eq!(h.moment(Mark::Records(99)), 800);
        assert_eq!(h.moment(Mark::Records(0)), 0);
        h.faults = vec![
            FaultStep {
                name: "pause".into(),
                from: Mark::Records(3),
                until: Some(Mark::Records(5)),
            },
            FaultStep {
                name: "kill".into(),
                from: Mark::Ms(450),
                until: None,
            },
        ];
        assert!(h.faults_at(299).is_empty());
        assert_eq!(h.faults_at(300), ["pause"]);
        assert_eq!(h.faults_at(460), ["pause", "kill"]);
        assert_eq!(h.faults_at(10_000), ["kill"]);
        // 5 vanishes: placed when the processor wrote its predecessor in
        // input partition 1, which is 4, at 200 ms (no fault then).
        h.committed.retain(|r| r.id != 5);
        h.uncommitted.retain(|r| r.id != 5);
        let v = check(&h).unwrap();
        assert_eq!(v.lost.ids(), [5]);
        assert_eq!(v.lost.shown[0].at_ms, 200);
        assert!(v.lost.shown[0].faults.is_empty());
        // 3 vanishes: its predecessor 2 was written at 500 ms, under both.
        h.committed.retain(|r| r.id != 3);
        h.uncommitted.retain(|r| r.id != 3);
        let v = check(&h).unwrap();
        assert_eq!(v.lost.ids(), [3, 5]);
        assert_eq!(v.lost.shown[0].faults, ["pause", "kill"]);
        assert_eq!(v.lost.by_fault.get("pause + kill"), Some(&1));
    }

    #[test]
    fn a_history_round_trips_through_its_json() {
        let mut h = interleaved();
        h.faults.push(FaultStep {
            name: "kill".into(),
            from: Mark::Records(2),
            until: Some(Mark::Ms(900)),
        });
        let json = h.to_json();
        assert!(json.contains("\"records\":2"), "{json}");
        assert_eq!(History::from_json(&json).unwrap(), h);
    }
}
