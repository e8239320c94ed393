//! Apache Kafka without Docker: fetch the broker's jars from Maven Central (once,
//! cached), format KRaft storage, start one broker or three on loopback, wait
//! until they answer a metadata request, and stop them cleanly.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use lab::local::{alive, cache_dir, LocalBroker, LocalCluster};

use crate::{repo_root, run_quiet};

/// The two local clusters the course uses. They use different ports, so both
/// can run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One broker on 127.0.0.1:9092: every chapter but leader failure.
    Single,
    /// Three brokers on 127.0.0.1:19092-19094, replication factor 3,
    /// min.insync.replicas=2: the leader-failure scenarios.
    Three,
    /// A second cluster like `Three`, on 127.0.0.1:29092-29094: a long run
    /// (the nemesis campaign runs two schedules at once when it is up) or a
    /// second experiment goes on while the first cluster is busy.
    ThreeSpare,
    /// One broker on 127.0.0.1:9192 whose only client listener asks for a
    /// user name and password (SASL/PLAIN): how a team's or a managed cluster
    /// is reached. Its client settings are written to [`secured_client_config`].
    Secured,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Three => "three",
            Layout::ThreeSpare => "three-spare",
            Layout::Secured => "secured",
        }
    }

    /// The `cargo xtask kafka up` flag that starts this layout.
    pub fn flag(self) -> &'static str {
        match self {
            Layout::Single => "",
            Layout::Three => " --three",
            Layout::ThreeSpare => " --three-spare",
            Layout::Secured => " --secured",
        }
    }

    /// (node id, client port, controller port) of each broker.
    pub fn nodes(self) -> Vec<(u32, u16, u16)> {
        match self {
            Layout::Single => vec![(1, 9092, 9093)],
            Layout::Secured => vec![(1, 9192, 9193)],
            Layout::Three => (0..3)
                .map(|i| (i + 1, 19092 + i as u16, 19192 + i as u16))
                .collect(),
            Layout::ThreeSpare => (0..3)
                .map(|i| (i + 1, 29092 + i as u16, 29192 + i as u16))
                .collect(),
        }
    }

    pub fn bootstrap(self) -> String {
        self.nodes()
            .iter()
            .map(|(_, port, _)| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The server.properties of one broker, apart from its data directory. The
/// docker-compose.yml test checks the compose file against these.
pub fn broker_properties(layout: Layout, node_id: u32) -> Vec<(&'static str, String)> {
    let nodes = layout.nodes();
    let (_, port, controller_port) = *nodes
        .iter()
        .find(|(id, _, _)| *id == node_id)
        .expect("node id belongs to the layout");
    let voters = nodes
        .iter()
        .map(|(id, _, c)| format!("{id}@127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let replicas = nodes.len().to_string();
    // A single broker can only keep one copy; three keep three and refuse
    // acks=all writes unless two are in sync.
    let min_isr = if nodes.len() >= 3 { "2" } else { "1" }.to_string();
    let mut properties = vec![
        // KRaft: each process is both a broker and a controller.
        ("process.roles", "broker,controller".into()),
        ("node.id", node_id.to_string()),
        ("controller.quorum.voters", voters),
        (
            "listeners",
            format!(
                "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("controller.listener.names", "CONTROLLER".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        ("default.replication.factor", replicas.clone()),
        ("min.insync.replicas", min_isr.clone()),
        // Consumer offsets and transaction state live in internal topics; with
        // their defaults (3 replicas) a single broker could not run transactions.
        ("offsets.topic.replication.factor", replicas.clone()),
        ("transaction.state.log.replication.factor", replicas),
        ("transaction.state.log.min.isr", min_isr),
        // A new consumer group starts at once instead of waiting 3 s for more members.
        ("group.initial.rebalance.delay.ms", "0".into()),
        // Groups of the consumer protocol (KIP-848) take their session timeout
        // from the broker: 45 s by default, and no group may ask for less than
        // group.consumer.min.session.timeout.ms (45 s; the broker refuses
        // `consumer.session.timeout.ms=6000` on a group). The crash scenarios'
        // classic consumers ask for 6 s; these give consumer-protocol groups
        // the same, so their tests stay short (the heartbeat must be shorter).
        ("group.consumer.session.timeout.ms", "6000".into()),
        ("group.consumer.min.session.timeout.ms", "6000".into()),
        ("group.consumer.heartbeat.interval.ms", "2000".into()),
        ("group.consumer.min.heartbeat.interval.ms", "1000".into()),
        ("auto.create.topics.enable", "false".into()),
    ];
    if layout == Layout::Secured {
        secure(&mut properties, port);
    }
    properties
}

/// The user the secured broker knows besides itself.
pub const SECURED_USER: &str = "learner";

/// Turns the client listener of a one-broker layout into SASL_PLAINTEXT with
/// the PLAIN mechanism; brokers talk to each other on it too. The passwords
/// are read from the cluster's directory at start (written there by `up`).
fn secure(properties: &mut [(&'static str, String)], port: u16) {
    for (key, value) in properties.iter_mut() {
        match *key {
            "listeners" | "advertised.listeners" => {
                *value = value.replace(
                    &format!("PLAINTEXT://127.0.0.1:{port}"),
                    &format!("SASL_PLAINTEXT://127.0.0.1:{port}"),
                )
            }
            "listener.security.protocol.map" => {
                *value = "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT".into()
            }
            "inter.broker.listener.name" => *value = "SASL_PLAINTEXT".into(),
            _ => {}
        }
    }
}

/// The secured broker's settings that hold passwords, added when it starts.
fn sasl_properties(
    broker_password: &str,
    learner_password: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("sasl.enabled.mechanisms", "PLAIN".into()),
        ("sasl.mechanism.inter.broker.protocol", "PLAIN".into()),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            format!(
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"broker\" password=\"{broker_password}\" \
                 user_broker=\"{broker_password}\" user_{SECURED_USER}=\"{learner_password}\";"
            ),
        ),
    ]
}

/// The client-settings file (librdkafka's format) that reaches the secured
/// broker as [`SECURED_USER`]; `up` writes it with a fresh password each time.
pub fn secured_client_config() -> PathBuf {
    cluster_dir(Layout::Secured).join("client.properties")
}

/// The Kafka version pinned in xtask/kafka-pom.xml.
pub fn kafka_version() -> Result<String> {
    let pom = fs::read_to_string(pom_path())?;
    let start = pom
        .find("<kafka.version>")
        .context("no <kafka.version> in kafka-pom.xml")?
        + "<kafka.version>".len();
    let end = pom[start..]
        .find('<')
        .context("unterminated <kafka.version>")?
        + start;
    Ok(pom[start..end].trim().to_string())
}

fn pom_path() -> PathBuf {
    repo_root().join("xtask/kafka-pom.xml")
}

/// Kafka's jars, fetched from Maven Central on first use.
pub fn ensure_jars() -> Result<PathBuf> {
    let version = kafka_version()?;
    let libs = cache_dir().join("kafka").join(&version).join("libs");
    let complete = libs.join(".complete");
    if complete.exists() {
        return Ok(libs);
    }
    which("mvn").context(
        "Maven (mvn) is needed once to fetch Apache Kafka from Maven Central: \
         install it (Debian: apt-get install maven), or use docker compose",
    )?;
    println!(
        "fetching Apache Kafka {version} from Maven Central into {}",
        libs.display()
    );
    let _ = fs::remove_dir_all(&libs);
    run_quiet(
        Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(pom_path())
            .arg("dependency:copy-dependencies")
            .arg(format!("-DoutputDirectory={}", libs.display()))
            .arg("-DincludeScope=runtime"),
        "fetching Kafka with Maven",
    )?;
    fs::write(&complete, &version)?;
    Ok(libs)
}

fn java() -> Result<PathBuf> {
    let java = lab::experiments::bench::java().context("Java 17 or newer is needed to run Apache Kafka: install a JDK, or use docker compose")?;
    let out = Command::new(&java).arg("-version").output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let major: u32 = text
        .split('"')
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 17 {
        bail!(
            "Apache Kafka 4 needs Java 17 or newer; {} reports: {}",
            java.display(),
            text.lines().next().unwrap_or("")
        );
    }
    Ok(java)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn cluster_dir(layout: Layout) -> PathBuf {
    lab::local::run_dir().join(layout.name())
}

/// The recorded cluster of `layout` if all its brokers are still running.
pub fn running(layout: Layout) -> Option<LocalCluster> {
    let bytes = fs::read(LocalCluster::state_file(layout.name())).ok()?;
    let cluster: LocalCluster = serde_json::from_slice(&bytes).ok()?;
    cluster
        .brokers
        .iter()
        .all(|b| alive(b.pid))
        .then_some(cluster)
}

/// Starts `layout` (or finds it already running) and waits until it answers.
pub fn up(layout: Layout) -> Result<LocalCluster> {
    if let Some(cluster) = running(layout) {
        println!(
            "Apache Kafka {} ({}) is already running at {}",
            cluster.kafka_version,
            layout.name(),
            cluster.bootstrap
        );
        return Ok(cluster);
    }
    down(layout)?; // clears what a dead or half-started cluster left behind
    for (_, port, controller) in layout.nodes() {
        for p in [port, controller] {
            if TcpStream::connect(("127.0.0.1", p)).is_ok() {
                bail!(
                    "port {p} on 127.0.0.1 is already in use by a process this course did not start \
                     (another Kafka? `docker compose down`, or stop it). To use that broker instead, \
                     set KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}"
                );
            }
        }
    }
    let started = Instant::now();
    let libs = ensure_jars()?;
    let java = java()?;
    let version = kafka_version()?;
    let dir = cluster_dir(layout);
    fs::create_dir_all(&dir)?;
    let classpath = format!("{}/*", libs.display());
    let log_config = dir.join("log4j2.properties");
    fs::write(&log_config, LOG4J2)?;
    let cluster_id = random_cluster_id();

    let mut brokers = Vec::new();
    for (node_id, port, controller_port) in layout.nodes() {
        let node_dir = dir.join(format!("broker-{node_id}"));
        let data = node_dir.join("data");
        fs::create_dir_all(&data)?;
        let props = node_dir.join("server.properties");
        let mut text = String::new();
        let mut properties = broker_properties(layout, node_id);
        if layout == Layout::Secured {
            let learner_password = format!("pw-{}", random_cluster_id());
            properties.extend(sasl_properties(&random_cluster_id(), &learner_password));
            fs::write(
                secured_client_config(),
                format!(
                    "# How the lab reaches the course's secured broker (cargo xtask kafka up --secured):\n\
                     # KAFKA_CLIENT_CONFIG=this file, KAFKA_BOOTSTRAP_SERVERS={}\n\
                     security.protocol=SASL_PLAINTEXT\n\
                     sasl.mechanism=PLAIN\n\
                     sasl.username={SECURED_USER}\n\
                     sasl.password={learner_password}\n",
                    layout.bootstrap()
                ),
            )?;
        }
        for (k, v) in properties {
            text += &format!("{k}={v}\n");
        }
        text += &format!("log.dirs={}\n", data.display());
        fs::write(&props, text)?;
        run_quiet(
            Command::new(&java)
                .args([
                    "-cp",
                    &classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    &cluster_id,
                    "-c",
                ])
                .arg(&props),
            &format!("formatting the storage of broker {node_id}"),
        )?;
        let command: Vec<String> = [
            java.display().to_string(),
            "-Xms256m".into(),
            "-Xmx768m".into(),
            "-XX:+UseG1GC".into(),
            format!("-Dlog4j2.configurationFile={}", log_config.display()),
            "-cp".into(),
            classpath.clone(),
            "kafka.Kafka".into(),
            props.display().to_string(),
        ]
        .into();
        let log = node_dir.join("broker.log");
        let pid =
            LocalBroker::spawn(&command, &log).context("starting the broker's JVM")?;
        brokers.push(LocalBroker {
            node_id,
            port,
            controller_port,
            pid,
            command,
            log,
        });
    }
    let cluster = LocalCluster {
        name: layout.name().into(),
        bootstrap: layout.bootstrap(),
        kafka_version: version,
        brokers,
    };
    cluster.save()?;
    wait_ready(layout, &cluster)?;
    println!(
        "Apache Kafka {} ({}, {} broker{}) is up at {} after {:.1} s; logs in {}",
        cluster.kafka_version,
        layout.name(),
        cluster.brokers.len(),
        if cluster.brokers.len() == 1 { "" } else { "s" },
        cluster.bootstrap,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    if layout == Layout::Secured {
        println!(
            "it asks for a password: KAFKA_BOOTSTRAP_SERVERS={} KAFKA_CLIENT_CONFIG={}",
            cluster.bootstrap,
            secured_client_config().display()
        );
    }
    Ok(cluster)
}

fn wait_ready(layout: Layout, cluster: &LocalCluster) -> Result<()> {
    let limit = Duration::from_secs(90);
    let deadline = Instant::now() + limit;
    loop {
        for b in &cluster.brokers {
            if !alive(b.pid) {
                let log = cluster_dir(layout)
                    .join(format!("broker-{}/broker.log", b.node_id));
                let tail = tail_of(&log, 15);
                let _ = down(layout);
                bail!(
                    "broker {} exited while starting; the end of {}:\n{tail}",
                    b.node_id,
                    log.display()
                );
            }
        }
        let settings = if layout == Layout::Secured {
            lab::connection::read_file(&secured_client_config())?
        } else {
            Vec::new()
        };
        if let Ok(n) = lab::liveness::answers_with(
            &cluster.bootstrap,
            Duration::from_secs(2),
            &settings,
        ) {
            if n == cluster.brokers.len() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            let _ = down(layout);
            bail!(
                "the {} cluster did not answer within {limit:?}; see the logs under {}",
                layout.name(),
                cluster_dir(layout).display()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn tail_of(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops the brokers of `layout` (SIGTERM, then SIGKILL after 30 s) and removes
/// their data. Does nothing if none is running.
pub fn down(layout: Layout) -> Result<()> {
    let dir = cluster_dir(layout);
    let state = LocalCluster::state_file(layout.name());
    if let Ok(bytes) = fs::read(&state) {
        if let Ok(cluster) = serde_json::from_slice::<LocalCluster>(&bytes) {
            let pids: Vec<u32> = cluster
                .brokers
                .iter()
                .map(|b| b.pid)
                .filter(|&p| alive(p))
                .collect();
            signal("-TERM", &pids);
            let deadline = Instant::now() + Duration::from_secs(30);
            while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let stubborn: Vec<u32> =
                pids.iter().copied().filter(|&p| alive(p)).collect();
            signal("-KILL", &stubborn);
            if !pids.is_empty() {
                println!(
                    "stopped the {} cluster ({} broker process{})",
                    layout.name(),
                    pids.len(),
                    if pids.len() == 1 { "" } else { "es" }
                );
            }
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding,
/// never starting with `-`: the storage tool would read `-t -abc...` as an
/// option and fail ("expected one argument"), one format in 64. (Kafka's own
/// `Uuid.randomUuid` draws again for the same reason.)
fn random_cluster_id() -> String {
    loop {
        let id = random_base64_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn random_base64_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = Vec::with_capacity(16);
    for i in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        bytes.extend_from_slice(&h.finish().to_le_bytes());
    }
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32)
            << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Prints what is running.
pub fn status() -> Result<()> {
    for layout in [
        Layout::Single,
        Layout::Three,
        Layout::ThreeSpare,
        Layout::Secured,
    ] {
        match running(layout) {
            Some(c) => println!(
                "{}: Apache Kafka {} at {} (pids {:?})",
                layout.name(),
                c.kafka_version,
                c.bootstrap,
                c.brokers.iter().map(|b| b.pid).collect::<Vec<_>>()
            ),
            None => println!(
                "{}: not running (start it with `cargo xtask kafka up{}`)",
                layout.name(),
                layout.flag()
            ),
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}

const LOG4J2: &str = "\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_base64_characters() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, random_cluster_id());
    }

    #[test]
    fn no_cluster_id_starts_like_an_option() {
        // One raw id in 64 starts with '-': among 2,000, about 31 would.
        assert!((0..2000).any(|_| random_base64_id().starts_with('-')));
        assert!((0..2000).all(|_| !random_cluster_id().starts_with('-')));
    }

    #[test]
    fn a_three_broker_cluster_replicates_and_needs_two_in_sync() {
        let props: std::collections::HashMap<_, _> =
            broker_properties(Layout::Three, 2).into_iter().collect();
        assert_eq!(props["default.replication.factor"], "3");
        assert_eq!(props["min.insync.replicas"], "2");
        assert_eq!(
            props["controller.quorum.voters"],
            "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
        );
        assert_eq!(props["advertised.listeners"], "PLAINTEXT://127.0.0.1:19093");
    }

    #[test]
    fn a_single_broker_can_run_transactions() {
        let props: std::collections::HashMap<_, _> =
            broker_properties(Layout::Single, 1).into_iter().collect();
        assert_eq!(props["transaction.state.log.replication.factor"], "1");
        assert_eq!(props["transaction.state.log.min.isr"], "1");
        assert_eq!(props["offsets.topic.replication.factor"], "1");
    }

    #[test]
    fn the_pinned_kafka_version_is_4_x() {
        assert!(kafka_version().unwrap().starts_with("4."));
    }

    /// The pom is the one place the version is set; the prose that names a
    /// version (README, the book's own pages, the compose file) must name
    /// that one, so a version move cannot leave a stale "Kafka 4.x.y" behind.
    #[test]
    fn every_page_names_the_pinned_kafka_version() {
        let pinned = kafka_version().unwrap();
        let root = crate::repo_root();
        let mut files = vec![root.join("README.md"), root.join("docker-compose.yml")];
        let mut dirs = vec![root.join("book/src")];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.ends_with("generated") {
                    continue; // recorded pages: checked against their JSON
                } else if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "md") {
                    files.push(path);
                }
            }
        }
        let mut stale = Vec::new();
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            for prefix in ["Apache Kafka ", "KAFKA_VERSION=", "apache/kafka:"] {
                for (at, _) in text.match_indices(prefix) {
                    let rest = &text[at + prefix.len()..];
                    let version: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    let version = version.trim_end_matches('.');
                    // "Apache Kafka 4.0's transactions v2" names a release
                    // on purpose: only full x.y.z versions are pins.
                    if version.split('.').count() == 3 && version != pinned {
                        stale.push(format!("{}: {prefix}{version}", file.display()));
                    }
                }
            }
        }
        assert!(
            stale.is_empty(),
            "pages name a Kafka version other than the pinned {pinned} \
             (xtask/kafka-pom.xml): {stale:#?}"
        );
    }

    /// Every recording the book renders was made on the pinned version: a
    /// version move is done only when every part has been measured anew.
    #[test]
    fn every_recording_was_made_on_the_pinned_kafka_version() {
        let pinned = kafka_version().unwrap();
        let dir = crate::repo_root().join("book/src/generated");
        let mut stale = Vec::new();
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("Apache Kafka ") {
                let version: String = text[at + "Apache Kafka ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                if version.trim_end_matches('.') != pinned {
                    stale.push(format!("{}: Apache Kafka {version}", path.display()));
                    break;
                }
            }
        }
        assert!(
            stale.is_empty(),
            "recorded on another Kafka than the pinned {pinned}: run `cargo xtask regen` \
             for these parts: {stale:#?}"
        );
    }
}
