//! One broker setting read, and changed for the length of one run: the
//! switch of KIP-890's partition verification,
//! `transaction.partition.verification.enable`, a dynamic broker config.

use std::time::Duration;

use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};

use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};

/// The broker setting behind KIP-890's first part.
pub const VERIFICATION: &str = "transaction.partition.verification.enable";

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(10)))
}

/// The node id of the lowest-numbered broker the cluster names.
pub fn first_broker_id(cluster: &Cluster) -> Result<i32> {
    let admin = cluster.admin()?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .doing("reading the cluster's metadata")?;
    metadata
        .brokers()
        .iter()
        .map(|b| b.id())
        .min()
        .ok_or_else(|| Error::BadConfig("the cluster names no broker".into()))
}

/// The value of broker setting `name` on broker `id`, as the broker reports it.
pub fn broker_setting(cluster: &Cluster, id: i32, name: &str) -> Result<String> {
    let admin = cluster.admin()?;
    let results = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Broker(id)], &options()),
    )
    .doing(format!("describing the configuration of broker {id}"))?;
    let resource = results
        .into_iter()
        .next()
        .ok_or_else(|| Error::BadConfig(format!("broker {id} returned no configuration")))?
        .map_err(|e| {
            Error::BadConfig(format!(
                "describing broker {id}'s configuration failed ({e:?}): is {id} its node id?"
            ))
        })?;
    resource
        .get(name)
        .and_then(|e| e.value.clone())
        .ok_or_else(|| Error::BadConfig(format!("broker {id} does not report {name}")))
}

/// Sets broker `id`'s dynamic setting `name` to `value` (the broker's other
/// dynamic settings are passed along unchanged: the old AlterConfigs call
/// replaces the whole set).
fn set_broker_setting(
    cluster: &Cluster,
    id: i32,
    name: &str,
    value: &str,
) -> Result<()> {
    let admin = cluster.admin()?;
    let id_text = id.to_string();
    let described = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Broker(id)], &options()),
    )
    .doing(format!("describing broker {id}"))?;
    let mut keep: Vec<(String, String)> = Vec::new();
    if let Some(Ok(resource)) = described.into_iter().next() {
        for e in &resource.entries {
            let dynamic =
                matches!(e.source, rdkafka::admin::ConfigSource::DynamicBroker);
            if dynamic && e.name != name && !e.is_sensitive {
                if let Some(v) = &e.value {
                    keep.push((e.name.clone(), v.clone()));
                }
            }
        }
    }
    let mut alter = AlterConfig::new(ResourceSpecifier::Broker(id));
    for (k, v) in &keep {
        alter = alter.set(k, v);
    }
    alter = alter.set(name, value);
    let results = futures_executor::block_on(admin.alter_configs([&alter], &options()))
        .doing(format!("setting {name}={value} on broker {id_text}"))?;
    for r in results {
        r.map_err(|(_, e)| {
            Error::BadConfig(format!("broker {id} refused {name}={value}: {e:?}"))
        })?;
    }
    Ok(())
}

/// A broker setting changed for a while: set back to what it was when this
/// is dropped, even on an error or a panic.
pub struct SettingGuard<'a> {
    cluster: &'a Cluster,
    id: i32,
    name: &'static str,
    before: String,
}

impl<'a> SettingGuard<'a> {
    /// Sets `name` to `value` on broker `id` and waits (up to 10 s) until the
    /// broker reports it.
    pub fn set(
        cluster: &'a Cluster,
        id: i32,
        name: &'static str,
        value: &str,
    ) -> Result<SettingGuard<'a>> {
        let before = broker_setting(cluster, id, name)?;
        set_broker_setting(cluster, id, name, value)?;
        let guard = SettingGuard {
            cluster,
            id,
            name,
            before,
        };
        crate::support::wait_until(
            "broker setting",
            Duration::from_secs(10),
            Duration::from_millis(200),
            || {
                let now = broker_setting(cluster, id, name)?;
                Ok((now != value).then(|| format!("{name} is still {now}")))
            },
        )?;
        Ok(guard)
    }

    /// What the setting was before.
    pub fn before(&self) -> &str {
        &self.before
    }
}

impl Drop for SettingGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) =
            set_broker_setting(self.cluster, self.id, self.name, &self.before)
        {
            eprintln!(
                "could not set {} back to {} on broker {}: {e}; set it by hand",
                self.name, self.before, self.id
            );
        }
    }
}
