//! The executor: one read-process-write pipeline run while the planned
//! faults strike. It counts the records the processors have committed (the
//! sum of every processor's own count, from its reports after each commit)
//! and starts a step once that count reaches the step's `at_records` and the
//! step before it is over: its faults all strike at once, each ends after its
//! duration, then the run waits (bounded) until the three brokers answer and
//! the pipeline's partitions are in sync again. Steps never overlap, so the
//! same seed gives the same faults in the same order; the count at which a
//! step really struck is recorded beside the one planned.
//!
//! Guards: a broker killed is started again and a process stopped is
//! continued whatever happens (even on an error or a panic), every wait has
//! a limit, and a run that stops moving ends with an error naming the step.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::{Deserialize, Serialize};

use super::aim::{self, Leaderships};
use super::brokers::Brokers;
use super::plan::{Action, Target};
use super::processors::{Processors, Role};
use super::schedule::FaultKind;
use crate::cluster::Cluster;
use crate::error::{Doing, Error, Result};
use crate::faults::crash::protocol::ConsumeSpec;
use crate::faults::leader::exactly_once::leaders_of;
use crate::faults::leader::wait_for_brokers;
use crate::faults::proxy::{ApiKey, ChaosProxy, ProduceFault};
use crate::local::LocalCluster;
use crate::semantics::Semantic;
use crate::support::wait_until;

/// A processor that commits nothing for this long while no fault is in
/// force is taken for hung (librdkafka can block for good in
/// `send_offsets_to_transaction` after its group coordinator died:
/// librdkafka issues #5456 and #5511), SIGKILLed and replaced with the same
/// `transactional.id`.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// How often a processor may fail or hang before the run gives up.
const MAX_REPLACEMENTS: usize = 12;

/// How long a resumed zombie may take to be refused and exit before it is
/// SIGKILLed.
const ZOMBIE_EXIT_LIMIT: Duration = Duration::from_secs(20);

/// One fault as it was injected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    pub step: usize,
    pub kind: FaultKind,
    pub target: Target,
    /// The broker a broker fault struck (a role resolved when it struck).
    #[serde(default)]
    pub broker: Option<u32>,
    /// What the target was: the broker's leaderships at the time, the
    /// processor's pid, what the proxy did.
    pub detail: String,
    pub planned_at_records: u64,
    /// Records committed when the step struck.
    pub at_records: u64,
    pub duration_ms: u64,
    /// Seconds since the pipeline started, and since the epoch (ms).
    pub started_s: f64,
    pub ended_s: f64,
    pub started_epoch_ms: i64,
    pub ended_epoch_ms: i64,
}

/// A processor replaced by the run itself (not by a planned fault).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replacement {
    pub at_s: f64,
    /// The last step that had struck by then (its faults may be over).
    pub after_step: Option<usize>,
    /// It committed nothing for [`HANG_LIMIT`] with no fault in force.
    pub hung: bool,
    pub reason: String,
}

/// What one pipeline run under the faults did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    pub injected: Vec<Injected>,
    /// Steps never reached: the pipeline had finished first.
    pub not_reached: Vec<usize>,
    pub replacements: Vec<Replacement>,
    /// Records the processors committed (for at-least-once, copies included).
    pub committed: u64,
    pub seconds: f64,
    /// When the run started, in milliseconds since the epoch (0: not recorded).
    #[serde(default)]
    pub started_epoch_ms: i64,
}

/// What the executor works with.
pub(super) struct Rig<'a> {
    pub cluster: &'a Cluster,
    pub proxy: &'a ChaosProxy,
    pub semantic: Semantic,
    pub spec: ConsumeSpec,
    pub records: u64,
    /// The run fails past this.
    pub limit: Duration,
}

/// A fault in force, and how to end it.
struct Live {
    index: usize,
    until: Instant,
    ended: bool,
    /// A processor paused or started by the fault (its pid).
    pid: Option<u32>,
    /// The broker killed or frozen.
    broker: Option<u32>,
    /// A proxy fault: what to arm, and how far it got.
    arm: Option<Arm>,
}

/// What a fault struck, as [`Exec::strike`] tells it.
struct Struck {
    detail: String,
    pid: Option<u32>,
    broker: Option<u32>,
}

impl Struck {
    fn with(detail: String, pid: Option<u32>) -> Struck {
        Struck {
            detail,
            pid,
            broker: None,
        }
    }
}

/// A proxy fault of a step. One Produce fault is armed at a time, so a
/// second one of the same step waits until the first has been used; each
/// stays in force until used (at least its duration, at most
/// [`ARM_LIMIT`]), since the slowed processor sends in bursts.
struct Arm {
    fault: Option<ProduceFault>,
    pending: bool,
    used: bool,
    struck: Instant,
}

/// The longest a proxy fault waits for a response to lose or hold.
const ARM_LIMIT: Duration = Duration::from_secs(20);

impl Arm {
    fn new(fault: Option<ProduceFault>) -> Arm {
        Arm {
            fault,
            pending: true,
            used: false,
            struck: Instant::now(),
        }
    }

    /// Whether the proxy no longer holds this fault armed.
    fn spent(&self, proxy: &ChaosProxy) -> bool {
        match self.fault {
            Some(_) => proxy.fault() == ProduceFault::None,
            None => proxy.response_drop().is_none(),
        }
    }

    fn try_arm(&mut self, proxy: &ChaosProxy) {
        if !self.pending || !self.spent(proxy) {
            return;
        }
        match self.fault {
            Some(f) => proxy.inject(f),
            None => proxy.inject_response_drop(ApiKey::EndTxn, 1),
        }
        self.pending = false;
    }
}

/// Whether `l` is over: its duration passed and, for a proxy fault, used
/// or past [`ARM_LIMIT`].
fn over(l: &Live) -> bool {
    Instant::now() >= l.until
        && l.arm
            .as_ref()
            .is_none_or(|a| a.used || a.struck.elapsed() >= ARM_LIMIT)
}

/// The executor's state during one run.
struct Exec<'a, 'b> {
    rig: &'b Rig<'a>,
    brokers: Brokers<'b>,
    procs: Processors,
    client: BaseConsumer,
    started: Instant,
    out: Executed,
    /// Main processors started so far (each zombie's successor is a new one).
    generation: u32,
    main_tid: Option<String>,
    finished: bool,
    last_step: Option<usize>,
    quiet_since: Instant,
    last_count: u64,
}

/// Runs the pipeline of `rig` while `actions` strike; see the module's
/// documentation.
pub(super) fn execute(
    rig: &Rig<'_>,
    local: &mut LocalCluster,
    actions: &[Action],
) -> Result<Executed> {
    let client: BaseConsumer = rig
        .cluster
        .client_config()
        .create()
        .doing("creating a metadata client")?;
    let mut steps: Vec<Vec<(usize, &Action)>> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        if steps.last().is_none_or(|s| s[0].1.step != a.step) {
            steps.push(Vec::new());
        }
        steps.last_mut().expect("just pushed").push((i, a));
    }
    let brokers = Brokers {
        local,
        stopped: Vec::new(),
        killed: Vec::new(),
    };
    let mut exec = Exec {
        rig,
        brokers,
        procs: Processors::new(rig.spec.clone()),
        client,
        started: Instant::now(),
        out: Executed::default(),
        generation: 0,
        main_tid: None,
        finished: false,
        last_step: None,
        quiet_since: Instant::now(),
        last_count: 0,
    };
    exec.out.started_epoch_ms = epoch_ms();
    exec.start_main()?;
    let mut next = 0;
    while !exec.finished {
        exec.reap()?;
        if exec.finished {
            break;
        }
        if let Some(step) = steps.get(next) {
            if exec.procs.committed() >= step[0].1.at_records {
                exec.run_step(step)?;
                next += 1;
                continue;
            }
        }
        exec.watch()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    exec.out.not_reached = steps[next..].iter().map(|s| s[0].1.step).collect();
    exec.out.committed = exec.procs.committed();
    exec.out.seconds = exec.started.elapsed().as_secs_f64();
    Ok(exec.out)
}

impl Exec<'_, '_> {
    fn since(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn tid_of(&self, generation: u32) -> Option<String> {
        let base = self.rig.spec.transactional_id.clone()?;
        Some(match generation {
            0 => base,
            g => format!("{base}-{g}"),
        })
    }

    fn start_main(&mut self) -> Result<u32> {
        let tid = self.main_tid.clone().or_else(|| self.tid_of(0));
        self.main_tid = tid.clone();
        self.procs.start(Role::Main, tid)
    }

    fn replace(&mut self, hung: bool, reason: String) -> Result<()> {
        self.out.replacements.push(Replacement {
            at_s: self.since(),
            after_step: self.last_step,
            hung,
            reason: reason.clone(),
        });
        if self.out.replacements.len() > MAX_REPLACEMENTS {
            return Err(Error::Process {
                what: format!("the nemesis's {} processor", self.rig.semantic),
                detail: format!(
                    "replaced {MAX_REPLACEMENTS} times{}; the last time: {reason}",
                    self.step_words()
                ),
            });
        }
        self.start_main()?;
        self.quiet_since = Instant::now();
        Ok(())
    }

    fn step_words(&self) -> String {
        match self.last_step {
            Some(s) => format!(" (after step {} of the schedule)", s + 1),
            None => " (before the first step of the schedule)".into(),
        }
    }

    /// Handles processors that exited: the main one finished, failed, or a
    /// second one or a zombie went.
    fn reap(&mut self) -> Result<()> {
        for exit in self.procs.reap() {
            if exit.role != Role::Main || exit.meant {
                if self.rig.semantic == Semantic::ExactlyOnce && exit.role != Role::Main
                {
                    fence(self.rig, exit.transactional_id.as_deref());
                }
                continue;
            }
            // A processor's count is reported after its commit, so one
            // killed in between committed more than it said: the group's
            // offsets, not the counts, say whether the input is done.
            let short = match exit.finished {
                true => self.offsets_short(),
                false => None,
            };
            match (exit.finished, short) {
                (true, None) => self.finished = true,
                (true, Some(short)) => self.replace(false, short)?,
                (false, _) => self.replace(false, exit.detail)?,
            }
        }
        if self.finished {
            // Whoever is left (a second processor) has nothing more to do.
            let pids: Vec<u32> = self.procs.live.iter().map(|p| p.pid).collect();
            for pid in pids {
                self.procs.kill(pid);
            }
            for exit in self.procs.reap() {
                if self.rig.semantic == Semantic::ExactlyOnce {
                    // What it left open would hold read_committed readers back.
                    fence(self.rig, exit.transactional_id.as_deref());
                }
            }
        }
        Ok(())
    }

    /// Whether the group's committed offsets fall short of the input's end
    /// (for a transactional input, the last offset is a commit marker): what
    /// is missing, or `None` if the input is done.
    fn offsets_short(&self) -> Option<String> {
        let spec = &self.rig.spec;
        let marker = i64::from(self.rig.semantic == Semantic::ExactlyOnce);
        let committed = match crate::audit::checker::recorder::group_offsets(
            self.rig.cluster,
            &spec.input,
            &spec.group,
        ) {
            Ok(c) => c,
            Err(e) => {
                return Some(format!(
                    "it ended, and its group's offsets could not be read: {e}"
                ))
            }
        };
        let mut short = Vec::new();
        for p in 0..super::runner::PARTITIONS {
            let next = committed
                .iter()
                .find(|g| g.partition == p)
                .map_or(0, |g| g.next);
            // An end that cannot be read (a broker down) counts as short:
            // a replacement that finds nothing to do costs seconds.
            let end = match self.client.fetch_watermarks(
                &spec.input,
                p,
                Duration::from_secs(10),
            ) {
                Ok((_, high)) => high,
                Err(e) => {
                    short.push(format!(
                        "partition {p} committed to {next}, its end unreadable ({e})"
                    ));
                    continue;
                }
            };
            if next < end - marker {
                short.push(format!("partition {p} committed to {next} of {end}"));
            }
        }
        (!short.is_empty()).then(|| {
            format!(
                "it ended with its group short of the input's end: {}",
                short.join(", ")
            )
        })
    }

    /// Between steps: a main processor that commits nothing for
    /// [`HANG_LIMIT`] is replaced; a run past its limit fails.
    fn watch(&mut self) -> Result<()> {
        let count = self.procs.committed();
        if count > self.last_count {
            self.last_count = count;
            self.quiet_since = Instant::now();
        }
        if self.quiet_since.elapsed() > HANG_LIMIT {
            if let Some(pid) = self.procs.of_role(Role::Main).map(|p| p.pid) {
                self.procs.kill(pid);
                self.procs.reap();
                let reason = format!(
                    "pid {pid} committed nothing for {} s with no fault in force{}",
                    HANG_LIMIT.as_secs(),
                    self.step_words()
                );
                self.replace(true, reason)?;
            }
        }
        if self.started.elapsed() > self.rig.limit {
            return Err(Error::Stalled {
                stage: "the nemesis run",
                waited: self.rig.limit,
                detail: format!(
                    "{} of {} records committed{}",
                    count,
                    self.rig.records,
                    self.step_words()
                ),
            });
        }
        Ok(())
    }

    /// One step: every fault strikes, each ends after its duration, then the
    /// cluster settles.
    fn run_step(&mut self, step: &[(usize, &Action)]) -> Result<()> {
        let index = step[0].1.step;
        self.last_step = Some(index);
        let at = self.procs.committed();
        let mut live = Vec::new();
        let mut taken = Vec::new();
        for &(_, action) in step {
            let Struck {
                detail,
                pid,
                broker,
            } = self.strike(action, &taken)?;
            taken.extend(broker);
            let now = epoch_ms();
            self.out.injected.push(Injected {
                step: index,
                kind: action.kind,
                target: action.target,
                broker,
                detail,
                planned_at_records: action.at_records,
                at_records: at,
                duration_ms: action.duration_ms,
                started_s: self.since(),
                ended_s: self.since(),
                started_epoch_ms: now,
                ended_epoch_ms: now,
            });
            live.push(Live {
                index: self.out.injected.len() - 1,
                until: Instant::now() + Duration::from_millis(action.duration_ms),
                ended: false,
                pid,
                broker,
                arm: match action.kind {
                    FaultKind::LostProduceResponse => {
                        Some(Arm::new(Some(ProduceFault::DropResponses { count: 1 })))
                    }
                    FaultKind::DelayedProduceResponse => {
                        Some(Arm::new(Some(ProduceFault::DelayResponses {
                            count: 1,
                            delay: Duration::from_millis(action.duration_ms),
                        })))
                    }
                    FaultKind::LostEndTxnResponse => Some(Arm::new(None)),
                    _ => None,
                },
            });
        }
        while live.iter().any(|l| !l.ended) {
            self.reap()?;
            let proxy = self.rig.proxy;
            for a in live
                .iter_mut()
                .filter(|l| !l.ended)
                .filter_map(|l| l.arm.as_mut())
            {
                a.used = a.used || (!a.pending && a.spent(proxy));
            }
            for a in live
                .iter_mut()
                .filter(|l| !l.ended)
                .filter_map(|l| l.arm.as_mut())
            {
                a.try_arm(proxy);
            }
            for l in live.iter_mut().filter(|l| !l.ended && over(l)) {
                self.end(l)?;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.settle(index)?;
        self.quiet_since = Instant::now();
        Ok(())
    }

    /// Starts one fault: what it struck, the processor it paused or
    /// started, the broker it killed or froze (`taken`: brokers this step
    /// struck already).
    fn strike(&mut self, a: &Action, taken: &[u32]) -> Result<Struck> {
        let none = |detail: String| Ok(Struck::with(detail, None));
        match (a.kind, a.target) {
            (FaultKind::BrokerKill | FaultKind::FollowerPause, target)
                if matches!(target, Target::Broker(_) | Target::Leader { .. }) =>
            {
                let now = self.leaderships();
                let ids: Vec<u32> = self
                    .brokers
                    .local
                    .brokers
                    .iter()
                    .map(|b| b.node_id)
                    .collect();
                let (node, how) = aim::resolve(target, &now, &ids, taken);
                let exactly_once = self.rig.semantic == Semantic::ExactlyOnce;
                let led = aim::led_words(&now, node, exactly_once);
                let signal = match a.kind {
                    FaultKind::BrokerKill => {
                        self.brokers.kill(node)?;
                        "SIGKILL"
                    }
                    _ => {
                        self.brokers.stop(node)?;
                        "SIGSTOP"
                    }
                };
                let how = if how.is_empty() { how } else { how + "; " };
                Ok(Struck {
                    detail: format!("{how}{signal}; it led {led}"),
                    pid: None,
                    broker: Some(node),
                })
            }
            (FaultKind::LostProduceResponse, _) => {
                none("the next Produce response to be dropped".into())
            }
            (FaultKind::DelayedProduceResponse, _) => none(format!(
                "the next Produce response to be held {} ms",
                a.duration_ms
            )),
            (FaultKind::LostEndTxnResponse, _) => {
                none("the next EndTxn response to be dropped".into())
            }
            (FaultKind::ProcessorKill, _) => match self.procs.of_role(Role::Main) {
                Some(p) => {
                    let pid = p.pid;
                    self.procs.kill(pid);
                    // Gone from the running set before another fault looks.
                    self.reap()?;
                    none(format!("pid {pid} SIGKILLed"))
                }
                None => none("skipped: no processor running".into()),
            },
            (FaultKind::SecondProcessor, _) => {
                let tid = self.tid_of(1000 + a.step as u32);
                let pid = self.procs.start(Role::Second, tid)?;
                Ok(Struck::with(
                    format!("pid {pid} joined the group"),
                    Some(pid),
                ))
            }
            (FaultKind::ZombiePause, _) => {
                let (detail, pid) = self.pause_main()?;
                Ok(Struck::with(detail, pid))
            }
            (kind, target) => none(format!("skipped: {kind:?} cannot strike {target}")),
        }
    }

    /// The zombie: the main processor is SIGSTOPped and a successor with a
    /// `transactional.id` of its own takes its place in the group.
    fn pause_main(&mut self) -> Result<(String, Option<u32>)> {
        let Some(main) = self.procs.of_role_mut(Role::Main) else {
            return Ok(("skipped: no processor running".into(), None));
        };
        main.role = Role::Zombie;
        let pid = main.pid;
        self.procs.signal(pid, libc::SIGSTOP);
        self.generation += 1;
        self.main_tid = self.tid_of(self.generation);
        let successor = self.start_main()?;
        Ok((
            format!("pid {pid} SIGSTOPped; successor pid {successor} started"),
            Some(pid),
        ))
    }

    /// Ends one fault.
    fn end(&mut self, l: &mut Live) -> Result<()> {
        l.ended = true;
        let kind = self.out.injected[l.index].kind;
        let proxy = self.rig.proxy;
        let mut note = String::new();
        match (kind, l.broker) {
            (FaultKind::BrokerKill, Some(node)) => self.brokers.restart(node)?,
            (FaultKind::FollowerPause, Some(node)) => self.brokers.resume(node)?,
            (
                FaultKind::LostProduceResponse
                | FaultKind::DelayedProduceResponse
                | FaultKind::LostEndTxnResponse,
                _,
            ) => {
                if let Some(a) = &l.arm {
                    note = match (a.pending, a.used) {
                        (true, _) => {
                            "; never armed (another fault held the proxy)".into()
                        }
                        (false, true) => "; used".into(),
                        (false, false) => {
                            // Disarm only what is still ours.
                            match a.fault {
                                Some(f) if proxy.fault() == f => {
                                    proxy.inject(ProduceFault::None)
                                }
                                Some(_) => {}
                                None => proxy.inject_response_drop(ApiKey::EndTxn, 0),
                            }
                            format!("; no response came in {} s", ARM_LIMIT.as_secs())
                        }
                    };
                }
            }
            (FaultKind::ProcessorKill, _)
                if self.procs.of_role(Role::Main).is_none() =>
            {
                let pid = self.start_main()?;
                note = format!("; restarted as pid {pid}");
            }
            (FaultKind::SecondProcessor, _) => {
                if let Some(pid) = l.pid {
                    self.procs.kill(pid);
                    note = "; SIGKILLed at the end".into();
                }
            }
            (FaultKind::ZombiePause, _) => {
                if let Some(pid) = l.pid {
                    self.procs.signal(pid, libc::SIGCONT);
                    note = self.await_zombie(pid);
                }
            }
            _ => {}
        }
        let since = self.since();
        let i = &mut self.out.injected[l.index];
        i.ended_s = since;
        i.ended_epoch_ms = epoch_ms();
        i.detail += &note;
        Ok(())
    }

    /// A resumed zombie should be refused and exit; one still running after
    /// [`ZOMBIE_EXIT_LIMIT`] is SIGKILLed.
    fn await_zombie(&mut self, pid: u32) -> String {
        let deadline = Instant::now() + ZOMBIE_EXIT_LIMIT;
        while Instant::now() < deadline {
            if !self.procs.live.iter().any(|p| p.pid == pid) {
                return "; resumed, it exited by itself".into();
            }
            let _ = self.reap();
            std::thread::sleep(Duration::from_millis(100));
        }
        self.procs.kill(pid);
        let _ = self.reap();
        format!(
            "; resumed, still running {} s later, SIGKILLed",
            ZOMBIE_EXIT_LIMIT.as_secs()
        )
    }

    /// Who leads what the pipeline depends on, asked of the cluster now.
    fn leaderships(&self) -> Leaderships {
        let s = &self.rig.spec;
        let tid = self.main_tid.clone().unwrap_or_default();
        let names = (
            s.input.as_str(),
            s.output.as_deref().unwrap_or(""),
            s.group.as_str(),
            tid.as_str(),
        );
        leaders_of(self.rig.cluster, &self.client, names)
    }

    /// After a step: every broker answers and the pipeline's partitions
    /// have three replicas in sync, or an error naming the step.
    fn settle(&mut self, step: usize) -> Result<()> {
        let named = |e: Error| Error::Process {
            what: format!("the nemesis's step {}", step + 1),
            detail: format!("the cluster did not recover after it: {e}"),
        };
        wait_for_brokers(self.rig.cluster, 3).map_err(named)?;
        wait_in_sync(&self.client, &self.rig.spec).map_err(named)
    }
}

/// Waits until the pipeline's topics and the two internal ones have three
/// replicas in sync.
pub(super) fn wait_in_sync(client: &BaseConsumer, spec: &ConsumeSpec) -> Result<()> {
    let mut topics = vec![spec.input.clone(), "__consumer_offsets".to_string()];
    topics.extend(spec.output.clone());
    if spec.transactional_id.is_some() {
        topics.push("__transaction_state".into());
    }
    wait_until(
        "the restarted brokers' catching up",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || {
            let mut behind = Vec::new();
            for topic in &topics {
                let metadata =
                    match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                        Ok(m) => m,
                        Err(e) => return Ok(Some(format!("metadata of {topic}: {e}"))),
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

/// Fences `transactional_id` at once (InitProducerId), which aborts the
/// transaction a killed processor left open, instead of waiting for its
/// transaction timeout. Best effort.
fn fence(rig: &Rig<'_>, transactional_id: Option<&str>) {
    let Some(tid) = transactional_id else { return };
    let producer: Option<rdkafka::producer::BaseProducer> = Semantic::ExactlyOnce
        .producer_config(rig.cluster.bootstrap(), Some(tid), &[])
        .ok()
        .and_then(|c| c.create().ok());
    if let Some(p) = producer {
        let _ = crate::produce::init_transactions(&p);
    }
}

pub(super) fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
