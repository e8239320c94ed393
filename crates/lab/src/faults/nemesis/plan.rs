//! What the executor will do, decided from the schedule's seed alone: for
//! every fault of every step, in order, its target (which broker, the
//! processor, the proxy). The cluster is never asked, so the same seed always
//! gives the same actions at the same record counts; what the struck broker
//! happened to lead is recorded when the fault strikes.

use serde::{Deserialize, Serialize};

use super::schedule::{FaultKind, Schedule};
use crate::support::Seeded;

/// Where a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A broker of the three, by node id.
    Broker(u32),
    /// The processor (the one running, or a new one beside it).
    Processor,
    /// The chaos proxy between the processors and the brokers.
    Proxy,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Broker(n) => write!(f, "broker {n}"),
            Target::Processor => f.write_str("processor"),
            Target::Proxy => f.write_str("proxy"),
        }
    }
}

/// One fault as the executor will inject it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The step's index in the schedule.
    pub step: usize,
    /// The step strikes once the processors have committed this many records.
    pub at_records: u64,
    pub kind: FaultKind,
    pub duration_ms: u64,
    pub target: Target,
}

/// Mixed into the seed so that the targets do not repeat the schedule's draws.
const TARGET_SALT: u64 = 0x006e_656d_6573_6973;

/// The actions of `schedule` on a cluster of `brokers` (node ids), in the
/// order they strike: by step, and within a step by kind. A step that kills
/// a broker and pauses a follower picks two different brokers.
pub fn plan(schedule: &Schedule, brokers: &[u32]) -> Vec<Action> {
    let mut actions = Vec::new();
    for (i, step) in schedule.steps.iter().enumerate() {
        let mut rng = Seeded::new(schedule.seed ^ TARGET_SALT ^ (i as u64 + 1));
        let mut left: Vec<u32> = brokers.to_vec();
        for fault in &step.faults {
            let target = match fault.kind {
                FaultKind::BrokerKill | FaultKind::FollowerPause
                    if !left.is_empty() =>
                {
                    let pick = rng.in_range(0..left.len() as u64) as usize;
                    Target::Broker(left.remove(pick))
                }
                FaultKind::BrokerKill | FaultKind::FollowerPause => Target::Broker(0),
                FaultKind::LostProduceResponse
                | FaultKind::DelayedProduceResponse
                | FaultKind::LostEndTxnResponse => Target::Proxy,
                FaultKind::ProcessorKill
                | FaultKind::SecondProcessor
                | FaultKind::ZombiePause => Target::Processor,
            };
            actions.push(Action {
                step: i,
                at_records: step.at_records,
                kind: fault.kind,
                duration_ms: fault.duration_ms,
                target,
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::schedule::ScheduleOptions;
    use super::*;

    fn schedule(seed: u64) -> Schedule {
        Schedule::generate(
            seed,
            ScheduleOptions {
                records: 20_000,
                steps: 6,
                most_at_once: 3,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_actions_in_the_same_order() {
        let brokers = [1, 2, 3];
        for seed in 0..40 {
            let a = plan(&schedule(seed), &brokers);
            assert_eq!(a, plan(&schedule(seed), &brokers), "seed {seed}");
            // In step order, at non-decreasing counts, one action per fault.
            let faults: usize =
                schedule(seed).steps.iter().map(|s| s.faults.len()).sum();
            assert_eq!(a.len(), faults);
            assert!(a
                .windows(2)
                .all(|w| w[0].step <= w[1].step && w[0].at_records <= w[1].at_records));
            // A broker killed and a follower paused in one step are two brokers.
            for step in 0..6 {
                let struck: Vec<Target> = a
                    .iter()
                    .filter(|x| x.step == step && matches!(x.target, Target::Broker(_)))
                    .map(|x| x.target)
                    .collect();
                assert!(struck.len() < 2 || struck[0] != struck[1], "seed {seed}");
                assert!(struck.iter().all(|t| matches!(t, Target::Broker(1..=3))));
            }
        }
        // Seeds differ in their targets, and every broker is struck somewhere.
        let targets: std::collections::BTreeSet<String> = (0..40)
            .flat_map(|s| plan(&schedule(s), &brokers))
            .map(|x| x.target.to_string())
            .collect();
        for b in ["broker 1", "broker 2", "broker 3", "processor", "proxy"] {
            assert!(targets.contains(b), "{targets:?}");
        }
    }
}
