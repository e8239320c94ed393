//! Where Kafka is: a real cluster by bootstrap address (the course's local
//! Apache Kafka, docker compose, or any broker), or librdkafka's in-process mock
//! cluster when explicitly asked for.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Doing, Error, Result};
use crate::liveness::{self, BrokerWatch};
use crate::local::LocalCluster;
use crate::semantics::Semantic;
use crate::support::wait_until;

/// The address the course's single local broker listens on.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// How long `Cluster::connect` waits for a broker to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// Which kind of cluster produced a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// A real Apache Kafka cluster: the reference for every claim.
    Kafka,
    /// librdkafka's in-process mock cluster: fast, but not Kafka (see `why_not_on_mock`).
    Mock,
}

/// A connection target plus what is known about it.
pub struct Cluster {
    bootstrap: String,
    backend: Backend,
    kafka_version: String,
    broker_count: usize,
    // Keeps the mock cluster alive as long as this value.
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl Cluster {
    /// The cluster named by `KAFKA_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092),
    /// or the mock cluster if `LAB_BACKEND=mock`.
    pub fn from_env() -> Result<Cluster> {
        if std::env::var("LAB_BACKEND")
            .map(|b| b == "mock")
            .unwrap_or(false)
        {
            return Cluster::mock();
        }
        let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
        Cluster::connect(&bootstrap)
    }

    /// Connects to a real Kafka cluster and checks that it answers a metadata
    /// request within `CONNECT_TIMEOUT`.
    pub fn connect(bootstrap: &str) -> Result<Cluster> {
        crate::connection::settings()?; // a bad client-settings file, said first
        let broker_count = probe(bootstrap, CONNECT_TIMEOUT)?;
        let local = LocalCluster::serving(bootstrap);
        let kafka_version = version_of(bootstrap, local.as_ref());
        // Of a local cluster, name every broker: clients then still find the
        // cluster when the one they were given is the one a scenario killed.
        let bootstrap = local.map_or_else(|| bootstrap.to_string(), |c| c.bootstrap);
        Ok(Cluster {
            bootstrap,
            backend: Backend::Kafka,
            kafka_version,
            broker_count,
            _mock: None,
        })
    }

    /// An in-process librdkafka mock cluster with one broker. Not Apache Kafka:
    /// use it for quick starts and fast tests of at-most-once and at-least-once.
    pub fn mock() -> Result<Cluster> {
        let mock = MockCluster::new(1).doing("starting librdkafka's mock cluster")?;
        Ok(Cluster {
            bootstrap: mock.bootstrap_servers(),
            backend: Backend::Mock,
            kafka_version: "none (librdkafka mock cluster)".to_string(),
            broker_count: 1,
            _mock: Some(mock),
        })
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn kafka_version(&self) -> &str {
        &self.kafka_version
    }

    pub fn broker_count(&self) -> usize {
        self.broker_count
    }

    /// One line naming what produced a result, e.g.
    /// `Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092`.
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Kafka => format!(
                "Apache Kafka {}, {} broker{} at {}",
                self.kafka_version,
                self.broker_count,
                if self.broker_count == 1 { "" } else { "s" },
                self.bootstrap
            ),
            Backend::Mock => format!(
                "librdkafka {} mock cluster (not Apache Kafka)",
                librdkafka_version()
            ),
        }
    }

    /// Refuses what this backend cannot show faithfully, with the reason.
    pub fn require_faithful(&self, semantic: Semantic) -> Result<()> {
        if self.backend == Backend::Mock && semantic == Semantic::ExactlyOnce {
            return Err(Error::Unsupported {
                what: "exactly-once".into(),
                backend: self.describe(),
                why: why_not_on_mock().into(),
            });
        }
        Ok(())
    }

    /// Refuses, on the mock cluster, a workload its bounded log cannot keep:
    /// `records` of `record_bytes` each (value and key; the batch overhead
    /// comes on top), spread over `partitions` partitions of one topic. The
    /// busiest partition holds at least the average, so a workload whose
    /// average already passes [`MOCK_PARTITION_BYTES`] would certainly lose
    /// its oldest records to the mock, not to the semantic. Kafka keeps what
    /// its retention says (a week by default): nothing to check there.
    pub fn check_fits(
        &self,
        what: &str,
        records: u64,
        partitions: i32,
        record_bytes: u64,
    ) -> Result<()> {
        if self.backend != Backend::Mock {
            return Ok(());
        }
        // A record in a batch takes at least 7 bytes of framing (length,
        // attributes, timestamp and offset deltas, key and value lengths,
        // header count); about 15 in practice, and keys do not spread evenly
        // over the partitions: the advice leaves room for both.
        let partitions = partitions.max(1) as u64;
        let per_partition = records.div_ceil(partitions);
        let bytes = per_partition.saturating_mul(record_bytes + 7);
        if bytes <= MOCK_PARTITION_BYTES {
            return Ok(());
        }
        let fits = MOCK_PARTITION_BYTES / (record_bytes + 20) * partitions * 9 / 10;
        Err(Error::Unsupported {
            what: format!("{what} with {records} records"),
            backend: self.describe(),
            why: format!(
                "the mock keeps only about {} MB of records per partition and drops the oldest \
                 beyond that, and {records} records of at least {record_bytes} B over \
                 {partitions} partition(s) are more than {} MB per partition: the audit would count the records the mock \
                 threw away as lost. Send at most about {fits} records, spread them over more \
                 partitions, or use Apache Kafka (`cargo xtask kafka up`)",
                MOCK_PARTITION_BYTES / (1024 * 1024),
                bytes / (1024 * 1024),
            ),
        })
    }

    /// Fails, on the mock cluster, if its bounded log dropped the start of
    /// `topic` (a partition's first offset is no longer 0): what the mock
    /// threw away must never be counted as lost. The check that matters,
    /// since [`Cluster::check_fits`] can only refuse what certainly overflows.
    pub(crate) fn check_kept_everything(&self, topic: &str) -> Result<()> {
        if self.backend != Backend::Mock {
            return Ok(());
        }
        let consumer = self.metadata_client()?;
        let doing = format!("reading the watermarks of {topic}");
        let mut watch = self.watch(&doing);
        let mut dropped = Vec::new();
        for p in 0..self.partition_count(topic)? as i32 {
            let (low, _) = watch.patiently(&doing, Duration::from_secs(5), |t| {
                consumer.fetch_watermarks(topic, p, t)
            })?;
            if low > 0 {
                dropped.push(format!("offsets 0 to {} of partition {p}", low - 1));
            }
        }
        if dropped.is_empty() {
            return Ok(());
        }
        Err(Error::Unsupported {
            what: format!("counting what {topic} holds"),
            backend: self.describe(),
            why: format!(
                "the mock keeps only about {} MB of records per partition, and it dropped {}: \
                 those records were not lost by the semantic, the mock threw them away, so the \
                 audit refuses to count. Send fewer records, spread them over more partitions, \
                 or use Apache Kafka (`cargo xtask kafka up`)",
                MOCK_PARTITION_BYTES / (1024 * 1024),
                dropped.join(", ")
            ),
        })
    }

    /// A name no earlier run used: `prefix-<time>-<pid>-<n>`. Every run gets a
    /// fresh topic and group, so re-running a notebook cell never sees old data.
    pub fn fresh_name(&self, prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // `lab-` first: on a shared cluster the lab's names are told apart
        // from everyone else's, and `lab clean` removes only these.
        format!(
            "{}{prefix}-{millis}-{}-{n}",
            crate::clean::PREFIX,
            std::process::id()
        )
    }

    /// A watch on this cluster's brokers while the lab is `doing` something:
    /// see [`crate::liveness`].
    pub fn watch(&self, doing: impl Into<String>) -> BrokerWatch {
        BrokerWatch::new(&self.bootstrap, doing)
    }

    /// Creates `topic` with `partitions` partitions, replicated on up to three
    /// brokers, and waits until every partition has a leader.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(topic, partitions, &[])
    }

    /// [`Cluster::create_topic`] with topic configs, e.g.
    /// `("max.message.bytes", "100000")`. The mock cluster takes none.
    pub fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        if let Some(mock) = &self._mock {
            if !configs.is_empty() {
                return Err(Error::Unsupported {
                    what: format!("topic configs {configs:?}"),
                    backend: "librdkafka's mock cluster".into(),
                    why: "librdkafka's mock cluster creates topics without configs"
                        .into(),
                });
            }
            // The mock cluster does not answer CreateTopics; it has its own call.
            return mock
                .create_topic(topic, partitions, 1)
                .doing(format!("creating topic {topic} on the mock cluster"));
        }
        let admin = self.admin()?;
        let replication = self.broker_count.clamp(1, 3) as i32;
        let name = topic.to_string();
        let configs: Vec<(String, String)> = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let results = self
            .watch(format!("creating topic {topic}"))
            .wait_on_thread(move || {
                let mut new_topic = NewTopic::new(
                    &name,
                    partitions,
                    TopicReplication::Fixed(replication),
                );
                for (key, value) in &configs {
                    new_topic = new_topic.set(key, value);
                }
                futures_executor::block_on(
                    admin.create_topics([&new_topic], &admin_options()),
                )
            })?
            .doing(format!("creating topic {topic}"))?;
        for result in results {
            result.map_err(|(name, code)| Error::Kafka {
                doing: format!("creating topic {name}"),
                source: rdkafka::error::KafkaError::AdminOp(code),
            })?;
        }
        self.wait_for_leaders(topic, partitions as usize)
    }

    /// Deletes `topics` and returns the names the broker deleted (one it
    /// refused is left out). Deletion finishes on the broker a moment later.
    pub fn delete_topics(&self, topics: &[&str]) -> Result<Vec<String>> {
        let admin = self.admin()?;
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let results = self
            .watch("deleting topics")
            .wait_on_thread(move || {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                futures_executor::block_on(
                    admin.delete_topics(&names, &admin_options()),
                )
            })?
            .doing("deleting topics")?;
        Ok(results.into_iter().filter_map(|r| r.ok()).collect())
    }

    /// An admin client of this cluster.
    pub(crate) fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.client_config()
            .create()
            .doing("creating an admin client")
    }

    /// A client that asks for metadata and watermarks.
    fn metadata_client(&self) -> Result<BaseConsumer> {
        self.client_config()
            .create()
            .doing("creating a metadata client")
    }

    fn wait_for_leaders(&self, topic: &str, partitions: usize) -> Result<()> {
        let consumer = self.metadata_client()?;
        let doing = format!("reading metadata of {topic}");
        let mut watch = self.watch(&doing);
        wait_until(
            "topic creation",
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                let metadata =
                    watch.patiently(&doing, Duration::from_secs(15), |t| {
                        consumer.fetch_metadata(Some(topic), t)
                    })?;
                let ready = metadata.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() == partitions
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if !ready {
                    return Ok(Some(format!(
                        "{topic} has no leader for every partition yet"
                    )));
                }
                // The metadata names a leader a moment before that broker
                // serves the partition. An acks=0 Produce in that moment is
                // refused with no answer (the broker closes the connection),
                // and a whole batch is silently lost: wait until every
                // partition's leader answers for it.
                let serving = (0..partitions as i32).all(|p| {
                    consumer
                        .fetch_watermarks(topic, p, Duration::from_secs(5))
                        .is_ok()
                });
                Ok((!serving)
                    .then(|| format!("the leaders of {topic} do not serve it yet")))
            },
        )
    }

    /// Waits until the high watermarks of `topic` add up to at least `records`
    /// offsets (or `limit` passes: then it returns, since records may really
    /// be missing). Consumers read only up to the high watermark.
    pub fn wait_for_records(
        &self,
        topic: &str,
        records: u64,
        limit: Duration,
    ) -> Result<()> {
        let consumer = self.metadata_client()?;
        let partitions = self.partition_count(topic)? as i32;
        let deadline = std::time::Instant::now() + limit;
        let mut watch = self.watch(format!("waiting for the records of {topic}"));
        loop {
            let mut total = 0u64;
            for p in 0..partitions {
                match consumer.fetch_watermarks(topic, p, liveness::SLICE) {
                    Ok((low, high)) => {
                        watch.heard();
                        total += (high - low).max(0) as u64;
                    }
                    Err(_) => watch.check()?,
                }
            }
            if total >= records || std::time::Instant::now() > deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of each partition of `topic` (its high watermark): the offset
    /// the next record will get. Transaction markers take offsets too, so a
    /// transactional topic ends past the number of records it holds.
    pub fn end_offsets(&self, topic: &str) -> Result<Vec<i64>> {
        let consumer = self.metadata_client()?;
        let mut watch = self.watch(format!("reading the end of {topic}"));
        (0..self.partition_count(topic)? as i32)
            .map(|p| {
                watch
                    .patiently(
                        &format!("reading the end of {topic} partition {p}"),
                        Duration::from_secs(10),
                        |t| consumer.fetch_watermarks(topic, p, t),
                    )
                    .map(|(_, high)| high)
            })
            .collect()
    }

    /// The number of partitions of `topic`.
    pub fn partition_count(&self, topic: &str) -> Result<usize> {
        let consumer = self.metadata_client()?;
        let doing = format!("reading metadata of {topic}");
        let metadata =
            self.watch(&doing)
                .patiently(&doing, Duration::from_secs(10), |t| {
                    consumer.fetch_metadata(Some(topic), t)
                })?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0))
    }

    /// A broker's setting `name`, as the first broker of the metadata
    /// reports it (its own value or Kafka's default); None if it has none.
    pub fn broker_config(&self, name: &str) -> Result<Option<String>> {
        let consumer = self.metadata_client()?;
        let doing = format!("reading the broker setting {name}");
        let metadata =
            self.watch(&doing)
                .patiently(&doing, Duration::from_secs(10), |t| {
                    consumer.fetch_metadata(None, t)
                })?;
        let Some(broker) = metadata.brokers().first().map(|b| b.id()) else {
            return Ok(None);
        };
        let admin = self.admin()?;
        let results = self
            .watch(&doing)
            .wait_on_thread(move || {
                futures_executor::block_on(admin.describe_configs(
                    [&rdkafka::admin::ResourceSpecifier::Broker(broker)],
                    &admin_options(),
                ))
            })?
            .doing(&doing)?;
        let value = results
            .into_iter()
            .filter_map(|r| r.ok())
            .find_map(|r| r.get(name).and_then(|e| e.value.clone()));
        Ok(value)
    }

    /// A client configuration with just the bootstrap address.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        crate::connection::apply(&mut config);
        config
    }
}

/// The options of the lab's admin requests: the broker may take up to 10 s.
fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// What librdkafka's mock cluster keeps of a partition: beyond 5 MB of record
/// batches (or 100,000 batches) it drops its oldest batches, and the
/// partition's first offset moves on (`max_size` and `max_cnt` in its
/// `rdkafka_mock.c`). At 100-byte values that is about 45,000 records.
pub const MOCK_PARTITION_BYTES: u64 = 5 * 1024 * 1024;

/// Why the mock cluster cannot stand in for Kafka where exactly-once is concerned.
pub fn why_not_on_mock() -> &'static str {
    "librdkafka's mock cluster does not filter aborted transactions (read_committed \
     readers see them), never stores offsets sent in a transaction, does not \
     de-duplicate an idempotent producer without a transactional.id, and does not \
     replicate. Run it on Apache Kafka: `cargo xtask kafka up`, then use the default \
     bootstrap address or set KAFKA_BOOTSTRAP_SERVERS."
}

/// The Kafka version a cluster runs: what the course's own launcher recorded
/// (exact), else what the broker's `ApiVersions` answer says (the minor
/// release, e.g. `4.4.x`), else `KAFKA_VERSION` as stated, else "unknown
/// version". A `KAFKA_VERSION` that disagrees with the broker is reported
/// on stderr and not used.
fn version_of(bootstrap: &str, local: Option<&LocalCluster>) -> String {
    let stated = std::env::var("KAFKA_VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let warn = |read: &str| {
        eprintln!(
            "warning: KAFKA_VERSION says {} but the broker at {bootstrap} runs Apache Kafka \
             {read}; the lab reports {read} (unset KAFKA_VERSION, or correct it)",
            stated.as_deref().unwrap_or_default()
        )
    };
    if let Some(local) = local {
        if stated.as_ref().is_some_and(|s| *s != local.kafka_version) {
            warn(&local.kafka_version);
        }
        return local.kafka_version.clone();
    }
    match crate::broker_version::probe(bootstrap, Duration::from_secs(3)) {
        Some(release) => {
            if let Some(s) = &stated {
                if crate::broker_version::agrees(s, &release) {
                    return s.clone(); // the patch release the broker cannot tell
                }
                warn(&release.label());
            }
            release.label()
        }
        None => stated.unwrap_or_else(|| "unknown version".to_string()),
    }
}

/// The bundled librdkafka's version, e.g. `2.12.1`.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// Asks `bootstrap` for cluster metadata; returns the number of brokers.
pub fn probe(bootstrap: &str, timeout: Duration) -> Result<usize> {
    crate::liveness::answers(bootstrap, timeout).map_err(|cause| {
        if cause.contains("not available at build time") {
            // The bundled librdkafka is built without OpenSSL (the rdkafka
            // crate's default): no TLS listener can be reached.
            Error::BadConfig(format!(
                "the client settings ask for TLS, but the lab's librdkafka was built without \
                 OpenSSL and cannot speak it ({cause}). Reach the cluster through a listener \
                 without TLS (SASL_PLAINTEXT or PLAINTEXT), or build the lab with rdkafka's \
                 `ssl-vendored` feature"
            ))
        } else if cause.contains("uthentication") {
            Error::AuthenticationFailed {
                user: crate::connection::sasl_user()
                    .unwrap_or_else(|| "(none set)".into()),
                bootstrap: bootstrap.to_string(),
                cause: crate::connection::redact(&cause),
            }
        } else if crate::broker_version::probe(bootstrap, Duration::from_secs(2))
            .is_some()
        {
            Error::NotLetIn {
                bootstrap: bootstrap.to_string(),
                cause,
            }
        } else {
            Error::NoBroker {
                bootstrap: bootstrap.to_string(),
                waited: timeout,
                doing: "connecting".into(),
                cause,
            }
        }
    })
}
