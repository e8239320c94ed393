//! One schedule, run: the three-broker cluster, a chaos proxy in front of it
//! for the processors, the exactly-once pipeline under the schedule's faults
//! and then the at-least-once one under the same faults, each judged by the
//! checker from what was read back.

use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use serde::{Deserialize, Serialize};

use super::executor::{self, execute, Executed, Rig};
use super::plan::plan;
use super::schedule::{FaultKind, Schedule, ScheduleOptions};
use crate::audit::checker::{
    self, recorder, FaultStep, History, Mark, Position, Verdict,
};
use crate::audit::dump_log;
use crate::cluster::Cluster;
use crate::consume::processor_transactional_id;
use crate::error::{Doing, Error, Result};
use crate::faults::crash::{ConsumerStage, CrashOptions};
use crate::faults::leader::three_local_brokers;
use crate::faults::proxy::ChaosProxy;
use crate::local::LocalCluster;
use crate::semantics::Semantic;

/// Partitions of the input and of the output topic.
pub const PARTITIONS: i32 = 3;

/// A nemesis run's workload and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NemesisOptions {
    pub seed: u64,
    pub records: u64,
    /// Steps of the schedule, and at most how many faults strike together.
    pub steps: u64,
    pub most_at_once: u64,
    /// How long the processor takes for the whole input with no fault
    /// (it is slowed down so that the faults strike while it runs).
    pub pipeline_seconds: u64,
    /// The kinds the schedule draws from.
    pub kinds: Vec<FaultKind>,
    /// Also run at-least-once under the same schedule.
    pub at_least_once: bool,
}

impl Default for NemesisOptions {
    fn default() -> NemesisOptions {
        NemesisOptions {
            seed: 1,
            records: 20_000,
            steps: 6,
            most_at_once: 3,
            pipeline_seconds: 60,
            kinds: FaultKind::ALL.to_vec(),
            at_least_once: true,
        }
    }
}

impl NemesisOptions {
    /// The schedule these options and `seed` give.
    pub fn schedule(&self) -> Result<Schedule> {
        Schedule::generate_with(
            self.seed,
            ScheduleOptions {
                records: self.records,
                steps: self.steps,
                most_at_once: self.most_at_once,
            },
            &self.kinds,
        )
    }

    fn check(&self) -> Result<()> {
        if self.records < 1_000 {
            return Err(Error::BadConfig(format!(
                "a nemesis run strikes while a slowed pipeline runs: give it at least 1000 \
                 records, not {}",
                self.records
            )));
        }
        if self.pipeline_seconds == 0 {
            return Err(Error::BadConfig(
                "pipeline_seconds must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One pipeline (one semantic) under the schedule: what was injected and
/// the checker's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineRun {
    pub semantic: Semantic,
    pub input: String,
    pub output: String,
    pub group: String,
    pub executed: Executed,
    /// Where the aborted output positions came from.
    pub aborted_from: String,
    /// `DumpLogSegments`'s recount of the output (committed, aborted
    /// records), to set beside the checker's.
    #[serde(default)]
    pub dump_log: Option<(u64, u64)>,
    pub verdict: Verdict,
    pub seconds: f64,
    /// Where the checker's clock starts (the first input record, written
    /// before the pipeline started), in milliseconds after the pipeline's
    /// start: the verdict's times plus this are on the pipeline's clock.
    /// `None` in runs recorded before it was.
    #[serde(default)]
    pub checker_clock_ms: Option<i64>,
}

impl PipelineRun {
    /// Processors that committed nothing with no fault in force, replaced.
    pub fn hung(&self) -> usize {
        self.executed.replacements.iter().filter(|r| r.hung).count()
    }
}

/// One schedule, run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NemesisRun {
    pub seed: u64,
    pub options: NemesisOptions,
    pub schedule: Schedule,
    /// Kinds left out of the schedule, and why.
    pub skipped_kinds: Vec<(FaultKind, String)>,
    pub exactly_once: PipelineRun,
    pub at_least_once: Option<PipelineRun>,
    pub seconds: f64,
}

impl NemesisRun {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a nemesis run serializes")
    }
}

/// Runs one schedule (`options.seed`) on the course's three-broker cluster
/// behind `cluster`.
pub fn run(cluster: &Cluster, options: &NemesisOptions) -> Result<NemesisRun> {
    options.check()?;
    let started = Instant::now();
    let mut local = three_local_brokers(cluster).map_err(|e| match e {
        Error::Unsupported { backend, why, .. } => Error::Unsupported {
            what: "the nemesis".into(),
            backend,
            why,
        },
        other => other,
    })?;
    let schedule = options.schedule()?;
    let brokers: Vec<u32> = local.brokers.iter().map(|b| b.node_id).collect();
    let actions = plan(&schedule, &brokers, PARTITIONS);
    let proxy = ChaosProxy::start(cluster.bootstrap())?;
    let through = proxy_bootstrap(&proxy)?;
    let exactly_once = pipeline(
        cluster,
        &mut local,
        (&proxy, &through),
        Semantic::ExactlyOnce,
        options,
        &actions,
    )?;
    let at_least_once = match options.at_least_once {
        true => Some(pipeline(
            cluster,
            &mut local,
            (&proxy, &through),
            Semantic::AtLeastOnce,
            options,
            &actions,
        )?),
        false => None,
    };
    proxy.stop();
    let skipped_kinds = FaultKind::ALL
        .into_iter()
        .filter(|k| !options.kinds.contains(k))
        .map(|k| (k, "left out by the options".to_string()))
        .collect();
    Ok(NemesisRun {
        seed: options.seed,
        options: options.clone(),
        schedule,
        skipped_kinds,
        exactly_once,
        at_least_once,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The proxy's listeners for all three brokers, as a bootstrap list: a
/// processor started while one broker is down still finds the others.
fn proxy_bootstrap(proxy: &ChaosProxy) -> Result<String> {
    let via = Cluster::connect(&proxy.bootstrap())?;
    let client: BaseConsumer = via
        .client_config()
        .create()
        .doing("creating a metadata client through the chaos proxy")?;
    rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(10))
        .doing("reading the cluster's metadata through the chaos proxy")?;
    drop(client);
    let routes: Vec<String> =
        proxy.routes().iter().map(|r| r.local.to_string()).collect();
    Ok(routes.join(","))
}

/// Runs `count` schedules, seeds `options.seed`, `options.seed + 1`, ...;
/// `each` hears of every run as it ends.
pub fn run_schedules(
    cluster: &Cluster,
    options: &NemesisOptions,
    count: u64,
    each: &mut dyn FnMut(&NemesisRun),
) -> Result<Vec<NemesisRun>> {
    let mut runs = Vec::new();
    for i in 0..count {
        let one = NemesisOptions {
            seed: options.seed + i,
            ..options.clone()
        };
        let run = run(cluster, &one)?;
        each(&run);
        runs.push(run);
    }
    Ok(runs)
}

/// One pipeline of `semantic`: set up, run under the actions, recorded, judged.
fn pipeline(
    cluster: &Cluster,
    local: &mut LocalCluster,
    (proxy, through): (&ChaosProxy, &str),
    semantic: Semantic,
    options: &NemesisOptions,
    actions: &[super::plan::Action],
) -> Result<PipelineRun> {
    let started = Instant::now();
    let crash = CrashOptions {
        partitions: PARTITIONS,
        ..CrashOptions::new(options.records, options.seed)
    };
    let what = match semantic {
        Semantic::ExactlyOnce => "nemesis",
        _ => "nemesis-alo",
    };
    let stage = ConsumerStage::set_up(cluster, semantic, what, &crash)?;
    let output = match &stage.output {
        Some(o) => o.clone(),
        None => {
            let name = cluster.fresh_name(&format!("{semantic}-{what}-out"));
            cluster.create_topic(&name, PARTITIONS)?;
            name
        }
    };
    let mut spec = stage.spec(cluster, semantic);
    spec.bootstrap = through.to_string();
    spec.output = Some(output.clone());
    spec.pause_per_record_us =
        Some(options.pipeline_seconds * 1_000_000 / options.records);
    if semantic == Semantic::ExactlyOnce {
        spec.transactional_id = Some(processor_transactional_id(&stage.group));
    }
    let rig = Rig {
        cluster,
        proxy,
        semantic,
        spec: spec.clone(),
        records: options.records,
        limit: Duration::from_secs(
            options.pipeline_seconds * 4 + 120 * options.steps + 180,
        ),
    };
    let executed = execute(&rig, local, actions)?;
    let client: BaseConsumer = cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    executor::wait_in_sync(&client, &spec)?;
    let (aborted, aborted_from, recounted) = match semantic {
        Semantic::ExactlyOnce => aborted_positions(cluster, &output),
        _ => (
            Some(Vec::new()),
            "none: at-least-once writes no transactions".into(),
            None,
        ),
    };
    let names = recorder::Pipeline {
        input: &stage.input,
        output: &output,
        group: &stage.group,
    };
    let mut history = recorder::record(cluster, &names, Vec::new(), aborted)?;
    history.faults = fault_steps(&history, &executed);
    let verdict = checker::check(&history)?;
    Ok(PipelineRun {
        semantic,
        input: stage.input.clone(),
        output,
        group: stage.group.clone(),
        aborted_from,
        dump_log: recounted,
        checker_clock_ms: (executed.started_epoch_ms > 0)
            .then(|| history.started_at_ms - executed.started_epoch_ms),
        executed,
        verdict,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The output positions of aborted transactions: from the log's ABORT
/// markers as Kafka's `DumpLogSegments` prints them from a replica's files
/// (every replica is in sync by then); if the tool cannot run, not known.
fn aborted_positions(
    cluster: &Cluster,
    output: &str,
) -> (Option<Vec<Position>>, String, Option<(u64, u64)>) {
    match dump_log::dump_topic(cluster.bootstrap(), output) {
        Ok(dump) => {
            let recount = dump.recount();
            let from = format!(
                "DumpLogSegments over the first local replica of each partition: {} committed, \
                 {} aborted, {} open",
                recount.committed.len(),
                recount.aborted.len(),
                recount.open.len()
            );
            let counts = (recount.committed.len() as u64, recount.aborted.len() as u64);
            (Some(recount.aborted_positions()), from, Some(counts))
        }
        Err(e) => (
            None,
            format!("not known: DumpLogSegments failed ({e})"),
            None,
        ),
    }
}

/// The injected faults as the history's fault steps, on its clock.
fn fault_steps(h: &History, executed: &Executed) -> Vec<FaultStep> {
    let at = |epoch_ms: i64| {
        Mark::Ms(epoch_ms.saturating_sub(h.started_at_ms).max(0) as u64)
    };
    executed
        .injected
        .iter()
        .filter(|i| !i.detail.starts_with("skipped"))
        .map(|i| FaultStep {
            name: format!("step {} {} ({})", i.step + 1, i.kind.label(), i.target),
            from: at(i.started_epoch_ms),
            until: Some(at(i.ended_epoch_ms)),
        })
        .collect()
}
