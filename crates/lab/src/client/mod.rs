//! The client layer: the settings of each semantic, where Kafka is, and the
//! producer and consumer loops built on them. Everything here talks to a
//! broker through rdkafka; nothing here knows of faults, audits or charts.

pub mod broker_version;
pub mod clean;
pub mod cluster;
pub mod connection;
pub mod consume;
pub mod effective;
pub mod group_protocol;
pub mod liveness;
pub mod offset_store;
pub mod produce;
pub mod read;
pub mod recovery;
pub mod semantics;
pub mod stats;
