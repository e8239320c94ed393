//! The three delivery semantics and the exact client settings behind each.
//!
//! Every key the lab sets is listed here with a one-line reason and with the
//! defaults of librdkafka (what the rdkafka crate uses) and of the Java client,
//! because the two differ exactly where delivery guarantees live.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

// ANCHOR: semantic
/// A delivery guarantee, end to end: how the producer sends and how the consumer
/// commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantic {
    /// Fire and forget; commit before processing. Never twice, maybe never.
    AtMostOnce,
    /// Wait for every in-sync replica, retry; commit after processing.
    /// Never lost, maybe twice.
    AtLeastOnce,
    /// Idempotent, transactional producer; read_committed consumer; consumed
    /// offsets committed inside the producer's transaction.
    ExactlyOnce,
}
// ANCHOR_END: semantic

impl Semantic {
    pub const ALL: [Semantic; 3] = [
        Semantic::AtMostOnce,
        Semantic::AtLeastOnce,
        Semantic::ExactlyOnce,
    ];

    /// The name used on the command line and in JSON: `at-most-once`, ...
    pub fn name(self) -> &'static str {
        match self {
            Semantic::AtMostOnce => "at-most-once",
            Semantic::AtLeastOnce => "at-least-once",
            Semantic::ExactlyOnce => "exactly-once",
        }
    }

    /// Parses `at-most-once`, `at_least_once`, `exactly-once`, ... (case-insensitive).
    pub fn parse(text: &str) -> Result<Semantic> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Semantic::ALL
            .into_iter()
            .find(|s| s.name() == wanted)
            .ok_or_else(|| {
                Error::BadConfig(format!(
                    "unknown semantic {text:?}: use at-most-once, at-least-once or exactly-once"
                ))
            })
    }

    /// The producer settings this semantic needs, each with its reason.
    pub fn producer_settings(self) -> Vec<Setting> {
        use Semantic::*;
        let mut settings = match self {
            AtMostOnce => vec![
                Setting::new("acks", "0", "-1 (all)", "all")
                    .why("the leader sends no acknowledgement: nothing is waited for, so nothing is retried"),
                Setting::new("retries", "0", "2147483647", "2147483647")
                    .why("a record is handed over once and never sent again, so it can never be written twice"),
                Setting::new("enable.idempotence", "false", "false", "true")
                    .why("idempotence needs acks=all; with acks=0 there is no acknowledged sequence to de-duplicate"),
            ],
            AtLeastOnce => vec![
                Setting::new("acks", "all", "-1 (all)", "all")
                    .why("acknowledged only once every in-sync replica has it; acks=1 loses acknowledged writes when the leader dies"),
                Setting::new("retries", "2147483647", "2147483647", "2147483647")
                    .why("keep resending until the delivery timeout: an unanswered send may be a lost record"),
                Setting::new("enable.idempotence", "false", "false", "true")
                    .why("off on purpose, to show the duplicates retries make; turning it on is the first step to exactly-once"),
                Setting::new("max.in.flight.requests.per.connection", "5", "1000000", "5")
                    .why("the Java client's value; with more than one in flight a retried batch can land after a later one"),
            ],
            ExactlyOnce => vec![
                Setting::new("enable.idempotence", "true", "false", "true")
                    .why("the broker drops a retried batch it already has, by producer id and sequence number"),
                Setting::new("acks", "all", "-1 (all)", "all")
                    .why("required by idempotence: de-duplication works on what every in-sync replica holds"),
                Setting::new("max.in.flight.requests.per.connection", "5", "1000000", "5")
                    .why("idempotence keeps order and de-duplicates for at most 5 requests in flight"),
                Setting::new("transactional.id", "<one per processor instance>", "(none)", "(none)")
                    .why("a restarted instance with the same id fences the old one and aborts its open transaction"),
                Setting::new("transaction.timeout.ms", "60000", "60000", "60000")
                    .why("the coordinator aborts a transaction left open longer than this, e.g. by a crashed producer"),
            ],
        };
        // The client-side timeouts that decide when a send is retried or failed.
        if self != AtMostOnce {
            let (timeout, reason) = if self == ExactlyOnce {
                ("60000", "how long a record may take, retries included; librdkafka refuses a transactional producer whose value exceeds transaction.timeout.ms")
            } else {
                ("300000", "how long a record may take, retries included, before it is reported failed (the Java client calls it delivery.timeout.ms)")
            };
            settings.push(
                Setting::new(
                    "message.timeout.ms",
                    timeout,
                    "300000",
                    "120000 (delivery.timeout.ms)",
                )
                .why(reason),
            );
            settings.push(
                Setting::new("socket.timeout.ms", "10000", "60000", "(n/a)")
                    .why("how long librdkafka waits for the answer to a request in flight before it retries: a lost ack is noticed after this (request.timeout.ms is only the broker's wait for replicas)"),
            );
        }
        settings
    }

    /// The consumer settings this semantic needs, each with its reason.
    pub fn consumer_settings(self) -> Vec<Setting> {
        use Semantic::*;
        let commit = match self {
            AtMostOnce => "the lab commits each batch synchronously *before* processing it; auto-commit would commit on a timer, so a crash could lose or repeat records",
            AtLeastOnce => "the lab commits each batch synchronously *after* processing it; auto-commit could commit records not yet processed",
            ExactlyOnce => "offsets are committed by the producer's transaction (send_offsets_to_transaction), never by the consumer",
        };
        let isolation = match self {
            ExactlyOnce => Setting::new("isolation.level", "read_committed", "read_committed", "read_uncommitted")
                .why("read only records of committed transactions: aborted ones are skipped, open ones wait"),
            _ => Setting::new("isolation.level", "read_uncommitted", "read_committed", "read_uncommitted")
                .why("the producer writes no transactions, so this only says so plainly; note librdkafka's default differs from Java's"),
        };
        vec![
            Setting::new("enable.auto.commit", "false", "true", "true").why(commit),
            Setting::new("auto.offset.reset", "earliest", "latest", "latest")
                .why("a new consumer group starts at the beginning of the topic, so no record is skipped"),
            isolation,
        ]
    }

    /// A ready producer configuration: bootstrap address, this semantic's
    /// settings, then `overrides` (checked for combinations that cannot work).
    pub fn producer_config(
        self,
        bootstrap: &str,
        transactional_id: Option<&str>,
        overrides: &[(String, String)],
    ) -> Result<ClientConfig> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        map.insert("bootstrap.servers".into(), bootstrap.into());
        // The learner's connection settings first; the semantic's win, and a
        // file that would change one of them is refused.
        let file = crate::connection::settings()?;
        let defined: Vec<_> = self
            .producer_settings()
            .iter()
            .filter(|s| s.key != "transactional.id")
            .map(|s| (s.key, s.value, s.why))
            .collect();
        crate::connection::refuse_conflicts(self.name(), &defined, &file)?;
        map.extend(file);
        for s in self.producer_settings() {
            if s.key == "transactional.id" {
                let id = transactional_id.ok_or_else(|| {
                    Error::BadConfig(
                        "exactly-once needs a transactional.id for its producer".into(),
                    )
                })?;
                map.insert(s.key.into(), id.into());
            } else {
                map.insert(s.key.into(), s.value.into());
            }
        }
        for (k, v) in overrides {
            map.insert(k.clone(), v.clone());
        }
        check_producer_settings(&map)?;
        let mut config = to_client_config(map);
        // Statistics on, while a `monitor::Monitor` records this thread's run.
        crate::stats::watch_if_active(&mut config, "producer");
        Ok(config)
    }

    /// A ready consumer configuration for `group`, with `overrides` applied last.
    pub fn consumer_config(
        self,
        bootstrap: &str,
        group: &str,
        overrides: &[(String, String)],
    ) -> ClientConfig {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        map.insert("bootstrap.servers".into(), bootstrap.into());
        map.insert("group.id".into(), group.into());
        // A file that changes a consumer setting of the semantic was refused
        // when its producer was made, or by `Cluster::connect`.
        map.extend(crate::connection::settings().unwrap_or_default());
        for s in self.consumer_settings() {
            map.insert(s.key.into(), s.value.into());
        }
        for (k, v) in overrides {
            map.insert(k.clone(), v.clone());
        }
        let mut config = to_client_config(map);
        crate::stats::watch_if_active(&mut config, "consumer");
        config
    }

    /// This semantic's settings as Markdown tables (producer, then consumer).
    pub fn settings_markdown(self) -> String {
        let mut out = format!("**{self}: producer**\n\n");
        out += &Setting::markdown_table(&self.producer_settings());
        out += &format!("\n**{self}: consumer**\n\n");
        out += &Setting::markdown_table(&self.consumer_settings());
        out
    }
}

impl fmt::Display for Semantic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Semantic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Semantic::parse(s)
    }
}

/// One client setting, with why the lab sets it and what the two clients would
/// use if it were not set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: &'static str,
    pub why: &'static str,
    pub librdkafka_default: &'static str,
    pub java_default: &'static str,
}

impl Setting {
    fn new(
        key: &'static str,
        value: &'static str,
        librdkafka_default: &'static str,
        java_default: &'static str,
    ) -> Setting {
        Setting {
            key,
            value,
            why: "",
            librdkafka_default,
            java_default,
        }
    }

    fn why(mut self, why: &'static str) -> Setting {
        self.why = why;
        self
    }

    /// A Markdown table of settings: key, value, both defaults, reason.
    pub fn markdown_table(settings: &[Setting]) -> String {
        // The reasons are sentences: as a column they pushed the table off
        // the page, so they follow it, one bullet per key.
        let mut out = String::from(
            "| key | value | librdkafka default | Java default |\n|---|---|---|---|\n",
        );
        for s in settings {
            out += &format!(
                "| `{}` | `{}` | {} | {} |\n",
                s.key, s.value, s.librdkafka_default, s.java_default
            );
        }
        out += "\nWhy:\n\n";
        for s in settings {
            out += &format!("- `{}`: {}\n", s.key, s.why);
        }
        out
    }

    /// A plain-text table for a terminal or a notebook cell.
    pub fn text_table(settings: &[Setting]) -> String {
        let key_w = settings
            .iter()
            .map(|s| s.key.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let val_w = settings
            .iter()
            .map(|s| s.value.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:key_w$}  {:val_w$}  why\n", "key", "value");
        for s in settings {
            out += &format!("{:key_w$}  {:val_w$}  {}\n", s.key, s.value, s.why);
        }
        out
    }
}

fn to_client_config(map: BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in map {
        config.set(k, v);
    }
    config
}

/// Rejects producer settings that cannot work together, saying why, before
/// librdkafka gives a terser error or, worse, quietly changes the guarantee.
pub fn check_producer_settings(map: &BTreeMap<String, String>) -> Result<()> {
    let get = |k: &str| map.get(k).map(|v| v.trim().to_ascii_lowercase());
    let idempotent = get("enable.idempotence").as_deref() == Some("true");
    let transactional = map.contains_key("transactional.id");
    let acks = get("acks").or_else(|| get("request.required.acks"));
    let acks_all = matches!(acks.as_deref(), None | Some("all") | Some("-1"));

    if idempotent && !acks_all {
        return Err(Error::BadConfig(format!(
            "enable.idempotence=true needs acks=all, but acks={}. The broker de-duplicates a retry \
             by the sequence numbers of batches it acknowledged; with acks={} the producer never \
             learns what was written. Use acks=all for idempotence, or turn idempotence off for \
             at-most-once.",
            acks.as_deref().unwrap_or("?"),
            acks.as_deref().unwrap_or("?")
        )));
    }
    if transactional && get("enable.idempotence").as_deref() == Some("false") {
        return Err(Error::BadConfig(
            "transactional.id needs enable.idempotence=true: a transaction is built on the \
             idempotent producer's id and epoch, which is also what fences a zombie."
                .into(),
        ));
    }
    if transactional && !acks_all {
        return Err(Error::BadConfig(
            "a transactional producer needs acks=all: a transaction can only commit records \
             that every in-sync replica holds."
                .into(),
        ));
    }
    if idempotent || transactional {
        if let Some(n) = get("max.in.flight.requests.per.connection") {
            if n.parse::<u64>().map(|n| n > 5).unwrap_or(false) {
                return Err(Error::BadConfig(format!(
                    "max.in.flight.requests.per.connection={n} with idempotence: the broker keeps \
                     the sequence numbers of the last 5 batches only, so at most 5 may be in flight."
                )));
            }
        }
    }
    if transactional {
        let num = |k: &str, default: u64| {
            get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        let message = num("message.timeout.ms", 300_000);
        let socket = num("socket.timeout.ms", 60_000);
        let transaction = num("transaction.timeout.ms", 60_000);
        if socket > transaction + 100 {
            return Err(Error::BadConfig(format!(
                "socket.timeout.ms={socket} is longer than transaction.timeout.ms={transaction}: \
                 librdkafka refuses a transactional producer that would wait for one request \
                 longer than its transaction may live. Lower socket.timeout.ms."
            )));
        }
        if message > transaction {
            return Err(Error::BadConfig(format!(
                "message.timeout.ms={message} is longer than transaction.timeout.ms={transaction}: \
                 a record could still be retried after its transaction was aborted. Set \
                 message.timeout.ms <= transaction.timeout.ms."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for s in Semantic::ALL {
            assert_eq!(Semantic::parse(s.name()).unwrap(), s);
        }
        assert_eq!(
            Semantic::parse("AT_LEAST_ONCE").unwrap(),
            Semantic::AtLeastOnce
        );
        let err = Semantic::parse("twice").unwrap_err().to_string();
        assert!(
            err.contains("at-most-once, at-least-once or exactly-once"),
            "{err}"
        );
    }

    #[test]
    fn each_semantic_sets_the_keys_its_guarantee_rests_on() {
        let value = |s: Semantic, key: &str| {
            s.producer_settings()
                .into_iter()
                .find(|x| x.key == key)
                .map(|x| x.value)
        };
        assert_eq!(value(Semantic::AtMostOnce, "acks"), Some("0"));
        assert_eq!(value(Semantic::AtMostOnce, "retries"), Some("0"));
        assert_eq!(value(Semantic::AtLeastOnce, "acks"), Some("all"));
        assert_eq!(
            value(Semantic::AtLeastOnce, "enable.idempotence"),
            Some("false")
        );
        assert_eq!(
            value(Semantic::ExactlyOnce, "enable.idempotence"),
            Some("true")
        );
        // The client-side timeout of a request in flight is socket.timeout.ms in
        // librdkafka; request.timeout.ms would never make the client retry.
        assert!(value(Semantic::AtLeastOnce, "socket.timeout.ms").is_some());
        assert!(value(Semantic::AtLeastOnce, "request.timeout.ms").is_none());
        let consumer = |s: Semantic, key: &str| {
            s.consumer_settings()
                .into_iter()
                .find(|x| x.key == key)
                .map(|x| x.value)
        };
        assert_eq!(
            consumer(Semantic::ExactlyOnce, "isolation.level"),
            Some("read_committed")
        );
        for s in Semantic::ALL {
            assert_eq!(consumer(s, "enable.auto.commit"), Some("false"));
            for setting in s.producer_settings().iter().chain(&s.consumer_settings()) {
                assert!(!setting.why.is_empty(), "{} has no reason", setting.key);
            }
        }
    }

    #[test]
    fn the_tables_show_where_librdkafka_and_java_defaults_differ() {
        let eos = Semantic::ExactlyOnce.settings_markdown();
        assert!(
            eos.contains("| `enable.idempotence` | `true` | false | true |"),
            "{eos}"
        );
        assert!(eos.contains("| `isolation.level` | `read_committed` | read_committed | read_uncommitted |"));
        let alo = Semantic::AtLeastOnce.settings_markdown();
        assert!(
            alo.contains("| `message.timeout.ms` | `300000` | 300000 |"),
            "{alo}"
        );
    }

    #[test]
    fn every_semantic_builds_a_valid_producer_config() {
        for s in Semantic::ALL {
            let config = s
                .producer_config("127.0.0.1:9092", Some("tx-1"), &[])
                .unwrap();
            assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        }
        let err = Semantic::ExactlyOnce
            .producer_config("x:1", None, &[])
            .unwrap_err();
        assert!(err.to_string().contains("transactional.id"));
    }

    #[test]
    fn acks_zero_with_idempotence_is_refused_with_the_reason() {
        let err = Semantic::AtMostOnce
            .producer_config(
                "x:1",
                None,
                &[("enable.idempotence".into(), "true".into())],
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs acks=all, but acks=0"), "{err}");
        assert!(err.contains("de-duplicates"), "{err}");
    }

    #[test]
    fn other_impossible_combinations_are_refused() {
        let bad = [
            settings(&[("transactional.id", "t"), ("enable.idempotence", "false")]),
            settings(&[
                ("transactional.id", "t"),
                ("acks", "1"),
                ("enable.idempotence", "true"),
            ]),
            settings(&[
                ("enable.idempotence", "true"),
                ("max.in.flight.requests.per.connection", "6"),
            ]),
            settings(&[("transactional.id", "t"), ("message.timeout.ms", "300000")]),
            settings(&[
                ("transactional.id", "t"),
                ("transaction.timeout.ms", "3000"),
                ("message.timeout.ms", "3000"),
                ("socket.timeout.ms", "10000"),
            ]),
        ];
        for map in bad {
            assert!(check_producer_settings(&map).is_err(), "accepted {map:?}");
        }
        let fine = settings(&[
            ("transactional.id", "t"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
        ]);
        check_producer_settings(&fine).unwrap();
    }
}
