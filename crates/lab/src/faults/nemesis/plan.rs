//! What the executor will do, decided from the schedule's seed alone: for
//! every fault of every step, in order, its target (a broker, the leader of
//! something the pipeline depends on, the processor, the proxy). The cluster
//! is never asked here, so the same seed always gives the same actions at the
//! same record counts. A kill aimed at a leader or a coordinator is resolved
//! to a broker when it strikes (leadership moves during a run), and the
//! broker it struck is recorded.

use serde::{Deserialize, Serialize};

use super::schedule::{FaultKind, Schedule};
use crate::faults::leader::exactly_once::{Led, Role};
use crate::support::Seeded;

/// Where a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A broker of the three, by node id.
    Broker(u32),
    /// Whichever broker leads `led` when the fault strikes: an input or
    /// output partition's leader, the group coordinator or the transaction
    /// coordinator. `fallback` is struck when the cluster cannot say (an
    /// at-least-once pipeline has no transaction coordinator).
    Leader { led: Led, fallback: u32 },
    /// The processor (the one running, or a new one beside it).
    Processor,
    /// The chaos proxy between the processors and the brokers.
    Proxy,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Broker(n) => write!(f, "broker {n}"),
            Target::Leader { led, .. } if led.partition.is_some() => {
                write!(f, "leader of {led}")
            }
            Target::Leader { led, .. } => write!(f, "{led}"),
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

/// The actions of `schedule` on a cluster of `brokers` (node ids) whose
/// pipeline topics have `partitions` partitions, in the order they strike:
/// by step, and within a step by kind. A broker kill is aimed, four times in
/// five, at the leader of one of the four things the pipeline depends on
/// (chance alone would rarely hit a coordinator); the fifth time at a broker
/// picked by the seed, which may lead nothing. A follower pause picks a
/// broker; the executor keeps it off a broker the same step killed.
pub fn plan(schedule: &Schedule, brokers: &[u32], partitions: i32) -> Vec<Action> {
    let mut actions = Vec::new();
    for (i, step) in schedule.steps.iter().enumerate() {
        let mut rng = Seeded::new(schedule.seed ^ TARGET_SALT ^ (i as u64 + 1));
        for fault in &step.faults {
            let target = match fault.kind {
                FaultKind::BrokerKill if !brokers.is_empty() => {
                    aim(&mut rng, brokers, partitions.max(1))
                }
                FaultKind::FollowerPause if !brokers.is_empty() => Target::Broker(
                    brokers[rng.in_range(0..brokers.len() as u64) as usize],
                ),
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

/// A broker kill's target: one of the four roles (a partition of the input
/// or the output picked by the seed), or a broker picked by the seed.
fn aim(rng: &mut Seeded, brokers: &[u32], partitions: i32) -> Target {
    let fallback = brokers[rng.in_range(0..brokers.len() as u64) as usize];
    let partition = Some(rng.in_range(0..partitions as u64) as i32);
    let led = match rng.in_range(0..5) {
        0 => Led {
            role: Role::Input,
            partition,
        },
        1 => Led {
            role: Role::Output,
            partition,
        },
        2 => Led {
            role: Role::GroupCoordinator,
            partition: None,
        },
        3 => Led {
            role: Role::TransactionCoordinator,
            partition: None,
        },
        _ => return Target::Broker(fallback),
    };
    Target::Leader { led, fallback }
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
            let a = plan(&schedule(seed), &brokers, 3);
            assert_eq!(a, plan(&schedule(seed), &brokers, 3), "seed {seed}");
            // In step order, at non-decreasing counts, one action per fault.
            let faults: usize =
                schedule(seed).steps.iter().map(|s| s.faults.len()).sum();
            assert_eq!(a.len(), faults);
            assert!(a
                .windows(2)
                .all(|w| w[0].step <= w[1].step && w[0].at_records <= w[1].at_records));
            // Brokers are the cluster's; aims name a partition that exists.
            for x in &a {
                match x.target {
                    Target::Broker(n) => assert!((1..=3).contains(&n), "seed {seed}"),
                    Target::Leader { led, fallback } => {
                        assert_eq!(x.kind, FaultKind::BrokerKill);
                        assert!((1..=3).contains(&fallback));
                        assert!(led.partition.is_none_or(|p| (0..3).contains(&p)));
                    }
                    _ => {}
                }
            }
        }
        // Seeds differ in their targets, and every broker is struck somewhere.
        let targets: std::collections::BTreeSet<String> = (0..40)
            .flat_map(|s| plan(&schedule(s), &brokers, 3))
            .map(|x| x.target.to_string())
            .collect();
        for b in ["broker 1", "broker 2", "broker 3", "processor", "proxy"] {
            assert!(targets.contains(b), "{targets:?}");
        }
        // Every role a kill can aim at is aimed at by some seed.
        for role in [
            "input partition",
            "output partition",
            "group coordinator",
            "transaction coordinator",
        ] {
            assert!(
                targets.iter().any(|t| t.contains(role)),
                "{role}: {targets:?}"
            );
        }
    }
}
