//! A seeded schedule of faults for one long exactly-once pipeline run: at
//! which record counts which faults strike together, and for how long. The
//! same seed always gives the same schedule, so a run that broke a guarantee
//! can be repeated fault for fault. Only the plan: nothing here executes it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::support::Seeded;

/// The faults a step can combine.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The partition leader's broker is SIGKILLed, restarted after the duration.
    BrokerKill,
    /// A follower is SIGSTOPped, SIGCONTed after the duration.
    FollowerPause,
    /// A Produce response is dropped on its way back (the request was applied).
    LostProduceResponse,
    /// Produce responses are held back for the duration.
    DelayedProduceResponse,
    /// The EndTxn response is dropped: the client does not know whether its
    /// commit happened.
    LostEndTxnResponse,
    /// The processor is SIGKILLed, restarted after the duration.
    ProcessorKill,
    /// A second processor joins the group for the duration (a rebalance).
    SecondProcessor,
    /// The processor is paused past its session timeout, then resumes as a
    /// zombie its group has replaced.
    ZombiePause,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::BrokerKill,
        FaultKind::FollowerPause,
        FaultKind::LostProduceResponse,
        FaultKind::DelayedProduceResponse,
        FaultKind::LostEndTxnResponse,
        FaultKind::ProcessorKill,
        FaultKind::SecondProcessor,
        FaultKind::ZombiePause,
    ];

    /// What a learner reads.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::BrokerKill => "broker SIGKILL + restart",
            FaultKind::FollowerPause => "follower SIGSTOP/SIGCONT",
            FaultKind::LostProduceResponse => "lost Produce response",
            FaultKind::DelayedProduceResponse => "delayed Produce responses",
            FaultKind::LostEndTxnResponse => "lost EndTxn response",
            FaultKind::ProcessorKill => "processor SIGKILL + restart",
            FaultKind::SecondProcessor => "second processor joins",
            FaultKind::ZombiePause => "processor paused past its session timeout",
        }
    }

    /// How long the fault lasts, in milliseconds (half-open). A zombie pause
    /// outlasts the crash scenarios' 6 s session timeout.
    pub fn durations_ms(self) -> std::ops::Range<u64> {
        match self {
            FaultKind::BrokerKill => 1_000..10_000,
            FaultKind::FollowerPause => 2_000..20_000,
            FaultKind::LostProduceResponse => 500..3_000,
            FaultKind::DelayedProduceResponse => 500..5_000,
            FaultKind::LostEndTxnResponse => 500..3_000,
            FaultKind::ProcessorKill => 500..10_000,
            FaultKind::SecondProcessor => 5_000..30_000,
            FaultKind::ZombiePause => 8_000..20_000,
        }
    }
}

/// One fault of a step and how long it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub duration_ms: u64,
}

/// The faults that strike together once the processor has handled
/// `at_records` input records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at_records: u64,
    pub faults: Vec<Fault>,
}

/// How long a run, and how many steps in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleOptions {
    pub records: u64,
    pub steps: u64,
    /// At most this many faults strike together (1 to all kinds).
    pub most_at_once: u64,
}

impl Default for ScheduleOptions {
    fn default() -> ScheduleOptions {
        ScheduleOptions {
            records: 100_000,
            steps: 8,
            most_at_once: 3,
        }
    }
}

/// A run's faults, from a seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub seed: u64,
    pub options: ScheduleOptions,
    /// In record order, each in a slot of its own: the run is cut into
    /// `steps` equal slots, and each step strikes somewhere in its slot.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The schedule of `seed`: always the same for the same seed and options.
    pub fn generate(seed: u64, options: ScheduleOptions) -> Result<Schedule> {
        Schedule::generate_with(seed, options, &FaultKind::ALL)
    }

    /// The schedule of `seed` drawn from `kinds` only (e.g. the kinds an
    /// executor can inject); with every kind it is [`Schedule::generate`]'s.
    pub fn generate_with(
        seed: u64,
        options: ScheduleOptions,
        kinds: &[FaultKind],
    ) -> Result<Schedule> {
        let mut pool: Vec<FaultKind> = kinds.to_vec();
        pool.sort();
        pool.dedup();
        if pool.is_empty() {
            return Err(Error::BadConfig(
                "a fault schedule needs at least one kind of fault to draw from".into(),
            ));
        }
        let kinds = pool.len() as u64;
        if options.steps == 0 || options.records < options.steps {
            return Err(Error::BadConfig(format!(
                "a fault schedule needs at least one step and a record per step \
                 ({} steps over {} records); ask for fewer steps or more records",
                options.steps, options.records
            )));
        }
        if !(1..=kinds).contains(&options.most_at_once) {
            return Err(Error::BadConfig(format!(
                "most_at_once is {}, but a step combines 1 to {kinds} faults",
                options.most_at_once
            )));
        }
        let mut rng = Seeded::new(seed);
        let slot = options.records / options.steps;
        let steps = (0..options.steps)
            .map(|i| Step {
                at_records: i * slot + rng.in_range(0..slot),
                faults: combination(&mut rng, options.most_at_once, &pool),
            })
            .collect();
        Ok(Schedule {
            seed,
            options,
            steps,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a schedule always serializes")
    }

    pub fn from_json(text: &str) -> Result<Schedule> {
        serde_json::from_str(text).map_err(|e| {
            Error::BadData(format!(
                "not a fault schedule ({e}); make one with Schedule::generate"
            ))
        })
    }
}

/// 1 to `most` distinct kinds, fewer more often, each with its duration.
fn combination(rng: &mut Seeded, most: u64, kinds: &[FaultKind]) -> Vec<Fault> {
    // 1 fault half the time, 2 a quarter, ...: halve the odds per extra fault.
    let mut count = 1;
    while count < most && rng.in_range(0..2) == 1 {
        count += 1;
    }
    let mut left = kinds.to_vec();
    let mut faults: Vec<Fault> = (0..count)
        .map(|_| {
            let kind = left.remove(rng.in_range(0..left.len() as u64) as usize);
            Fault {
                kind,
                duration_ms: rng.in_range(kind.durations_ms()),
            }
        })
        .collect();
    faults.sort_by_key(|f| f.kind);
    faults
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Fault schedule of seed {} ({} records, {} steps)",
            self.seed, self.options.records, self.options.steps
        )?;
        for step in &self.steps {
            let faults: Vec<String> = step
                .faults
                .iter()
                .map(|x| {
                    format!(
                        "{} for {:.1} s",
                        x.kind.label(),
                        x.duration_ms as f64 / 1000.0
                    )
                })
                .collect();
            write!(
                f,
                "\n  at record {:>7}: {}",
                step.at_records,
                faults.join(" + ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn of(seed: u64) -> Schedule {
        Schedule::generate(seed, ScheduleOptions::default()).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_other_seeds_differ() {
        assert_eq!(of(7), of(7));
        assert_eq!(of(7).to_string(), of(7).to_string());
        let distinct: BTreeSet<String> = (0..50).map(|s| of(s).to_json()).collect();
        assert_eq!(distinct.len(), 50);
        // A few fixed values, so a change of generator does not pass unseen.
        let s = of(1);
        assert_eq!(s.steps.len(), 8);
        assert_eq!(s.steps[0].at_records, 9_965);
        let kinds: Vec<FaultKind> = s.steps[3].faults.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FaultKind::BrokerKill,
                FaultKind::LostEndTxnResponse,
                FaultKind::SecondProcessor
            ]
        );
        assert_eq!(Schedule::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn every_kind_appears_across_fifty_seeds_and_combinations_do_too() {
        let schedules: Vec<Schedule> = (0..50).map(of).collect();
        let kinds: BTreeSet<FaultKind> = schedules
            .iter()
            .flat_map(|s| {
                s.steps
                    .iter()
                    .flat_map(|st| st.faults.iter().map(|f| f.kind))
            })
            .collect();
        assert_eq!(kinds, FaultKind::ALL.into_iter().collect());
        let sizes: BTreeSet<usize> = schedules
            .iter()
            .flat_map(|s| s.steps.iter().map(|st| st.faults.len()))
            .collect();
        assert_eq!(sizes, BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn steps_are_in_order_inside_the_run_with_distinct_kinds_and_bounded_durations() {
        for seed in 0..50 {
            let s = of(seed);
            let at: Vec<u64> = s.steps.iter().map(|st| st.at_records).collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "{s}");
            assert!(at.iter().all(|&a| a < s.options.records), "{s}");
            for step in &s.steps {
                let kinds: BTreeSet<FaultKind> =
                    step.faults.iter().map(|f| f.kind).collect();
                assert_eq!(kinds.len(), step.faults.len(), "{s}");
                for f in &step.faults {
                    assert!(f.kind.durations_ms().contains(&f.duration_ms), "{s}");
                }
            }
        }
        let one = Schedule::generate(
            3,
            ScheduleOptions {
                most_at_once: 1,
                ..Default::default()
            },
        );
        assert!(one.unwrap().steps.iter().all(|st| st.faults.len() == 1));
    }

    #[test]
    fn a_schedule_drawn_from_some_kinds_holds_only_those() {
        let kinds = [FaultKind::BrokerKill, FaultKind::ProcessorKill];
        let d = ScheduleOptions {
            most_at_once: 2,
            ..Default::default()
        };
        for seed in 0..30 {
            let s = Schedule::generate_with(seed, d, &kinds).unwrap();
            assert!(s
                .steps
                .iter()
                .flat_map(|st| &st.faults)
                .all(|f| kinds.contains(&f.kind)));
        }
        assert_eq!(
            Schedule::generate_with(4, ScheduleOptions::default(), &FaultKind::ALL)
                .unwrap(),
            of(4)
        );
        let three = ScheduleOptions::default();
        assert!(Schedule::generate_with(1, three, &kinds)
            .unwrap_err()
            .to_string()
            .contains("1 to 2"));
        assert!(Schedule::generate_with(1, d, &[]).is_err());
    }

    #[test]
    fn impossible_options_are_refused_with_a_reason() {
        let bad =
            |o: ScheduleOptions| Schedule::generate(1, o).unwrap_err().to_string();
        let d = ScheduleOptions::default();
        assert!(bad(ScheduleOptions { steps: 0, ..d }).contains("at least one step"));
        assert!(bad(ScheduleOptions { records: 3, ..d }).contains("fewer steps"));
        assert!(bad(ScheduleOptions {
            most_at_once: 9,
            ..d
        })
        .contains("1 to 8"));
        assert!(Schedule::from_json("{}")
            .unwrap_err()
            .to_string()
            .contains("not a fault schedule"));
    }
}
