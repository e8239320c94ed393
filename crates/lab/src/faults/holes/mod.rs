//! The holes a client can still fall into, measured on Apache Kafka. The
//! Rust client (librdkafka, through rdkafka) does not speak transactions v2
//! (KIP-890 part 2): its producer epoch stays the same from one transaction
//! to the next. Each hole is run as it would happen and reported as it
//! happened, a hole that does not open included.
//!
//! - [`late_produce`](fn@late_produce) (a): a Produce request of transaction
//!   T1, held by the chaos proxy, reaches the broker after T1 ended and while
//!   T2 is open. Does the broker refuse it, or does it land in T2?
//! - [`leader_in_flight`](fn@leader_in_flight) (b): the partition leader is
//!   SIGKILLed while the producer has requests in flight to it; the
//!   idempotent producer alone, against a transactional one and a plain
//!   acks=all one. Does a retried batch land twice?
//! - [`stale_metadata`](fn@stale_metadata) (c): a read-process-write
//!   processor that takes its consumer's group metadata once, before a
//!   rebalance, against one that takes it fresh for every commit.

mod broker_config;
mod late_produce;
mod leader_in_flight;
mod leader_in_flight_record;
mod record;
mod stale_metadata;

pub use broker_config::{broker_setting, first_broker_id, SettingGuard, VERIFICATION};
pub use late_produce::{
    late_produce, LateCase, LateProduceOptions, LateProduceReport, PER_TRANSACTION,
};
pub use leader_in_flight::{
    leader_in_flight, tally, InFlightProducer, LeaderInFlightOptions,
    LeaderInFlightReport, Tally, IN_FLIGHT_PARTITIONS, IN_FLIGHT_PER_TRANSACTION,
    IN_FLIGHT_RECORDS,
};
pub use leader_in_flight_record::{
    leader_in_flight_markdown, measure_leader_in_flight, LeaderInFlightRecord,
};
pub use record::{holes_markdown, measure_holes, HolesRecord};
pub use stale_metadata::{stale_metadata, MetadataUse, StaleMetadataReport};
