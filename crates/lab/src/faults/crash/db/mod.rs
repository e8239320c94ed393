//! The side-effects scenario: exactly-once beyond Kafka. A consumer process
//! writes each record of a topic to a database table (SQLite, through
//! [`crate::sink`]) and sends one notification per record (an append-only
//! log: what is sent stays sent). It is SIGKILLed twice at seeded points
//! between its steps, each time replaced by a fresh process in the same
//! group, until the topic is consumed. The audit then counts by record id
//! what the table holds and, separately, what was notified.
//!
//! Five consumers ([`DbVariant`]): row then Kafka commit, Kafka commit then
//! row, an upsert keyed by id, the offsets kept in the database transaction
//! (also run as two instances sharing the partitions through a rebalance),
//! and a Kafka transaction wrapped around the database write. The fourth
//! also runs with an instance paused past its session timeout
//! ([`paused`]), its offsets kept as an [`OffsetWrite`] says.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod paused;
pub mod spec;
pub mod worker;

pub use crate::sink::OffsetWrite;
pub use paused::PausedRun;
pub use spec::{DbSinkSpec, DbStep, DbVariant};

use super::protocol::WorkerSpec;
use super::supervisor::{run_to_death, run_worker, WorkerRun};
use super::{state_dir, write_input};
use crate::audit::{IdRanges, Tally};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::read::{read_ids, Isolation};
use crate::semantics::Semantic;
use crate::sink::{Notifications, ResultStore, SqliteStore};
use crate::support::Seeded;

/// Records per batch: small, so that a run of a few thousand records has
/// many batches and the crash points fall inside the stream.
pub const DB_BATCH: usize = 100;

/// The workload of the side-effects scenario.
#[derive(Clone, Debug)]
pub struct DbOptions {
    pub records: u64,
    pub partitions: i32,
    /// Chooses the two crash points.
    pub seed: u64,
    /// Instead of crashes: two instances at once, the second joining while
    /// the first is at work (the offsets-in-database variant only).
    pub rebalance: bool,
    /// Instead of crashes: the first instance stopped (SIGSTOP) holding a
    /// batch, past its session timeout, while a second takes over; both
    /// keep their offsets this way (the offsets-in-database variant only).
    pub paused: Option<OffsetWrite>,
}

impl DbOptions {
    pub fn new(records: u64, seed: u64) -> DbOptions {
        DbOptions {
            records,
            partitions: 3,
            seed,
            rebalance: false,
            paused: None,
        }
    }

    /// The two workers' crash points: each one's count of records taken.
    fn crash_points(&self) -> [u64; 2] {
        let n = self.records;
        [
            Seeded::new(self.seed ^ 5)
                .in_range(n / 8..(n / 4).max(n / 8 + 1))
                .max(1),
            Seeded::new(self.seed ^ 6).in_range(1..(n / 8).max(2)),
        ]
    }
}

/// One run of a [`DbVariant`]: the audit of the table, of the notifications
/// and (variant 5) of the output topic, and how the run went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbOutcome {
    pub variant: DbVariant,
    pub seed: u64,
    pub records: u64,
    /// The results table, by record id.
    pub rows: Tally,
    /// The notifications log, by record id.
    pub notifications: Tally,
    /// The Kafka-transaction variant's output topic, read_committed.
    pub output: Option<Tally>,
    /// Workers killed with SIGKILL.
    pub crashes: u64,
    /// Where each killed worker died.
    pub deaths: Vec<String>,
    /// Two instances shared the partitions (no crash).
    pub rebalance: bool,
    /// The run with a paused instance (no crash).
    #[serde(default)]
    pub paused: Option<PausedRun>,
    /// Per worker, the partitions of each assignment it was given.
    pub assignments: Vec<Vec<Vec<i32>>>,
    pub seconds: f64,
    /// Which ids went wrong where: the timeline chart's data.
    #[serde(default)]
    pub fates: DbFates,
    pub backend_description: String,
    pub librdkafka_version: String,
    /// The database file (not recorded).
    #[serde(skip)]
    pub database: PathBuf,
    /// The notifications log (not recorded).
    #[serde(skip)]
    pub notifications_log: PathBuf,
    /// The run's topics, to delete (not recorded).
    #[serde(skip)]
    pub topics: Vec<String>,
    /// The run's consumer group (not recorded).
    #[serde(skip)]
    pub group: String,
}

/// Which ids of a run went wrong where, for its timeline chart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbFates {
    pub rows_missing: IdRanges,
    /// Ids with more than one row.
    pub rows_duplicated: IdRanges,
    pub notifications_missing: IdRanges,
    /// Ids notified more than once.
    pub notifications_duplicated: IdRanges,
    /// Per killed worker, in order: the ids of the batch it held when it died.
    pub held_when_killed: Vec<IdRanges>,
}

impl DbFates {
    fn of(records: u64, rows: &[u64], notified: &[u64], runs: &[WorkerRun]) -> DbFates {
        let split = |ids: &[u64]| {
            let mut copies = std::collections::HashMap::new();
            for id in ids {
                *copies.entry(*id).or_insert(0u64) += 1;
            }
            let missing = (0..records).filter(|id| !copies.contains_key(id)).collect();
            let repeated = copies.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id);
            (missing, IdRanges::from_ids(repeated))
        };
        let (rows_missing, rows_duplicated) = split(rows);
        let (notifications_missing, notifications_duplicated) = split(notified);
        DbFates {
            rows_missing,
            rows_duplicated,
            notifications_missing,
            notifications_duplicated,
            held_when_killed: runs
                .iter()
                .filter(|r| r.killed)
                .map(|r| IdRanges::from_ids(r.in_gap.iter().copied()))
                .collect(),
        }
    }

    /// How many times the table holds `id` (2 for any repeat).
    pub fn rows_of(&self, id: u64) -> u64 {
        times(id, &self.rows_missing, &self.rows_duplicated)
    }

    /// How many times `id` was notified (2 for any repeat).
    pub fn notifications_of(&self, id: u64) -> u64 {
        times(
            id,
            &self.notifications_missing,
            &self.notifications_duplicated,
        )
    }
}

fn times(id: u64, missing: &IdRanges, repeated: &IdRanges) -> u64 {
    if missing.contains(id) {
        0
    } else if repeated.contains(id) {
        2
    } else {
        1
    }
}

/// Runs `variant` of the side-effects scenario on `cluster`.
pub fn db_sink_scenario(
    cluster: &Cluster,
    variant: DbVariant,
    options: &DbOptions,
) -> Result<DbOutcome> {
    refuse(cluster, variant, options)?;
    let started = Instant::now();
    let input = cluster.fresh_name(&format!("db-{variant}-in"));
    cluster.create_topic(&input, options.partitions)?;
    let output = match variant {
        DbVariant::KafkaTransaction => {
            let name = cluster.fresh_name(&format!("db-{variant}-out"));
            cluster.create_topic(&name, options.partitions)?;
            Some(name)
        }
        _ => None,
    };
    let group = cluster.fresh_name(&format!("db-{variant}-group"));
    write_input(cluster, Semantic::AtLeastOnce, &input, options.records)?;
    let dir = state_dir(cluster, "db-sink")?;
    let spec = DbSinkSpec {
        variant,
        bootstrap: cluster.bootstrap().to_string(),
        input: input.clone(),
        output: output.clone(),
        group: group.clone(),
        db: dir.join(format!("{group}.sqlite")),
        notifications: dir.join(format!("{group}.notifications")),
        end_offsets: cluster.end_offsets(&input)?,
        batch: DB_BATCH,
        pace_ms: 0,
        crash: None,
        offset_write: OffsetWrite::SkipApplied,
        pause: None,
    };
    let mut paused = None;
    let (runs, deaths) = if let Some(write) = options.paused {
        let at = options.crash_points()[0];
        let (runs, run) = paused::paused_instance(&spec, at, write)?;
        paused = Some(run);
        (runs, Vec::new())
    } else if options.rebalance {
        (two_instances(&spec, options)?, Vec::new())
    } else {
        crashes(&spec, options)?
    };
    let ids = SqliteStore::open(&spec.db, variant.table())?.ids()?;
    let notified = Notifications::read(&spec.notifications)?;
    let output_tally = match &output {
        Some(out) => Some(Tally::of(
            options.records,
            &read_ids(cluster, out, Isolation::ReadCommitted)?,
        )),
        None => None,
    };
    Ok(DbOutcome {
        variant,
        seed: options.seed,
        records: options.records,
        rows: Tally::of(options.records, &ids),
        notifications: Tally::of(options.records, &notified),
        output: output_tally,
        crashes: runs.iter().filter(|r| r.killed).count() as u64,
        fates: DbFates::of(options.records, &ids, &notified, &runs),
        deaths,
        rebalance: options.rebalance,
        paused,
        assignments: runs.into_iter().map(|r| r.assignments).collect(),
        seconds: started.elapsed().as_secs_f64(),
        backend_description: cluster.describe(),
        librdkafka_version: crate::cluster::librdkafka_version(),
        database: spec.db,
        notifications_log: spec.notifications,
        topics: [Some(input), output].into_iter().flatten().collect(),
        group,
    })
}

/// What the scenario refuses before it creates anything.
fn refuse(cluster: &Cluster, variant: DbVariant, options: &DbOptions) -> Result<()> {
    if variant == DbVariant::KafkaTransaction {
        cluster.require_faithful(Semantic::ExactlyOnce)?;
    }
    if options.rebalance && variant != DbVariant::OffsetsInDb {
        return Err(Error::BadConfig(format!(
            "the rebalance run is for the offsets-in-db variant (its instances stop when the \
             database's offsets reach the end); run {variant} with crashes instead"
        )));
    }
    if options.paused.is_some()
        && (options.rebalance || variant != DbVariant::OffsetsInDb)
    {
        return Err(Error::BadConfig(format!(
            "the paused-instance run is for the offsets-in-db variant alone (not with \
             --rebalance); run {variant} with crashes instead"
        )));
    }
    if options.records < 8 * DB_BATCH as u64 {
        return Err(Error::BadConfig(format!(
            "the side-effects scenario needs at least {} records, so that both crashes \
             fall inside the stream; e.g. -n 2000",
            8 * DB_BATCH
        )));
    }
    cluster.check_fits(
        "the side-effects scenario",
        options.records,
        options.partitions,
        200,
    )?;
    Ok(())
}

/// Two workers killed at the variant's two crash steps, at seeded records,
/// then a third that finishes.
fn crashes(
    spec: &DbSinkSpec,
    options: &DbOptions,
) -> Result<(Vec<WorkerRun>, Vec<String>)> {
    let mut runs = Vec::new();
    let mut deaths = Vec::new();
    for (nth, (at, step)) in options
        .crash_points()
        .into_iter()
        .zip(spec.variant.crash_steps())
        .enumerate()
    {
        let who = format!(
            "the {} worker ({} consumer)",
            ["first", "second"][nth],
            spec.variant
        );
        let orders = DbSinkSpec {
            crash: Some((at, step)),
            ..spec.clone()
        };
        runs.push(run_to_death(&WorkerSpec::DbSink(orders), &who)?);
        deaths.push(format!(
            "worker {} SIGKILLed at its record {at}, {}",
            nth + 1,
            step.describe()
        ));
    }
    runs.push(run_worker(&WorkerSpec::DbSink(spec.clone()))?);
    Ok((runs, deaths))
}

/// Two workers at once: the second joins the group once the first has
/// applied a fifth of the records, so the group rebalances and partitions
/// move while batches are in flight. Both pace their batches, so the first
/// is still at work when the second arrives.
fn two_instances(spec: &DbSinkSpec, options: &DbOptions) -> Result<Vec<WorkerRun>> {
    let paced = DbSinkSpec {
        pace_ms: 250,
        ..spec.clone()
    };
    let first = {
        let orders = WorkerSpec::DbSink(paced.clone());
        std::thread::spawn(move || run_worker(&orders))
    };
    let mut store = SqliteStore::open(&spec.db, spec.variant.table())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let applied: i64 = store.stored_offsets(&spec.input)?.values().sum();
        if applied as u64 >= options.records / 5 || first.is_finished() {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Stalled {
                stage: "the first database-sink instance",
                waited: Duration::from_secs(120),
                detail: "it applied under a fifth of the records".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = run_worker(&WorkerSpec::DbSink(paced));
    let first = first.join().map_err(|_| Error::Process {
        what: "the thread waiting for the first instance".into(),
        detail: "it panicked".into(),
    })?;
    Ok(vec![first?, second?])
}

impl DbOutcome {
    /// Did partitions move between the two instances of a rebalance run?
    /// The second was given some, and the first was assigned more than once.
    pub fn partitions_moved(&self) -> bool {
        self.assignments.len() == 2
            && self.assignments[0].len() >= 2
            && self.assignments[1].iter().any(|a| !a.is_empty())
    }
}

impl std::fmt::Display for DbOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} on {}",
            self.variant.label(),
            self.backend_description
        )?;
        for death in &self.deaths {
            writeln!(f, "  {death}")?;
        }
        if self.rebalance {
            writeln!(
                f,
                "  two instances; assignments (partitions) per instance: {:?}",
                self.assignments
            )?;
        }
        if let Some(p) = &self.paused {
            writeln!(
                f,
                "  {}: instance 1 stopped holding {} ids for {:.1} s (session timeout {} ms); \
                 resumed, its transaction wrote {} rows and left the offsets {:?} (they were {:?}: \
                 {} records back)",
                p.offset_write.label(),
                p.held.len(),
                p.paused_seconds,
                p.session_timeout_ms,
                p.applied_on_resume,
                p.offsets_after,
                p.offsets_before,
                p.moved_back()
            )?;
            writeln!(
                f,
                "  assignments (partitions) per instance: {:?}",
                self.assignments
            )?;
        }
        let line = |what: &str, t: &Tally| {
            format!(
                "  {what:<14} {} of {} ids, {} duplicated, {} missing ({} entries)",
                t.distinct, self.records, t.duplicated, t.missing, t.copies
            )
        };
        writeln!(f, "{}", line("table rows:", &self.rows))?;
        writeln!(f, "{}", line("notifications:", &self.notifications))?;
        if let Some(output) = &self.output {
            writeln!(f, "{}", line("output topic:", output))?;
        }
        write!(f, "  {} crashes, {:.1} s", self.crashes, self.seconds)
    }
}

/// One count per run as a table cell: one figure if every run agrees,
/// else each run's, in seed order; any figure but 0 in bold.
fn cell(runs: &[&DbOutcome], count: impl Fn(&DbOutcome) -> Option<u64>) -> String {
    let figures: Vec<String> = runs
        .iter()
        .map(|r| match count(r) {
            None => "-".to_string(),
            Some(0) => "0".to_string(),
            Some(n) => format!("**{n}**"),
        })
        .collect();
    if figures.windows(2).all(|w| w[0] == w[1]) {
        return figures.first().cloned().unwrap_or_default();
    }
    figures.join(", ")
}

impl DbOutcome {
    /// The runs as a Markdown table: a line per variant (and one for the
    /// rebalance runs), each count once if every seed agrees, else every
    /// seed's; then the line naming the workload and where it was measured.
    pub fn markdown_table(runs: &[DbOutcome]) -> String {
        let mut out = String::from(
            "| consumer | rows duplicated | rows missing | notifications duplicated | \
             notifications missing | output topic duplicated, missing | seconds |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for rebalance in [false, true] {
            for variant in DbVariant::ALL {
                let mine: Vec<&DbOutcome> = runs
                    .iter()
                    .filter(|r| {
                        r.variant == variant
                            && r.rebalance == rebalance
                            && r.paused.is_none()
                    })
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let seconds = mine
                    .iter()
                    .map(|r| format!("{:.0}", r.seconds))
                    .collect::<Vec<_>>()
                    .join(", ");
                let output = match mine[0].output {
                    Some(_) => format!(
                        "{}; {}",
                        cell(&mine, |r| r.output.as_ref().map(|t| t.duplicated)),
                        cell(&mine, |r| r.output.as_ref().map(|t| t.missing))
                    ),
                    None => "-".into(),
                };
                out += &format!(
                    "| {}{} | {} | {} | {} | {} | {output} | {seconds} |\n",
                    variant.label(),
                    if rebalance {
                        ", two instances and a rebalance"
                    } else {
                        ""
                    },
                    cell(&mine, |r| Some(r.rows.duplicated)),
                    cell(&mine, |r| Some(r.rows.missing)),
                    cell(&mine, |r| Some(r.notifications.duplicated)),
                    cell(&mine, |r| Some(r.notifications.missing)),
                );
            }
        }
        let runs: Vec<&DbOutcome> =
            runs.iter().filter(|r| r.paused.is_none()).collect();
        let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let mut sources: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{}, librdkafka {}",
                    r.backend_description, r.librdkafka_version
                )
            })
            .collect();
        sources.sort_unstable();
        sources.dedup();
        let mut records: Vec<String> =
            runs.iter().map(|r| r.records.to_string()).collect();
        records.dedup();
        out += &format!(
            "\n{} records per run in batches of {DB_BATCH}; seeds {}: one figure where every \
             seed gave the same, else one per seed. Every run but the rebalance ones killed its \
             consumer twice. Measured on {}.\n",
            records.join(", "),
            seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            sources.join("; ")
        );
        out
    }
}
