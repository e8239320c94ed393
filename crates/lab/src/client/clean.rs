//! What the lab leaves on a broker, and removing it. Every run creates fresh
//! topics and consumer groups (named by [`Cluster::fresh_name`]) and keeps
//! them, so that a learner can look inside afterwards; `lab clean` removes
//! them, and nothing else.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::cluster::Cluster;
use crate::error::{Doing, Result};

/// The lab's topics and consumer groups on a cluster, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub topics: Vec<String>,
    pub groups: Vec<String>,
}

/// What every topic and group name the lab makes starts with.
pub const PREFIX: &str = "lab-";

/// Whether `name` is one [`Cluster::fresh_name`] made:
/// `lab-<what>-<milliseconds since 1970>-<process id>-<counter>`.
pub fn is_lab_name(name: &str) -> bool {
    if !name.starts_with(PREFIX) {
        return false;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = name.rsplitn(4, '-');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(pid), Some(millis), Some(prefix)) => {
            !prefix.is_empty()
                && digits(n)
                && digits(pid)
                && millis.len() == 13
                && digits(millis)
        }
        _ => false,
    }
}

/// The lab's topics and groups on `cluster`: what [`clean`] would remove.
pub fn leftovers(cluster: &Cluster) -> Result<Leftovers> {
    let consumer: BaseConsumer = cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .doing("listing the topics")?;
    let mut topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|t| is_lab_name(t))
        .collect();
    let groups = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .doing("listing the consumer groups")?;
    let mut groups: Vec<String> = groups
        .groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|g| is_lab_name(g))
        .collect();
    topics.sort();
    groups.sort();
    Ok(Leftovers { topics, groups })
}

/// Removes the lab's topics and consumer groups from `cluster`, and returns
/// what it removed. A group that still has a member is left (Kafka refuses to
/// delete it) and not listed.
pub fn clean(cluster: &Cluster) -> Result<Leftovers> {
    remove(cluster, &leftovers(cluster)?)
}

/// Removes these topics and groups (one run's, or all the lab's), and
/// returns what it removed.
pub fn remove(cluster: &Cluster, found: &Leftovers) -> Result<Leftovers> {
    let admin: AdminClient<DefaultClientContext> = cluster
        .client_config()
        .create()
        .doing("creating an admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut removed = Leftovers::default();
    if !found.topics.is_empty() {
        removed.topics = cluster.delete_topics(&names(&found.topics))?;
    }
    if !found.groups.is_empty() {
        let results = futures_executor::block_on(
            admin.delete_groups(&names(&found.groups), &options),
        )
        .doing("deleting the lab's consumer groups")?;
        removed.groups = results.into_iter().filter_map(|r| r.ok()).collect();
    }
    removed.topics.sort();
    removed.groups.sort();
    Ok(removed)
}

fn names(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_the_lab_made_are_the_labs() {
        let cluster = Cluster::mock().unwrap();
        for prefix in ["at-least-once-happy-path-in", "bench-acks-all", "audit"] {
            let name = cluster.fresh_name(prefix);
            assert!(is_lab_name(&name), "{name}");
        }
        for name in [
            "orders",
            "orders-2024-01-01",
            "__consumer_offsets",
            "__transaction_state",
            "my-app-1796200282821",
            "x-179620028282-1-0",
            "-1796200282821-1-0",
            "x-1796200282821-1-",
            // Shaped like the lab's, but someone else's: no `lab-` prefix.
            "orders-1796200282821-1-0",
        ] {
            assert!(!is_lab_name(name), "{name}");
        }
    }
}
