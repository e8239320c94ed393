//! The values librdkafka really runs with, not the ones you set: it adjusts
//! some timeouts of a transactional producer when you leave them unset, and
//! refuses the producer when you set them in conflict. This module creates
//! producers (no broker is needed to create one) and reads their effective
//! configuration back, so the book shows librdkafka's rules as librdkafka
//! applies them.

use std::ffi::{CStr, CString};

use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;

/// The three timeouts whose rules the table shows.
pub const TIMEOUT_KEYS: [&str; 3] = [
    "transaction.timeout.ms",
    "socket.timeout.ms",
    "message.timeout.ms",
];

/// Creates a producer with `settings` (pointed at an address where nothing
/// listens: creating a producer contacts no broker) and reads back the
/// effective value of each of `keys`. `Err` carries librdkafka's reason when
/// it refuses the producer.
pub fn effective_producer_settings(
    settings: &[(&str, &str)],
    keys: &[&str],
) -> std::result::Result<Vec<String>, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", "127.0.0.1:1");
    // A topic-level setting, at its default value, makes librdkafka build its
    // default topic configuration now and apply its rules to it at creation,
    // as it does for every topic it produces to later: what we read back is
    // then what a topic gets.
    config.set("partitioner", "consistent_random");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().map_err(|e| match e {
        rdkafka::error::KafkaError::ClientCreation(why) => why,
        other => other.to_string(),
    })?;
    let rk = producer.client().native_ptr();
    Ok(keys.iter().map(|key| conf_get(rk, key)).collect())
}

/// One property of a live client's configuration, as librdkafka holds it: a
/// global property, or else one of its default topic configuration (where
/// `message.timeout.ms` lives).
fn conf_get(rk: *mut rdkafka::bindings::rd_kafka_t, key: &str) -> String {
    use rdkafka::bindings as rd;
    let name = CString::new(key).expect("a property name has no NUL");
    let mut buf = vec![0 as std::ffi::c_char; 512];
    let mut size = buf.len();
    // SAFETY: `rk` is a live client (its producer outlives this call);
    // rd_kafka_conf returns its configuration, which librdkafka owns;
    // rd_kafka_default_topic_conf_dup returns a copy we own and destroy; the
    // getters write at most `size` bytes, NUL-terminated.
    let res = unsafe {
        let global = rd::rd_kafka_conf_get(
            rd::rd_kafka_conf(rk),
            name.as_ptr(),
            buf.as_mut_ptr(),
            &mut size,
        );
        if global == rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_UNKNOWN {
            size = buf.len();
            let topic = rd::rd_kafka_default_topic_conf_dup(rk);
            let res = rd::rd_kafka_topic_conf_get(
                topic,
                name.as_ptr(),
                buf.as_mut_ptr(),
                &mut size,
            );
            rd::rd_kafka_topic_conf_destroy(topic);
            res
        } else {
            global
        }
    };
    if res != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        return format!("(unknown: {res:?})");
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The cases of librdkafka's timeout rules for a transactional producer.
fn timeout_cases() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let txn = ("transactional.id", "t");
    vec![
        ("no transactional.id, nothing set", vec![]),
        ("a transactional.id, nothing else set", vec![txn]),
        (
            "a transactional.id, transaction.timeout.ms=3000",
            vec![txn, ("transaction.timeout.ms", "3000")],
        ),
        (
            "a transactional.id, transaction.timeout.ms=3000, socket.timeout.ms=3100",
            vec![
                txn,
                ("transaction.timeout.ms", "3000"),
                ("socket.timeout.ms", "3100"),
            ],
        ),
        (
            "a transactional.id, transaction.timeout.ms=3000, socket.timeout.ms=10000",
            vec![
                txn,
                ("transaction.timeout.ms", "3000"),
                ("socket.timeout.ms", "10000"),
            ],
        ),
        (
            "a transactional.id, transaction.timeout.ms=3000, message.timeout.ms=300000",
            vec![
                txn,
                ("transaction.timeout.ms", "3000"),
                ("message.timeout.ms", "300000"),
            ],
        ),
    ]
}

/// librdkafka's timeout rules as a Markdown table: for each case, what was
/// set and the effective values (or librdkafka's refusal), with the version
/// that applied them.
pub fn timeout_rules_markdown() -> String {
    let mut out = format!(
        "| producer settings | {} |\n|---|---|---|---|\n",
        TIMEOUT_KEYS.map(|k| format!("effective `{k}`")).join(" | ")
    );
    for (label, settings) in timeout_cases() {
        match effective_producer_settings(&settings, &TIMEOUT_KEYS) {
            Ok(values) => {
                out += &format!("| {label} | {} |\n", values.join(" | "));
            }
            Err(why) => out += &format!("| {label} | refused: {why} | | |\n"),
        }
    }
    let (_, version) = rdkafka::util::get_rdkafka_version();
    out += &format!(
        "\nEach row creates a producer with librdkafka {version} and reads its configuration \
         back; every setting not named keeps librdkafka's default.\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_timeouts_follow_the_transaction_timeout_and_conflicts_are_refused() {
        let txn = ("transactional.id", "t");
        let short = ("transaction.timeout.ms", "3000");
        assert_eq!(
            effective_producer_settings(&[txn, short], &TIMEOUT_KEYS).unwrap(),
            ["3000", "2900", "3000"]
        );
        // Without a transactional.id nothing is adjusted.
        assert_eq!(
            effective_producer_settings(&[], &TIMEOUT_KEYS[1..]).unwrap(),
            ["60000", "300000"]
        );
        let err = effective_producer_settings(
            &[txn, short, ("socket.timeout.ms", "3101")],
            &TIMEOUT_KEYS,
        )
        .unwrap_err();
        assert!(err.contains("socket.timeout.ms"), "{err}");
        let err = effective_producer_settings(
            &[txn, short, ("message.timeout.ms", "3001")],
            &TIMEOUT_KEYS,
        )
        .unwrap_err();
        assert!(err.contains("message.timeout.ms"), "{err}");
    }
}
