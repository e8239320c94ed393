//! docker-compose.yml must give a Docker user the brokers the launcher gives
//! everyone else. There is no Docker engine on the course's CI machines, so this
//! test reads the file and compares its settings with `kafka::broker_properties`.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::kafka::{broker_properties, kafka_version, Layout};
    use crate::repo_root;

    /// The settings a learner's results depend on; listeners legitimately differ
    /// (containers talk to each other by name).
    const MUST_MATCH: &[&str] = &[
        "process.roles",
        "node.id",
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "group.initial.rebalance.delay.ms",
        "auto.create.topics.enable",
    ];

    fn compose() -> serde_yaml::Value {
        let text =
            std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
        let mut value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        value.apply_merge().unwrap(); // resolve the `<<: *anchor` merges
        value
    }

    /// KAFKA_FOO_BAR: x  ->  foo.bar = x, as the apache/kafka image maps them.
    fn properties(service: &serde_yaml::Value) -> BTreeMap<String, String> {
        let mut env = service["environment"].clone();
        env.apply_merge().unwrap();
        env.as_mapping()
            .expect("environment is a mapping")
            .iter()
            .filter_map(|(k, v)| {
                let key = k
                    .as_str()?
                    .strip_prefix("KAFKA_")?
                    .to_ascii_lowercase()
                    .replace('_', ".");
                let value = match v {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                };
                Some((key, value))
            })
            .collect()
    }

    fn check(service_name: &str, layout: Layout, node_id: u32, profile: Option<&str>) {
        let compose = compose();
        let service = &compose["services"][service_name];
        assert!(service.is_mapping(), "no service {service_name}");
        let got = properties(service);
        let want: BTreeMap<String, String> = broker_properties(layout, node_id)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for key in MUST_MATCH {
            assert_eq!(got.get(*key), want.get(*key), "{service_name}: {key}");
        }
        // Clients reach the same address either way.
        let plaintext = |listeners: &str| {
            listeners
                .split(',')
                .find(|l| l.starts_with("PLAINTEXT://"))
                .map(str::to_string)
        };
        assert_eq!(
            plaintext(&got["advertised.listeners"]),
            plaintext(&want["advertised.listeners"]),
            "{service_name}: advertised client listener"
        );
        // Ports on loopback only; the image is the launcher's Kafka version.
        let ports = service["ports"].as_sequence().unwrap();
        assert!(!ports.is_empty());
        for p in ports {
            assert!(
                p.as_str().unwrap().starts_with("127.0.0.1:"),
                "{service_name}: {p:?}"
            );
        }
        let image = service["image"].as_str().unwrap();
        assert_eq!(image, format!("apache/kafka:{}", kafka_version().unwrap()));
        // `docker compose up --wait` waits for this.
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{service_name}: no healthcheck"
        );
        let profiles = service["profiles"]
            .as_sequence()
            .map(|p| p.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>());
        assert_eq!(
            profiles,
            profile.map(|p| vec![p]),
            "{service_name}: profiles"
        );
    }

    #[test]
    fn the_default_broker_matches_the_launchers() {
        check("kafka", Layout::Single, 1, None);
    }

    #[test]
    fn the_three_broker_profile_matches_the_launchers() {
        for n in 1..=3 {
            check(&format!("kafka-{n}"), Layout::Three, n, Some("three"));
        }
        let compose = compose();
        let voters = properties(&compose["services"]["kafka-1"])
            ["controller.quorum.voters"]
            .clone();
        assert_eq!(voters.split(',').count(), 3);
    }
}
