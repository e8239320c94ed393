//! What actually happened, counted by record id: read back what the log holds
//! and compare it with what the producer was told and what the consumer did.
//!
//! `lost` follows the rule Kafka's own system tests use: a record the producer
//! was told is safe, but that is not there at the end.

pub mod checker;
pub mod dump_log;
pub mod outcome;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// The counts that say whether a guarantee held, all by record id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records the application set out to deliver: ids `0..source`.
    pub source: u64,
    /// Records handed to a producer client, replays after a crash included.
    pub sent: u64,
    /// Distinct ids whose delivery report said success (for acks=0: "left the
    /// client", since nobody confirms anything).
    pub acknowledged: u64,
    /// Distinct ids the log holds, as a read_committed reader sees it.
    pub durable: u64,
    /// Extra copies in the log: a record written twice counts once here.
    pub written_twice: u64,
    /// Acknowledged ids the log does not hold: the broker said "safe" and lost
    /// it. Kafka's own system tests use this rule.
    pub lost_in_log: u64,
    /// Records of aborted transactions in the log: a read_uncommitted reader
    /// sees them, a read_committed reader must not.
    pub aborted_in_log: u64,
    /// Distinct ids that reached the end of the pipeline (processed, or in the
    /// output topic for exactly-once).
    pub delivered: u64,
    /// End to end: source records that never reached the end of the pipeline.
    pub lost: u64,
    /// End to end: deliveries beyond the first of each id.
    pub duplicated: u64,
    /// Records of aborted transactions that the reader nevertheless saw.
    pub aborted_reads: u64,
}

/// The raw observations of a run, all as lists of ids (one entry per copy).
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    pub source: u64,
    pub sent: u64,
    pub acknowledged: &'a [u64],
    /// The log as a read_committed reader sees it.
    pub in_log: &'a [u64],
    /// The log as a read_uncommitted reader sees it (empty if not read: then
    /// `aborted_in_log` is 0).
    pub in_log_uncommitted: &'a [u64],
    pub delivered: &'a [u64],
    /// Ids written in transactions known to be aborted (each copy once).
    pub aborted: &'a [u64],
}

/// A set of record ids, kept as sorted, disjoint, inclusive ranges: in JSON
/// `[[3, 7], [12, 12]]` is the ids 3 to 7 and 12. Compact for what a fault does
/// to whole batches at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<[u64; 2]>", into = "Vec<[u64; 2]>")]
pub struct IdRanges(Vec<[u64; 2]>);

impl IdRanges {
    /// The set of `ids`, in any order, repeats ignored.
    pub fn from_ids(ids: impl IntoIterator<Item = u64>) -> IdRanges {
        let mut sorted: Vec<u64> = ids.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<[u64; 2]> = Vec::new();
        for id in sorted {
            match ranges.last_mut() {
                Some(last) if last[1] + 1 == id => last[1] = id,
                _ => ranges.push([id, id]),
            }
        }
        IdRanges(ranges)
    }

    /// The ids `range` (half-open, as Rust writes ranges).
    pub fn span(range: std::ops::Range<u64>) -> IdRanges {
        if range.is_empty() {
            IdRanges::default()
        } else {
            IdRanges(vec![[range.start, range.end - 1]])
        }
    }

    /// The inclusive ranges, in id order.
    pub fn ranges(&self) -> &[[u64; 2]] {
        &self.0
    }

    /// How many ids.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|[a, b]| b - a + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        let i = self.0.partition_point(|[_, last]| *last < id);
        self.0.get(i).is_some_and(|[first, _]| *first <= id)
    }

    /// The smallest and the largest id, if there are any.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.0.first()?[0], self.0.last()?[1]))
    }

    /// Every id, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|&[a, b]| a..=b)
    }
}

impl FromIterator<u64> for IdRanges {
    fn from_iter<I: IntoIterator<Item = u64>>(ids: I) -> IdRanges {
        IdRanges::from_ids(ids)
    }
}

impl TryFrom<Vec<[u64; 2]>> for IdRanges {
    type Error = String;

    fn try_from(ranges: Vec<[u64; 2]>) -> std::result::Result<IdRanges, String> {
        for r in &ranges {
            if r[0] > r[1] {
                return Err(format!(
                    "id range [{}, {}] ends before it starts; record it anew with the lab",
                    r[0], r[1]
                ));
            }
        }
        for pair in ranges.windows(2) {
            if pair[1][0] <= pair[0][1] + 1 {
                return Err(format!(
                    "id ranges {:?} and {:?} are out of order or touch; record them anew with the lab",
                    pair[0], pair[1]
                ));
            }
        }
        Ok(IdRanges(ranges))
    }
}

impl From<IdRanges> for Vec<[u64; 2]> {
    fn from(ids: IdRanges) -> Vec<[u64; 2]> {
        ids.0
    }
}

/// Ids that were delivered the same number of times, more than once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeated {
    /// How many times each of `ids` was delivered (2 or more).
    pub times: u64,
    pub ids: IdRanges,
}

/// What `Counts` counts, id by id: which records were lost, which delivered
/// more than once. Computed by [`audit`] from the same observations as the
/// counts, so a chart drawn from the fates agrees with the numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fates {
    /// Source ids that never reached the end of the pipeline (`Counts::lost`).
    pub lost: IdRanges,
    /// Ids delivered more than once, grouped by how many times, fewest first
    /// (`Counts::duplicated` is the sum of the copies beyond the first).
    pub duplicated: Vec<Repeated>,
    /// Ids of which the log holds a copy from an aborted transaction.
    pub aborted_in_log: IdRanges,
}

impl Fates {
    /// How many times source id `id` was delivered.
    pub fn times_delivered(&self, id: u64) -> u64 {
        if self.lost.contains(id) {
            return 0;
        }
        self.duplicated
            .iter()
            .find(|r| r.ids.contains(id))
            .map_or(1, |r| r.times)
    }

    /// Every id delivered more than once.
    pub fn duplicated_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.duplicated.iter().flat_map(|r| r.ids.iter())
    }

    /// Copies beyond the first, over all ids: what `Counts::duplicated` says.
    pub fn extra_copies(&self) -> u64 {
        self.duplicated
            .iter()
            .map(|r| (r.times - 1) * r.ids.len())
            .sum()
    }
}

/// What one place outside the log holds of a source of ids `0..source` (a
/// database table, a log of notifications sent), counted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Entries, every copy counted.
    pub copies: u64,
    /// Source ids present at least once.
    pub distinct: u64,
    /// Copies beyond the first of each id.
    pub duplicated: u64,
    /// Source ids not present at all.
    pub missing: u64,
}

impl Tally {
    /// Counts `ids` (one entry per copy) against the source `0..source`.
    pub fn of(source: u64, ids: &[u64]) -> Tally {
        let seen = copies(ids);
        let distinct = (0..source).filter(|id| seen.contains_key(id)).count() as u64;
        Tally {
            copies: ids.len() as u64,
            distinct,
            duplicated: seen.values().map(|n| n - 1).sum(),
            missing: source - distinct,
        }
    }

    /// Every source id present exactly once, nothing else.
    pub fn exact(&self) -> bool {
        self.duplicated == 0 && self.missing == 0 && self.copies == self.distinct
    }
}

/// The counts and the fates of one run, from one set of observations.
pub fn audit(o: &Observed<'_>) -> (Counts, Fates) {
    (count(o), fates(o))
}

/// Which ids were lost, duplicated and aborted, from the raw observations.
pub fn fates(o: &Observed<'_>) -> Fates {
    let out = copies(o.delivered);
    let log = copies(o.in_log);
    let mut by_times: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for (&id, &n) in &out {
        if n > 1 {
            by_times.entry(n).or_default().push(id);
        }
    }
    Fates {
        lost: (0..o.source).filter(|id| !out.contains_key(id)).collect(),
        duplicated: by_times
            .into_iter()
            .map(|(times, ids)| Repeated {
                times,
                ids: IdRanges::from_ids(ids),
            })
            .collect(),
        aborted_in_log: copies(o.in_log_uncommitted)
            .into_iter()
            .filter(|(id, n)| *n > log.get(id).copied().unwrap_or(0))
            .map(|(id, _)| id)
            .collect(),
    }
}

/// Counts what happened from the raw observations.
pub fn count(o: &Observed<'_>) -> Counts {
    let acked: HashSet<u64> = o.acknowledged.iter().copied().collect();
    let log = copies(o.in_log);
    let out = copies(o.delivered);
    let uncommitted = copies(o.in_log_uncommitted);
    // A delivery of an id from an aborted transaction is an aborted read unless
    // it is accounted for by a committed copy in the log.
    let aborted = copies(o.aborted);
    let aborted_reads = aborted
        .keys()
        .map(|id| {
            let seen = out.get(id).copied().unwrap_or(0);
            let committed = log.get(id).copied().unwrap_or(0);
            seen.saturating_sub(committed.min(1))
        })
        .sum();
    Counts {
        source: o.source,
        sent: o.sent,
        acknowledged: acked.len() as u64,
        durable: log.len() as u64,
        written_twice: extra(&log),
        lost_in_log: acked.iter().filter(|id| !log.contains_key(id)).count() as u64,
        aborted_in_log: uncommitted
            .iter()
            .map(|(id, n)| n.saturating_sub(log.get(id).copied().unwrap_or(0)))
            .sum(),
        delivered: out.len() as u64,
        lost: (0..o.source).filter(|id| !out.contains_key(id)).count() as u64,
        duplicated: extra(&out),
        aborted_reads,
    }
}

fn copies(ids: &[u64]) -> HashMap<u64, u64> {
    let mut map = HashMap::new();
    for &id in ids {
        *map.entry(id).or_insert(0) += 1;
    }
    map
}

fn extra(copies: &HashMap<u64, u64>) -> u64 {
    copies.values().map(|n| n - 1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_counts_nothing_lost_or_duplicated() {
        let ids: Vec<u64> = (0..10).collect();
        let c = count(&Observed {
            source: 10,
            sent: 10,
            acknowledged: &ids,
            in_log: &ids,
            delivered: &ids,
            ..Default::default()
        });
        assert_eq!(
            (c.sent, c.acknowledged, c.durable, c.delivered),
            (10, 10, 10, 10)
        );
        assert_eq!(
            (c.lost, c.duplicated, c.written_twice, c.lost_in_log),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn duplicates_and_losses_are_counted_by_id_not_by_position() {
        // The log holds 3 twice and lacks 4, which was acknowledged.
        // The consumer processed 1 three times and never saw 2.
        let c = count(&Observed {
            source: 6,
            sent: 6,
            acknowledged: &[0, 1, 2, 3, 4],
            in_log: &[3, 0, 1, 3, 2],
            delivered: &[0, 1, 1, 3, 1],
            ..Default::default()
        });
        assert_eq!(c.durable, 4);
        assert_eq!(c.written_twice, 1);
        assert_eq!(c.lost_in_log, 1); // 4: acknowledged, not in the log
        assert_eq!(c.delivered, 3);
        assert_eq!(c.lost, 3); // 2, 4 and 5 never delivered
        assert_eq!(c.duplicated, 2); // two extra copies of 1
    }

    #[test]
    fn an_unacknowledged_record_that_vanishes_is_lost_but_not_lost_in_the_log() {
        // At-most-once may drop a record nobody confirmed: lost end to end, but
        // the broker broke no promise.
        let c = count(&Observed {
            source: 3,
            sent: 3,
            acknowledged: &[0, 1],
            in_log: &[0, 1],
            delivered: &[0, 1],
            ..Default::default()
        });
        assert_eq!((c.lost, c.lost_in_log), (1, 0));
    }

    #[test]
    fn aborted_records_are_counted_in_the_log_and_when_a_reader_sees_them() {
        // 7 and 8 were written in an aborted transaction; 7 was then written
        // again and committed. A correct read_committed reader sees 7 once.
        let committed = [5, 6, 7];
        let uncommitted = [5, 6, 7, 8, 7];
        let fine = count(&Observed {
            source: 9,
            in_log: &committed,
            in_log_uncommitted: &uncommitted,
            delivered: &committed,
            aborted: &[7, 8],
            ..Default::default()
        });
        assert_eq!(fine.aborted_in_log, 2);
        assert_eq!(fine.aborted_reads, 0);
        // A reader that does not filter (the mock cluster) sees both aborted copies.
        let leaky = count(&Observed {
            source: 9,
            in_log: &committed,
            delivered: &uncommitted,
            aborted: &[7, 8],
            ..Default::default()
        });
        assert_eq!(leaky.aborted_reads, 2);
    }

    #[test]
    fn fates_name_the_lost_the_twice_and_the_three_times_delivered() {
        // Source 0..10: 2 and 7 never delivered, 4 and 5 twice, 8 three times.
        let f = fates(&Observed {
            source: 10,
            delivered: &[0, 1, 3, 4, 4, 5, 6, 5, 8, 8, 9, 8],
            ..Default::default()
        });
        assert_eq!(f.lost.iter().collect::<Vec<_>>(), [2, 7]);
        assert_eq!(f.lost.ranges(), [[2, 2], [7, 7]]);
        assert_eq!(
            f.duplicated,
            [
                Repeated {
                    times: 2,
                    ids: IdRanges::from_ids([4, 5]),
                },
                Repeated {
                    times: 3,
                    ids: IdRanges::from_ids([8]),
                },
            ]
        );
        assert_eq!(f.duplicated[0].ids.ranges(), [[4, 5]]);
        let times: Vec<u64> = (0..10).map(|id| f.times_delivered(id)).collect();
        assert_eq!(times, [1, 1, 0, 1, 2, 2, 1, 0, 3, 1]);
        assert_eq!(f.extra_copies(), 4);
        assert!(f.aborted_in_log.is_empty());
    }

    #[test]
    fn fates_name_the_ids_with_aborted_copies_in_the_log() {
        // As in the counts test: 7 and 8 aborted, 7 then committed again.
        let f = fates(&Observed {
            source: 9,
            in_log: &[5, 6, 7],
            in_log_uncommitted: &[5, 6, 7, 8, 7],
            delivered: &[5, 6, 7],
            ..Default::default()
        });
        assert_eq!(f.aborted_in_log.ranges(), [[7, 8]]);
        assert_eq!(f.lost.ranges(), [[0, 4], [8, 8]]);
        assert!(f.duplicated.is_empty());
    }

    /// The counts and the fates come from the same observations and must tell
    /// the same story, whatever the observations are.
    fn assert_agree(o: &Observed<'_>) {
        let (c, f) = audit(o);
        assert_eq!(f.lost.len(), c.lost, "lost");
        assert_eq!(f.extra_copies(), c.duplicated, "duplicated");
        let delivered_once_or_more =
            (0..o.source).filter(|&id| f.times_delivered(id) > 0);
        assert_eq!(
            delivered_once_or_more.count() as u64,
            c.source - c.lost,
            "delivered"
        );
        assert!(f.aborted_in_log.len() <= c.aborted_in_log, "aborted ids");
        assert_eq!(
            f.aborted_in_log.is_empty(),
            c.aborted_in_log == 0,
            "aborted"
        );
    }

    #[test]
    fn the_fates_always_agree_with_the_counts() {
        let mut rng = crate::support::Seeded::new(42);
        for _ in 0..200 {
            let source = rng.in_range(1..300);
            let draw = |rng: &mut crate::support::Seeded, n: u64| -> Vec<u64> {
                (0..n).map(|_| rng.in_range(0..source + 5)).collect()
            };
            let n = rng.in_range(0..source * 2);
            let delivered = draw(&mut rng, n);
            let in_log = draw(&mut rng, n);
            let mut uncommitted = in_log.clone();
            let extra = rng.in_range(0..20);
            uncommitted.extend(draw(&mut rng, extra));
            let o = Observed {
                source,
                sent: n,
                acknowledged: &in_log,
                in_log: &in_log,
                in_log_uncommitted: &uncommitted,
                delivered: &delivered,
                aborted: &[],
            };
            assert_agree(&o);
        }
    }

    #[test]
    fn id_ranges_are_compact_and_refuse_a_garbled_record() {
        let ids = IdRanges::from_ids([9, 3, 4, 5, 5, 12, 10]);
        assert_eq!(ids.ranges(), [[3, 5], [9, 10], [12, 12]]);
        assert_eq!(ids.len(), 6);
        assert_eq!(ids.bounds(), Some((3, 12)));
        assert!(ids.contains(10) && !ids.contains(11) && !ids.contains(2));
        let json = serde_json::to_string(&ids).unwrap();
        assert_eq!(json, "[[3,5],[9,10],[12,12]]");
        assert_eq!(serde_json::from_str::<IdRanges>(&json).unwrap(), ids);
        let err = serde_json::from_str::<IdRanges>("[[5,3]]").unwrap_err();
        assert!(err.to_string().contains("ends before it starts"), "{err}");
        let err = serde_json::from_str::<IdRanges>("[[3,5],[4,8]]").unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
        assert_eq!(IdRanges::span(4..4), IdRanges::default());
        assert_eq!(IdRanges::span(4..7).ranges(), [[4, 6]]);
    }
}
