//! The two consumer group protocols a client can speak to Kafka 4.x: the
//! classic one (join, sync, heartbeat; the client sets its own session
//! timeout and the leader member assigns) and the consumer protocol of
//! KIP-848 (`group.protocol=consumer`: the broker assigns, the session
//! timeout is the broker's, and every member carries an epoch that the
//! broker bumps at each new assignment).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which consumer group protocol a consumer speaks (`group.protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupProtocol {
    /// The protocol of every Kafka before 4.0 and librdkafka's default.
    #[default]
    Classic,
    /// KIP-848's protocol, generally available from Kafka 4.0.
    Consumer,
}

impl GroupProtocol {
    pub const ALL: [GroupProtocol; 2] =
        [GroupProtocol::Classic, GroupProtocol::Consumer];

    /// The value of `group.protocol`, as the command line takes it too.
    pub fn name(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }

    /// The protocol named `text` (`classic` or `consumer`).
    pub fn parse(text: &str) -> Result<GroupProtocol> {
        let wanted = text.trim().to_ascii_lowercase();
        GroupProtocol::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| {
                Error::BadConfig(format!(
                    "unknown group protocol {text:?}: use classic (the protocol of every \
                     Kafka release, librdkafka's default) or consumer (KIP-848, Kafka 4.0 \
                     and later)"
                ))
            })
    }

    /// The consumer setting that chooses this protocol.
    pub fn setting(self) -> (String, String) {
        ("group.protocol".into(), self.name().into())
    }

    /// Consumer settings librdkafka refuses under this protocol: under the
    /// consumer protocol the broker owns the session timeout, the heartbeat
    /// interval and the assignment.
    pub fn refused_settings(self) -> &'static [&'static str] {
        match self {
            GroupProtocol::Classic => &[],
            GroupProtocol::Consumer => &[
                "session.timeout.ms",
                "heartbeat.interval.ms",
                "partition.assignment.strategy",
            ],
        }
    }
}

impl std::fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GroupProtocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GroupProtocol::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_by_name_and_a_bad_one_says_what_to_use() {
        for p in GroupProtocol::ALL {
            assert_eq!(p.name().parse::<GroupProtocol>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!(
            GroupProtocol::parse(" Consumer ").unwrap(),
            GroupProtocol::Consumer
        );
        let err = GroupProtocol::parse("kip848").unwrap_err().to_string();
        assert!(err.contains("\"kip848\""), "{err}");
        assert!(err.contains("classic") && err.contains("consumer"), "{err}");
        assert_eq!(GroupProtocol::default(), GroupProtocol::Classic);
        assert!(GroupProtocol::Consumer
            .refused_settings()
            .contains(&"session.timeout.ms"));
    }

    #[test]
    fn librdkafka_refuses_client_side_group_timing_under_the_consumer_protocol() {
        use rdkafka::consumer::BaseConsumer;
        for key in GroupProtocol::Consumer.refused_settings() {
            let value = if *key == "partition.assignment.strategy" {
                "range"
            } else {
                "6000"
            };
            let made = rdkafka::ClientConfig::new()
                .set("group.id", "g")
                .set("group.protocol", "consumer")
                .set(*key, value)
                .create::<BaseConsumer>();
            let err = made.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("not supported"), "{key}: {err}");
            // The classic protocol takes the same setting.
            let classic = rdkafka::ClientConfig::new()
                .set("group.id", "g")
                .set("group.protocol", "classic")
                .set(*key, value)
                .create::<BaseConsumer>();
            assert!(classic.is_ok(), "{key}");
        }
    }
}
