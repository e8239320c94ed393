//! Scenario D for exactly-once: scenario C's read-process-write pipeline (a
//! `read_committed` consumer and a transactional producer that sends the
//! consumed offsets with every commit, in a `lab worker` child process) runs
//! on the three-broker cluster while the brokers leading what it depends on
//! are SIGKILLed in turn, each started again before the next dies.
//!
//! The pipeline depends on four kinds of leader: an input partition's (it
//! reads there), an output partition's (it writes there), the group
//! coordinator (the leader of the group's `__consumer_offsets` partition,
//! which stores the offsets a commit carries) and the transaction coordinator
//! (the leader of the `__transaction_state` partition of the producer's
//! `transactional.id`, which decides each commit). Before each kill the run
//! asks the cluster who leads what (metadata for the topics, FindCoordinator
//! for the coordinators) and kills the broker that leads the most kinds not
//! struck yet (the seed breaks ties); it goes on until every kind has been
//! struck, and kills at least two brokers. The first kill comes at a seeded
//! point of the output's growth, the next ones as soon as the broker killed
//! before is back in sync; the processor is slowed down (it pauses inside
//! each open transaction), so that the run lasts through every kill and most
//! kills find a transaction open.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::{Deserialize, Serialize};

use super::{refuse, three_local_brokers, wait_for_brokers, LeaderFailureOptions};
use crate::cluster::Cluster;
use crate::consume::processor_transactional_id;
use crate::error::{Doing, Error, Result};
use crate::faults::crash::protocol::{ConsumeSpec, WorkerSpec};
use crate::faults::crash::{aborted_copies, run_worker, ConsumerStage, CrashOptions};
use crate::local::LocalCluster;
use crate::outcome::{FaultWindow, Outcome};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use crate::support::{wait_until, Seeded};

/// Partitions of the input and of the output topic: one led by each broker.
const PARTITIONS: i32 = 3;

/// Brokers killed per run: at least this many, more until every kind of
/// leader has been struck, never more than [`MAX_KILLS`].
const MIN_KILLS: usize = 2;
const MAX_KILLS: usize = 4;

/// How long the slowed processor takes for the whole input, whatever its
/// size: long enough for a broker to die, be replaced as leader and come
/// back in sync, twice.
const PIPELINE_SECONDS: u64 = 40;

/// The fewest records that make a run: a few transactions between kills.
const MIN_RECORDS: u64 = 200;

/// How often a processor that fails is replaced by a new one (same group,
/// same `transactional.id`) before the run gives up.
const REPLACEMENTS: usize = 2;

/// What the pipeline depends on, by kind.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The leader of a partition of the input topic.
    Input,
    /// The leader of a partition of the output topic.
    Output,
    /// The group coordinator: leader of the group's `__consumer_offsets` partition.
    GroupCoordinator,
    /// The transaction coordinator: leader of the `__transaction_state`
    /// partition of the processor's `transactional.id`.
    TransactionCoordinator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Input,
        Role::Output,
        Role::GroupCoordinator,
        Role::TransactionCoordinator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Input => "input partition",
            Role::Output => "output partition",
            Role::GroupCoordinator => "group coordinator",
            Role::TransactionCoordinator => "transaction coordinator",
        }
    }
}

/// One thing a broker leads: a partition of the input or output topic, or
/// one of the two coordinators.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Led {
    pub role: Role,
    /// The partition, for the input and output topics.
    pub partition: Option<i32>,
}

impl std::fmt::Display for Led {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.partition {
            Some(p) => write!(f, "{} {p}", self.role.name()),
            None => f.write_str(self.role.name()),
        }
    }
}

/// One broker killed during the run, as the cluster described it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    pub broker: u32,
    /// What it led when it was killed (asked of the cluster just before).
    pub led: Vec<Led>,
    /// The output topic's offsets (all partitions) when it was killed.
    pub output_offsets: i64,
    /// Seconds since the pipeline started: the SIGKILL, the moment every
    /// partition and coordinator it led had a new leader, and the moment it
    /// was back in sync after its restart.
    pub killed_at: f64,
    pub taken_over_at: f64,
    pub back_at: f64,
}

impl Kill {
    /// The kinds of leader this kill struck.
    pub fn roles(&self) -> BTreeSet<Role> {
        self.led.iter().map(|l| l.role).collect()
    }
}

/// Scenario D's exactly-once run: the audit, and the kills behind it.
#[derive(Clone, Debug)]
pub struct LeaderFailureRun {
    pub outcome: Outcome,
    pub kills: Vec<Kill>,
    /// The errors after which the processor was replaced by a new one.
    pub processor_failures: Vec<String>,
}

impl LeaderFailureRun {
    /// Every kind of leader some kill struck.
    pub fn struck(&self) -> BTreeSet<Role> {
        struck(&self.kills)
    }
}

fn struck(kills: &[Kill]) -> BTreeSet<Role> {
    kills.iter().flat_map(Kill::roles).collect()
}

/// The names the pipeline runs under (another fault scenario that kills
/// leaders names its own topic, group and `transactional.id` here).
pub(crate) struct Names {
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) group: String,
    pub(crate) transactional_id: String,
}

/// Runs the exactly-once pipeline on the course's three-broker cluster
/// behind `cluster` while leaders die in turn; see the module's
/// documentation. `options.seed` chooses the kill points and, among brokers
/// that lead as much, the one to kill.
pub fn run(
    cluster: &Cluster,
    options: &LeaderFailureOptions,
) -> Result<LeaderFailureRun> {
    let mut local = three_local_brokers(cluster)?;
    check(cluster, options)?;
    let crash = CrashOptions {
        partitions: PARTITIONS,
        ..CrashOptions::new(options.records, options.seed)
    };
    let stage = ConsumerStage::set_up(
        cluster,
        Semantic::ExactlyOnce,
        "leader-failure",
        &crash,
    )?;
    let names = Names {
        input: stage.input.clone(),
        output: stage
            .output
            .clone()
            .expect("exactly-once has an output topic"),
        group: stage.group.clone(),
        transactional_id: processor_transactional_id(&stage.group),
    };
    let spec = WorkerSpec::Consume(ConsumeSpec {
        pause_per_record_us: Some(PIPELINE_SECONDS * 1_000_000 / options.records),
        // Kafka's default session, not the crash scenarios' 6 s: a group
        // coordinator's failover takes longer than 6 s, and a member whose
        // session ran out meanwhile has its transaction's offsets refused.
        consumer_overrides: vec![("session.timeout.ms".into(), "45000".into())],
        ..stage.spec(cluster, Semantic::ExactlyOnce)
    });
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let processor = start_processor(spec, done.clone());
    let kills = strike_in_turn(cluster, &mut local, &names, options, &done, started);
    // The processor ends by itself (or at its worker's time limit) whatever
    // the kills did; every broker killed has been started again by now.
    let (processed, failures) = processor.join().map_err(|_| Error::Process {
        what: "scenario D's processor thread".into(),
        detail: "it panicked".into(),
    })?;
    let kills = kills?;
    processed?;

    let delivered = read_ids(cluster, &names.output, Isolation::ReadCommitted)?;
    let uncommitted = read_ids(cluster, &names.output, Isolation::ReadUncommitted)?;
    let aborted = aborted_copies(&delivered, &uncommitted);
    let mut outcome =
        stage.outcome(cluster, Semantic::ExactlyOnce, &crash, &delivered, &aborted)?;
    // The aborted copies are in the output topic, not the input log.
    outcome.counts.aborted_in_log = aborted.len() as u64;
    outcome.fates.aborted_in_log = aborted.iter().copied().collect();
    outcome.fault = Some(describe(&kills, &failures, options.seed));
    let seconds = kills
        .first()
        .zip(kills.last())
        .map(|(first, last)| [first.killed_at, last.back_at]);
    outcome.window = Some(FaultWindow {
        seconds,
        ..FaultWindow::span(
            "processed while the brokers leading the pipeline died and came back",
            0..options.records,
        )
    });
    Ok(LeaderFailureRun {
        outcome,
        kills,
        processor_failures: failures,
    })
}

/// Refuses what this run cannot do, before anything is created.
fn check(cluster: &Cluster, options: &LeaderFailureOptions) -> Result<()> {
    if !options.overrides.is_empty() {
        return Err(Error::BadConfig(
            "scenario D's exactly-once pipeline runs with exactly-once's own settings: \
             drop the producer settings (acks=1 is a question for at-least-once)"
                .into(),
        ));
    }
    if options.records < MIN_RECORDS {
        return Err(refuse(
            cluster,
            &format!(
                "exactly-once kills leaders at points spread over the run: give it at least \
                 {MIN_RECORDS} records, not {}",
                options.records
            ),
        ));
    }
    Ok(())
}

/// Runs the processor to the end on a thread of its own. A processor that
/// fails is replaced by a new one in the same group with the same
/// `transactional.id` (which fences the old one and aborts what it left
/// open), as a supervisor would, at most [`REPLACEMENTS`] times.
fn start_processor(
    spec: WorkerSpec,
    done: Arc<AtomicBool>,
) -> JoinHandle<(Result<()>, Vec<String>)> {
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        let result = loop {
            match run_worker(&spec) {
                Ok(_) => break Ok(()),
                Err(e) if failures.len() < REPLACEMENTS => failures.push(e.to_string()),
                Err(e) => break Err(e),
            }
        };
        done.store(true, Ordering::SeqCst);
        (result, failures)
    })
}

/// Kills the leaders in turn (see the module's documentation); every broker
/// killed is started again and back in sync before the next dies.
fn strike_in_turn(
    cluster: &Cluster,
    local: &mut LocalCluster,
    names: &Names,
    options: &LeaderFailureOptions,
    done: &AtomicBool,
    started: Instant,
) -> Result<Vec<Kill>> {
    let client: BaseConsumer = cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    let records = options.records;
    let mut rng = Seeded::new(options.seed);
    let mut kills: Vec<Kill> = Vec::new();
    let mut next_at = rng.in_range(records / 10..records / 4) as i64;
    while kills.len() < MIN_KILLS
        || (struck(&kills).len() < Role::ALL.len() && kills.len() < MAX_KILLS)
    {
        let output_offsets = wait_for_output(&client, names, next_at, done)?;
        let snapshot = leaders(cluster, &client, names)?;
        let broker =
            choose_victim(&snapshot, &struck(&kills), &mut rng).ok_or_else(|| {
                refuse(cluster, "no broker leads what the pipeline needs")
            })?;
        let led = snapshot
            .iter()
            .filter(|(_, leader)| *leader == broker as i32)
            .map(|(led, _)| *led)
            .collect();
        let since = |t: Instant| t.duration_since(started).as_secs_f64();
        let killed_at = since(Instant::now());
        let (taken_over, back) =
            kill_and_restart(cluster, local, &client, names, broker)?;
        kills.push(Kill {
            broker,
            led,
            output_offsets,
            killed_at,
            taken_over_at: since(taken_over),
            back_at: since(back),
        });
        // The next broker dies as soon as this one is back in sync.
        next_at = 0;
    }
    Ok(kills)
}

/// A broker this run killed: started again when dropped, whatever happened,
/// so that a failed run never leaves the cluster a broker short.
struct Killed<'a> {
    local: &'a mut LocalCluster,
    node: u32,
}

impl Killed<'_> {
    fn restart(&mut self) -> Result<()> {
        self.local.restart(self.node).map_err(|e| Error::Process {
            what: format!("restarting broker {}", self.node),
            detail: e.to_string(),
        })
    }
}

impl Drop for Killed<'_> {
    fn drop(&mut self) {
        let _ = self.local.restart(self.node);
    }
}

/// SIGKILLs broker `node`, waits until everything it led has a new leader,
/// starts it again and waits until it is back in sync: when the new leaders
/// took over, and when it was back.
pub(crate) fn kill_and_restart(
    cluster: &Cluster,
    local: &mut LocalCluster,
    client: &BaseConsumer,
    names: &Names,
    node: u32,
) -> Result<(Instant, Instant)> {
    let broker = local
        .brokers
        .iter()
        .find(|b| b.node_id == node)
        .cloned()
        .ok_or_else(|| {
            refuse(
                cluster,
                &format!("broker {node} is not one of the local brokers"),
            )
        })?;
    let mut killed = Killed { local, node };
    broker.signal(libc::SIGKILL);
    wait_until(
        "SIGKILL",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            Ok(broker.alive().then(|| {
                format!("broker {node} (pid {}) is still running", broker.pid)
            }))
        },
    )?;
    wait_for_takeover(cluster, client, names, node)?;
    let taken_over = Instant::now();
    killed.restart()?;
    drop(killed);
    wait_for_brokers(cluster, 3)?;
    wait_in_sync(client, names)?;
    Ok((taken_over, Instant::now()))
}

/// Waits until the output topic holds `at_least` offsets (the next kill's
/// point): the number it holds then.
fn wait_for_output(
    client: &BaseConsumer,
    names: &Names,
    at_least: i64,
    done: &AtomicBool,
) -> Result<i64> {
    let mut seen = 0;
    wait_until(
        "the pipeline's progress",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || {
            if done.load(Ordering::SeqCst) {
                return Err(Error::Process {
                    what: "scenario D's exactly-once pipeline".into(),
                    detail: format!(
                        "it ended with {seen} offsets in {}, before the {at_least} at which the \
                         next leader was to die; every kill must come while it runs",
                        names.output
                    ),
                });
            }
            seen = output_now(client, names).unwrap_or(seen);
            Ok((seen < at_least).then(|| {
                format!(
                    "{} holds {seen} offsets, the next kill comes at {at_least}",
                    names.output
                )
            }))
        },
    )?;
    Ok(seen)
}

/// The output topic's offsets, all partitions (None while a leader is away).
fn output_now(client: &BaseConsumer, names: &Names) -> Option<i64> {
    (0..PARTITIONS)
        .map(|p| {
            client
                .fetch_watermarks(&names.output, p, Duration::from_secs(2))
                .ok()
                .map(|(_, high)| high)
        })
        .sum()
}

/// Who leads what the pipeline depends on: each input and output partition
/// (from metadata) and each coordinator (from FindCoordinator), with its
/// leader's node id (-1: none).
fn leaders(
    cluster: &Cluster,
    client: &BaseConsumer,
    names: &Names,
) -> Result<Vec<(Led, i32)>> {
    let mut out = Vec::new();
    for (role, topic) in [(Role::Input, &names.input), (Role::Output, &names.output)] {
        let metadata = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .doing(format!("reading the metadata of {topic}"))?;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let led = Led {
                role,
                partition: Some(p.id()),
            };
            out.push((led, p.leader()));
        }
    }
    for (role, key, key_type) in [
        (Role::GroupCoordinator, &names.group, 0),
        (Role::TransactionCoordinator, &names.transactional_id, 1),
    ] {
        let node = find_coordinator(cluster.bootstrap(), key, key_type)?;
        out.push((
            Led {
                role,
                partition: None,
            },
            node,
        ));
    }
    Ok(out)
}

/// What each broker leads of a pipeline (its topics' partitions and its two
/// coordinators), for another fault scenario (the nemesis).
pub(crate) fn leaders_of(
    cluster: &Cluster,
    client: &BaseConsumer,
    (input, output, group, transactional_id): (&str, &str, &str, &str),
) -> Result<Vec<(Led, i32)>> {
    let names = Names {
        input: input.into(),
        output: output.into(),
        group: group.into(),
        transactional_id: transactional_id.into(),
    };
    leaders(cluster, client, &names)
}

/// The broker to kill next: the one leading the most kinds not struck yet,
/// then the most kinds at all; the seed chooses among equals.
fn choose_victim(
    snapshot: &[(Led, i32)],
    struck: &BTreeSet<Role>,
    rng: &mut Seeded,
) -> Option<u32> {
    let mut roles: BTreeMap<i32, BTreeSet<Role>> = BTreeMap::new();
    for (led, leader) in snapshot.iter().filter(|(_, l)| *l >= 0) {
        roles.entry(*leader).or_default().insert(led.role);
    }
    let score = |r: &BTreeSet<Role>| (r.difference(struck).count(), r.len());
    let best = roles.values().map(score).max()?;
    let equals: Vec<i32> = roles
        .iter()
        .filter(|(_, r)| score(r) == best)
        .map(|(node, _)| *node)
        .collect();
    let pick = rng.in_range(0..equals.len() as u64) as usize;
    Some(equals[pick] as u32)
}

/// Waits until nothing the pipeline depends on is led by `node` (or by nobody).
fn wait_for_takeover(
    cluster: &Cluster,
    client: &BaseConsumer,
    names: &Names,
    node: u32,
) -> Result<()> {
    wait_until(
        "the election of new leaders",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let snapshot = match leaders(cluster, client, names) {
                Ok(s) => s,
                Err(e) => {
                    return Ok(Some(format!("who leads what is not known yet: {e}")))
                }
            };
            let waiting: Vec<String> = snapshot
                .iter()
                .filter(|(_, leader)| *leader == node as i32 || *leader < 0)
                .map(|(led, _)| led.to_string())
                .collect();
            Ok((!waiting.is_empty()).then(|| {
                format!(
                    "killed broker {node} (or nobody) still leads {}",
                    waiting.join(", ")
                )
            }))
        },
    )
}

/// Waits until every partition the pipeline depends on (its topics', and
/// the two internal topics' of its coordinators) has all three replicas in
/// sync again.
fn wait_in_sync(client: &BaseConsumer, names: &Names) -> Result<()> {
    let topics = [
        names.input.as_str(),
        names.output.as_str(),
        "__consumer_offsets",
        "__transaction_state",
    ];
    wait_until(
        "the restarted broker's catching up",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let mut behind = Vec::new();
            for topic in topics {
                let metadata =
                    match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                        Ok(m) => m,
                        Err(e) => {
                            return Ok(Some(format!(
                                "reading the metadata of {topic}: {e}"
                            )))
                        }
                    };
                for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
                    if p.isr().len() < 3 || p.leader() < 0 {
                        behind.push(format!("{topic}/{}", p.id()));
                    }
                }
            }
            Ok((!behind.is_empty()).then(|| {
                format!("fewer than 3 replicas in sync for {}", behind.join(", "))
            }))
        },
    )
}

/// The coordinator of `key` (key type 0: a group; 1: a `transactional.id`),
/// asked of the brokers at `bootstrap` in turn until one names it, for up
/// to 30 s (a coordinator moving to a new leader is "not available" a while).
fn find_coordinator(bootstrap: &str, key: &str, key_type: i8) -> Result<i32> {
    let what = if key_type == 0 {
        "group"
    } else {
        "transactional.id"
    };
    let mut found = None;
    wait_until(
        "coordinator lookup",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let mut why = Vec::new();
            for address in bootstrap.split(',').map(str::trim) {
                match find_coordinator_at(address, key, key_type) {
                    Ok(node) => {
                        found = Some(node);
                        return Ok(None);
                    }
                    Err(e) => why.push(format!("{address}: {e}")),
                }
            }
            Ok(Some(format!(
                "no broker named the coordinator of {what} {key}: {}",
                why.join("; ")
            )))
        },
    )?;
    Ok(found.expect("the wait ends when a broker named one"))
}

/// The FindCoordinator version asked (one key per request, as in v1-v3).
const FIND_COORDINATOR_VERSION: i16 = 3;

/// Asks the broker at `address` for the coordinator of `key` over plain TCP:
/// its node id, or why there is none.
fn find_coordinator_at(address: &str, key: &str, key_type: i8) -> std::io::Result<i32> {
    let other = |e: String| std::io::Error::other(e);
    let version = FIND_COORDINATOR_VERSION;
    let api = ApiKey::FindCoordinator;
    let target = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| other(format!("{address} resolves to nothing")))?;
    let timeout = Duration::from_secs(2);
    let mut socket = TcpStream::connect_timeout(&target, timeout)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("lab-coordinator-lookup"));
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(key.to_string());
    request.key_type = key_type;
    let mut payload = Vec::new();
    header
        .encode(&mut payload, api.request_header_version(version))
        .map_err(|e| other(e.to_string()))?;
    request
        .encode(&mut payload, version)
        .map_err(|e| other(e.to_string()))?;
    socket.write_all(&(payload.len() as i32).to_be_bytes())?;
    socket.write_all(&payload)?;
    let mut size = [0u8; 4];
    socket.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(8..=1 << 20).contains(&size) {
        return Err(other(format!("a {size}-byte answer to FindCoordinator")));
    }
    let mut answer = vec![0u8; size as usize];
    socket.read_exact(&mut answer)?;
    let mut rest = &answer[..];
    ResponseHeader::decode(&mut rest, api.response_header_version(version))
        .map_err(|e| other(e.to_string()))?;
    let response = FindCoordinatorResponse::decode(&mut rest, version)
        .map_err(|e| other(e.to_string()))?;
    match response.error_code {
        0 => Ok(response.node_id.0),
        code => Err(other(format!("error code {code}"))),
    }
}

/// The run's fault, in words: each broker killed, what it led, when it was
/// replaced and back; and any processor that had to be replaced.
fn describe(kills: &[Kill], failures: &[String], seed: u64) -> String {
    let each: Vec<String> = kills
        .iter()
        .map(|k| {
            let led: Vec<String> = k.led.iter().map(Led::to_string).collect();
            format!(
                "broker {} SIGKILLed at {} output offsets, leading {} (new leaders {:.1} s \
                 later, restarted and in sync {:.1} s after the kill)",
                k.broker,
                k.output_offsets,
                led.join(", "),
                k.taken_over_at - k.killed_at,
                k.back_at - k.killed_at
            )
        })
        .collect();
    let mut text = format!(
        "read-process-write pipeline (read_committed consumer, transactional producer \
         sending offsets with each commit) on 3 brokers: {}",
        each.join("; then ")
    );
    if !failures.is_empty() {
        text += &format!(
            "; the processor failed {} time(s) and was replaced (first: {})",
            failures.len(),
            failures[0]
        );
    }
    text + &format!(" (seed {seed})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(role: Role, partition: Option<i32>) -> Led {
        Led { role, partition }
    }

    #[test]
    fn the_victim_leads_the_most_kinds_not_struck_yet() {
        let snapshot = vec![
            (led(Role::Input, Some(0)), 1),
            (led(Role::Input, Some(1)), 2),
            (led(Role::Output, Some(0)), 2),
            (led(Role::GroupCoordinator, None), 3),
            (led(Role::TransactionCoordinator, None), 3),
            (led(Role::Output, Some(1)), -1),
        ];
        let none = BTreeSet::new();
        // Broker 2 and 3 lead two kinds each; the seed chooses between them.
        let picks: BTreeSet<u32> = (1..20)
            .filter_map(|seed| choose_victim(&snapshot, &none, &mut Seeded::new(seed)))
            .collect();
        assert_eq!(picks, [2, 3].into());
        // With the coordinators struck, only broker 2 leads something new.
        let coordinators =
            [Role::GroupCoordinator, Role::TransactionCoordinator].into();
        for seed in 1..10 {
            assert_eq!(
                choose_victim(&snapshot, &coordinators, &mut Seeded::new(seed)),
                Some(2)
            );
        }
        assert_eq!(choose_victim(&[], &none, &mut Seeded::new(1)), None);
    }

    #[test]
    fn a_kill_is_told_with_what_its_broker_led() {
        let kill = Kill {
            broker: 2,
            led: vec![
                led(Role::Input, Some(1)),
                led(Role::TransactionCoordinator, None),
            ],
            output_offsets: 502,
            killed_at: 3.0,
            taken_over_at: 12.5,
            back_at: 20.0,
        };
        assert_eq!(
            kill.roles(),
            [Role::Input, Role::TransactionCoordinator].into()
        );
        let text = describe(&[kill], &[], 7);
        assert!(
            text.contains("broker 2 SIGKILLed at 502 output offsets, leading input partition 1, transaction coordinator"),
            "{text}"
        );
        assert!(
            text.contains("new leaders 9.5 s later") && text.ends_with("(seed 7)"),
            "{text}"
        );
    }
}
