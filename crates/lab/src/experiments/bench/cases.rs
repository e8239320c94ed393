//! The producer configurations the benchmark measures, and what each one sets
//! in both clients, the lab's (librdkafka) and Kafka's own (Java).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::semantics::Semantic;

/// One producer configuration to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Case {
    /// Fire and forget: no acknowledgement, no retries.
    Acks0,
    /// The leader's acknowledgement only; idempotence off.
    Acks1,
    /// Every in-sync replica; idempotence off.
    AcksAll,
    /// acks=all with enable.idempotence=true.
    Idempotent,
    /// Idempotent, inside transactions committed every `commit_interval_ms`.
    Transactional { commit_interval_ms: u64 },
}

impl Case {
    /// acks=0, acks=1, acks=all, idempotent, then one transactional case per interval.
    pub fn defaults(commit_intervals_ms: &[u64]) -> Vec<Case> {
        let mut cases = vec![Case::Acks0, Case::Acks1, Case::AcksAll, Case::Idempotent];
        cases.extend(commit_intervals_ms.iter().map(|&ms| Case::Transactional {
            commit_interval_ms: ms.max(1),
        }));
        cases
    }

    /// `acks=0`, ..., `transactional 100 ms`.
    pub fn label(self) -> String {
        match self {
            Case::Acks0 => "acks=0".into(),
            Case::Acks1 => "acks=1".into(),
            Case::AcksAll => "acks=all".into(),
            Case::Idempotent => "idempotent".into(),
            Case::Transactional { commit_interval_ms } => {
                format!("transactional {commit_interval_ms} ms")
            }
        }
    }

    /// The case's name on the command line (`lab bench --case NAME`):
    /// `acks-0`, `acks-1`, `acks-all`, `idempotent`, `transactional-100ms`.
    pub fn name(self) -> String {
        match self {
            Case::Acks0 => "acks-0".into(),
            Case::Acks1 => "acks-1".into(),
            Case::AcksAll => "acks-all".into(),
            Case::Idempotent => "idempotent".into(),
            Case::Transactional { commit_interval_ms } => {
                format!("transactional-{commit_interval_ms}ms")
            }
        }
    }

    /// The cases called `names` (see [`Case::name`]), in the order given,
    /// each once; `transactional-Nms` takes any interval N of 1 ms or more.
    /// A name that is none of them is refused with the list of valid names,
    /// those of [`Case::defaults`] with `commit_intervals_ms`.
    pub fn named(names: &[String], commit_intervals_ms: &[u64]) -> Result<Vec<Case>> {
        let known = Case::defaults(commit_intervals_ms);
        let mut cases: Vec<Case> = Vec::new();
        for name in names {
            let wanted = name.trim().to_ascii_lowercase();
            let interval = wanted
                .strip_prefix("transactional-")
                .and_then(|ms| ms.strip_suffix("ms"))
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|&ms| ms >= 1);
            let case = known
                .iter()
                .copied()
                .find(|c| c.name() == wanted)
                .or(interval.map(|commit_interval_ms| Case::Transactional {
                    commit_interval_ms,
                }))
                .ok_or_else(|| {
                    let valid: Vec<String> = known.iter().map(|c| c.name()).collect();
                    Error::BadConfig(format!(
                        "no benchmark case is called {name:?}; the cases are: {} \
                         (or transactional-Nms for any interval of N ms)",
                        valid.join(", ")
                    ))
                })?;
            if !cases.contains(&case) {
                cases.push(case);
            }
        }
        Ok(cases)
    }

    /// A topic-name-safe form of the label.
    pub(super) fn slug(self) -> String {
        match self {
            Case::Acks0 => "acks0".into(),
            Case::Acks1 => "acks1".into(),
            Case::AcksAll => "acksall".into(),
            Case::Idempotent => "idempotent".into(),
            Case::Transactional { commit_interval_ms } => {
                format!("tx{commit_interval_ms}ms")
            }
        }
    }

    /// The lab semantic whose settings the case starts from.
    pub fn semantic(self) -> Semantic {
        match self {
            Case::Acks0 => Semantic::AtMostOnce,
            Case::Acks1 | Case::AcksAll | Case::Idempotent => Semantic::AtLeastOnce,
            Case::Transactional { .. } => Semantic::ExactlyOnce,
        }
    }

    pub fn commit_interval(self) -> Option<Duration> {
        match self {
            Case::Transactional { commit_interval_ms } => {
                Some(Duration::from_millis(commit_interval_ms))
            }
            _ => None,
        }
    }

    // ANCHOR: cases
    /// What the case changes in its semantic's librdkafka settings, plus the
    /// in-flight limit, which every case sets to the Java client's default
    /// (librdkafka's is 1,000,000) so both clients run alike.
    pub fn lab_overrides(self, one_in_flight: bool) -> Vec<(String, String)> {
        let mut o = match self {
            Case::Acks1 => vec![("acks", "1")],
            Case::Idempotent => vec![("enable.idempotence", "true")],
            _ => vec![],
        };
        o.push((
            "max.in.flight.requests.per.connection",
            in_flight(one_in_flight),
        ));
        o.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// The same case for the Java client, as ProducerPerformance properties.
    pub fn java_props(self, one_in_flight: bool) -> Vec<(String, String)> {
        let mut o = match self {
            Case::Acks0 => vec![
                ("acks", "0"),
                ("enable.idempotence", "false"),
                ("retries", "0"),
            ],
            Case::Acks1 => vec![("acks", "1"), ("enable.idempotence", "false")],
            Case::AcksAll => vec![("acks", "all"), ("enable.idempotence", "false")],
            Case::Idempotent | Case::Transactional { .. } => {
                vec![("acks", "all"), ("enable.idempotence", "true")]
            }
        };
        o.push((
            "max.in.flight.requests.per.connection",
            in_flight(one_in_flight),
        ));
        // The Java client batches 16 KB per partition by default, librdkafka
        // up to 1 MB (batch.size=1000000): with the defaults, the comparison
        // would measure batch sizes, not clients. Both batch up to 1 MB.
        o.push(("batch.size", "1000000"));
        o.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }
    // ANCHOR_END: cases
}

/// max.in.flight.requests.per.connection: 1, or the Java client's default, 5.
pub(super) fn in_flight(one: bool) -> &'static str {
    if one {
        "1"
    } else {
        "5"
    }
}

/// The commit intervals measured by default: the cost of exactly-once as a
/// curve, from frequent commits (10 ms) to rare ones (3 s).
pub const COMMIT_INTERVALS_MS: [u64; 6] = [10, 30, 100, 300, 1000, 3000];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn cases_are_chosen_by_name() {
        let names =
            |n: &[&str]| -> Vec<String> { n.iter().map(|s| s.to_string()).collect() };
        let chosen =
            Case::named(&names(&["acks-all", "acks-1", "acks-all"]), &[100]).unwrap();
        assert_eq!(chosen, [Case::AcksAll, Case::Acks1]);
        let chosen =
            Case::named(&names(&["Idempotent", "transactional-250ms"]), &[100])
                .unwrap();
        assert_eq!(
            chosen,
            [
                Case::Idempotent,
                Case::Transactional {
                    commit_interval_ms: 250
                }
            ]
        );
        // Every default case is reachable by its own name.
        let all = Case::defaults(&COMMIT_INTERVALS_MS);
        let all_names: Vec<String> = all.iter().map(|c| c.name()).collect();
        assert_eq!(Case::named(&all_names, &COMMIT_INTERVALS_MS).unwrap(), all);
        // A wrong name is refused, with the valid ones listed.
        let error = Case::named(&names(&["acks=all"]), &[10, 100])
            .unwrap_err()
            .to_string();
        for valid in [
            "acks-0",
            "acks-1",
            "acks-all",
            "idempotent",
            "transactional-10ms",
            "transactional-100ms",
        ] {
            assert!(error.contains(valid), "{error}");
        }
        assert!(error.contains("\"acks=all\""), "{error}");
        assert!(Case::named(&names(&["transactional-0ms"]), &[100]).is_err());
    }

    #[test]
    fn cases_configure_both_clients_alike() {
        for one in [false, true] {
            for case in Case::defaults(&[100]) {
                let lab: BTreeMap<_, _> = case.lab_overrides(one).into_iter().collect();
                let java: BTreeMap<_, _> = case.java_props(one).into_iter().collect();
                let key = "max.in.flight.requests.per.connection";
                assert_eq!(lab[key], java[key]);
                assert_eq!(lab[key], if one { "1" } else { "5" });
                // The semantic's own settings plus the case's give the same acks
                // and idempotence as the Java properties.
                let config = case
                    .semantic()
                    .producer_config("x:1", Some("t"), &case.lab_overrides(one))
                    .unwrap();
                let acks = config.get("acks").unwrap();
                assert_eq!(acks, java["acks"], "{case:?}");
                let idem = config.get("enable.idempotence").unwrap();
                assert_eq!(idem, java["enable.idempotence"], "{case:?}");
                // Java batches as much as librdkafka does by default.
                assert_eq!(java["batch.size"], "1000000");
            }
        }
    }
}
