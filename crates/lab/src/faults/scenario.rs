//! The one list of the failure scenarios. A scenario's letter, its name on
//! the command line and in recorded JSON, its label in tables and charts,
//! what it needs and how it runs are all said here, once: adding a scenario
//! is a variant here and a file of its own in `faults/`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::semantics::Semantic;

use super::crash::{consumer_crash, producer_crash, CrashOptions};
use super::eos_stress::{self, EosStressOptions};
use super::leader::{leader_failure, LeaderFailureOptions};
use super::lost_ack::{lost_ack, LostAckOptions};

/// A failure the course injects (the letters follow the book).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A: the ack is lost after the write.
    LostAck,
    /// B: the producer dies mid-stream.
    ProducerCrash,
    /// C: the consumer dies between its two steps.
    ConsumerCrash,
    /// D: the partition leader dies (three brokers).
    LeaderFailure,
    /// E1: a zombie producer is fenced by its successor's transactional.id.
    ZombieFenced,
    /// E2: the answer to a transaction's commit (EndTxn) is lost.
    LostEndTxn,
    /// E3: a transaction is left open past its timeout.
    TransactionTimeout,
    /// E4: an open transaction holds read_committed readers back.
    OpenTransaction,
}

/// What one run of a scenario is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioOptions {
    pub semantic: Semantic,
    pub records: u64,
    /// Chooses the (reproducible) fault timing.
    pub seed: u64,
    /// Producer settings applied after the semantic's (e.g. `acks=1` for D).
    pub producer_overrides: Vec<(String, String)>,
    /// The consumers' group protocol (scenario C only).
    pub group_protocol: crate::group_protocol::GroupProtocol,
}

impl ScenarioOptions {
    pub fn new(semantic: Semantic, records: u64, seed: u64) -> ScenarioOptions {
        ScenarioOptions {
            semantic,
            records,
            seed,
            producer_overrides: Vec::new(),
            group_protocol: Default::default(),
        }
    }
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::LostAck,
        Scenario::ProducerCrash,
        Scenario::ConsumerCrash,
        Scenario::LeaderFailure,
        Scenario::ZombieFenced,
        Scenario::LostEndTxn,
        Scenario::TransactionTimeout,
        Scenario::OpenTransaction,
    ];

    /// The letter of the book's failure-scenarios chapter: "A" to "D", "E1" to "E4".
    pub fn letter(self) -> &'static str {
        match self {
            Scenario::LostAck => "A",
            Scenario::ProducerCrash => "B",
            Scenario::ConsumerCrash => "C",
            Scenario::LeaderFailure => "D",
            Scenario::ZombieFenced => "E1",
            Scenario::LostEndTxn => "E2",
            Scenario::TransactionTimeout => "E3",
            Scenario::OpenTransaction => "E4",
        }
    }

    /// The name on the command line and in recorded JSON, e.g. `lost-ack`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::LostAck => "lost-ack",
            Scenario::ProducerCrash => "producer-crash",
            Scenario::ConsumerCrash => "consumer-crash",
            Scenario::LeaderFailure => "leader-failure",
            Scenario::ZombieFenced => "zombie-fenced",
            Scenario::LostEndTxn => "lost-end-txn",
            Scenario::TransactionTimeout => "transaction-timeout",
            Scenario::OpenTransaction => "open-transaction",
        }
    }

    /// What happens, in a few words: "lost ack", "zombie fenced".
    pub fn title(self) -> &'static str {
        match self {
            Scenario::LostAck => "lost ack",
            Scenario::ProducerCrash => "producer crash",
            Scenario::ConsumerCrash => "consumer crash",
            Scenario::LeaderFailure => "leader dies",
            Scenario::ZombieFenced => "zombie fenced",
            Scenario::LostEndTxn => "lost EndTxn",
            Scenario::TransactionTimeout => "transaction timeout",
            Scenario::OpenTransaction => "open transaction",
        }
    }

    /// The label of tables and charts: letter and title, "A lost ack".
    pub fn label(self) -> String {
        format!("{} {}", self.letter(), self.title())
    }

    /// E is about exactly-once's own machinery: the other semantics have no
    /// transactions to stress.
    pub fn exactly_once_only(self) -> bool {
        matches!(
            self,
            Scenario::ZombieFenced
                | Scenario::LostEndTxn
                | Scenario::TransactionTimeout
                | Scenario::OpenTransaction
        )
    }

    /// Whether `semantic` has what this scenario stresses (E: transactions).
    pub fn applies_to(self, semantic: Semantic) -> bool {
        !self.exactly_once_only() || semantic == Semantic::ExactlyOnce
    }

    /// Refuses a semantic this scenario does not apply to, before anything runs.
    pub fn check_applies_to(self, semantic: Semantic) -> Result<()> {
        if self.applies_to(semantic) {
            return Ok(());
        }
        Err(Error::BadConfig(format!(
            "{} is a scenario of exactly-once, not of {semantic}",
            self.label()
        )))
    }

    /// D kills a partition leader: only a replicated cluster has another broker to take over.
    pub fn needs_three_brokers(self) -> bool {
        self == Scenario::LeaderFailure
    }

    /// Runs this scenario once. `three` is the three-broker cluster that D
    /// needs (without it, D runs on `single` and says why it cannot).
    pub fn run(
        self,
        single: &Cluster,
        three: Option<&Cluster>,
        options: &ScenarioOptions,
    ) -> Result<Outcome> {
        let ScenarioOptions {
            semantic,
            records,
            seed,
            ..
        } = *options;
        self.check_applies_to(semantic)?;
        if options.group_protocol != Default::default()
            && self != Scenario::ConsumerCrash
        {
            return Err(Error::BadConfig(format!(
                "a group protocol chooses how scenario C's consumers join their group: \
                 {} has no consumer group; drop the group protocol or use consumer-crash",
                self.label()
            )));
        }
        let stress = EosStressOptions { records, seed };
        match self {
            Scenario::LostAck => {
                lost_ack(single, semantic, &LostAckOptions::new(records, seed))
            }
            Scenario::ProducerCrash => {
                producer_crash(single, semantic, &CrashOptions::new(records, seed))
            }
            // One partition, so the consumer takes records in id order and the
            // batch it dies with is one stretch of ids (the timeline shows it).
            Scenario::ConsumerCrash => consumer_crash(
                single,
                semantic,
                &CrashOptions {
                    partitions: 1,
                    group_protocol: options.group_protocol,
                    ..CrashOptions::new(records, seed)
                },
            ),
            Scenario::LeaderFailure => leader_failure(
                three.unwrap_or(single),
                semantic,
                &LeaderFailureOptions {
                    records,
                    seed,
                    overrides: options.producer_overrides.clone(),
                },
            ),
            Scenario::ZombieFenced => eos_stress::zombie_fenced(single, &stress),
            Scenario::LostEndTxn => eos_stress::lost_end_txn(single, &stress),
            Scenario::TransactionTimeout => {
                eos_stress::transaction_timeout(single, &stress)
            }
            Scenario::OpenTransaction => {
                eos_stress::open_transaction_holds_back_readers(single, &stress)
            }
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = Error;

    /// A scenario by its name (`lost-ack`) or its letter (`A`, `e1`).
    fn from_str(s: &str) -> Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|c| c.name() == s || c.letter().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<String> = Scenario::ALL
                    .iter()
                    .map(|c| format!("{} ({})", c.name(), c.letter()))
                    .collect();
                Error::BadConfig(format!(
                    "no scenario is called {s:?}; the scenarios are {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_letters_and_json_agree_for_every_scenario() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>().unwrap(), s);
            assert_eq!(s.letter().to_lowercase().parse::<Scenario>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
            assert!(s.label().starts_with(s.letter()));
        }
        let err = "lost-acks".parse::<Scenario>().unwrap_err().to_string();
        assert!(
            err.contains("lost-ack (A)") && err.contains("open-transaction (E4)"),
            "{err}"
        );
    }

    #[test]
    fn the_labels_are_the_ones_the_book_shows() {
        let labels: Vec<String> = Scenario::ALL.map(Scenario::label).to_vec();
        assert_eq!(
            labels,
            [
                "A lost ack",
                "B producer crash",
                "C consumer crash",
                "D leader dies",
                "E1 zombie fenced",
                "E2 lost EndTxn",
                "E3 transaction timeout",
                "E4 open transaction",
            ]
        );
    }

    #[test]
    fn an_exactly_once_scenario_refuses_another_semantic_before_it_runs() {
        let cluster = Cluster::mock().unwrap();
        let options = ScenarioOptions::new(Semantic::AtLeastOnce, 10, 1);
        let err = Scenario::ZombieFenced
            .run(&cluster, None, &options)
            .unwrap_err();
        assert!(
            err.to_string().contains("scenario of exactly-once"),
            "{err}"
        );
    }
}
