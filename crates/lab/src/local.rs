//! Where the course keeps its downloads and what it knows about the Apache Kafka
//! brokers that `cargo xtask kafka up` started on this machine.
//!
//! The xtask writes one `cluster.json` per running local cluster; the lab reads
//! it to name the Kafka version behind a result.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The course's cache: Kafka's jars, the Python venv, notebook build dirs, and
/// the running brokers' data. `KAFKA_COURSE_CACHE` overrides it.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KAFKA_COURSE_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kafka-delivery-course")
}

/// Where the running local clusters keep their state, one folder each.
pub fn run_dir() -> PathBuf {
    cache_dir().join("run")
}

/// A local Apache Kafka cluster started by the xtask.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalCluster {
    /// `single` or `three`.
    pub name: String,
    pub bootstrap: String,
    pub kafka_version: String,
    pub brokers: Vec<LocalBroker>,
}

/// One broker process of a local cluster (combined broker and KRaft controller).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalBroker {
    pub node_id: u32,
    pub port: u16,
    pub controller_port: u16,
    pub pid: u32,
}

impl LocalCluster {
    pub fn state_file(name: &str) -> PathBuf {
        run_dir().join(name).join("cluster.json")
    }

    /// The local clusters whose state files exist (they may have died since).
    pub fn recorded() -> Vec<LocalCluster> {
        let Ok(entries) = std::fs::read_dir(run_dir()) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cluster.json")).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }

    /// The recorded local cluster that serves `bootstrap`, if any.
    pub fn serving(bootstrap: &str) -> Option<LocalCluster> {
        let wanted: Vec<&str> = bootstrap.split(',').map(str::trim).collect();
        Self::recorded()
            .into_iter()
            .find(|c| c.bootstrap.split(',').any(|addr| wanted.contains(&addr)))
    }
}
