//! The paused instance of the offsets-in-database consumer: a process that
//! has read a batch and not yet written it is stopped (SIGSTOP) for longer
//! than its session timeout. The broker stops hearing its heartbeats (the
//! heartbeat thread is stopped with the rest of the process), removes it
//! from the group after `session.timeout.ms`, and a second instance takes
//! its partitions and consumes them to the end. Then the first is resumed
//! (SIGCONT) and ends the transaction of the batch it still holds, for
//! partitions it no longer owns.
//!
//! `max.poll.interval.ms` does not come into it: the client enforces that
//! one itself, and a stopped client enforces nothing; the broker's session
//! timeout is what evicts a stopped process.

use std::fs;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::spec::DbSinkSpec;
use super::{DbOutcome, DB_BATCH};
use crate::audit::IdRanges;
use crate::error::{Error, Result};
use crate::faults::crash::protocol::WorkerSpec;
use crate::faults::crash::supervisor::{
    is_stopped, run_worker, wait_for_pid, WorkerRun,
};
use crate::faults::crash::worker::crash_consumer_overrides;
use crate::sink::{OffsetWrite, ResultStore, SqliteStore};

/// What happened around the paused instance of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PausedRun {
    /// How both instances' transactions kept the offsets.
    pub offset_write: OffsetWrite,
    /// The consumers' session timeout; the pause lasted longer.
    pub session_timeout_ms: u64,
    /// How long the first instance stayed stopped.
    pub paused_seconds: f64,
    /// The ids of the batch it held, read and not yet written.
    pub held: IdRanges,
    /// The offsets the database held when it was resumed: (partition, next).
    pub offsets_before: Vec<(i32, i64)>,
    /// The rows the held batch's transaction wrote once it was resumed.
    pub applied_on_resume: u64,
    /// The offsets the database held just after that transaction.
    pub offsets_after: Vec<(i32, i64)>,
}

impl PausedRun {
    /// By how many records the held batch's transaction moved the stored
    /// offsets back, summed over the partitions.
    pub fn moved_back(&self) -> u64 {
        self.offsets_before
            .iter()
            .map(|(p, before)| {
                let after = self
                    .offsets_after
                    .iter()
                    .find(|(q, _)| q == p)
                    .map_or(*before, |(_, a)| *a);
                (before - after).max(0) as u64
            })
            .sum()
    }
}

/// The paused runs among `runs` as a Markdown table, a line per run: how
/// the transaction kept the offsets, the pause, what the resumed instance's
/// transaction did, and the audit; then where it was measured.
pub fn markdown_table(runs: &[DbOutcome]) -> String {
    let mut out = String::from(
        "| offsets in the transaction | seed | paused | rows written on resume | \
         offsets set back | rows duplicated | rows missing | notifications duplicated |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let bold = |n: u64| {
        if n == 0 {
            "0".into()
        } else {
            format!("**{n}**")
        }
    };
    let mut sources = Vec::new();
    for write in OffsetWrite::ALL {
        for r in runs
            .iter()
            .filter(|r| r.paused.as_ref().is_some_and(|p| p.offset_write == write))
        {
            let p = r.paused.as_ref().expect("filtered");
            out += &format!(
                "| {} | {} | {:.1} s | {} of {} held | {} | {} | {} | {} |\n",
                write.label(),
                r.seed,
                p.paused_seconds,
                p.applied_on_resume,
                p.held.len(),
                bold(p.moved_back()),
                bold(r.rows.duplicated),
                bold(r.rows.missing),
                bold(r.notifications.duplicated),
            );
            let source = format!(
                "{}, librdkafka {}",
                r.backend_description, r.librdkafka_version
            );
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
    }
    let timeout = runs
        .iter()
        .find_map(|r| r.paused.as_ref())
        .map_or(0, |p| p.session_timeout_ms);
    out += &format!(
        "\n{} records per run, 3 partitions, batches of {DB_BATCH}; session timeout {timeout} ms. \
         Offsets set back: records by which the resumed instance's transaction moved the \
         stored offsets below where the second instance had left them. Measured on {}.\n",
        runs.first().map_or(0, |r| r.records),
        sources.join("; ")
    );
    out
}

/// The consumers' session timeout, as the crash scenarios set it.
fn session_timeout() -> Duration {
    let ms = crash_consumer_overrides()
        .into_iter()
        .find(|(k, _)| k == "session.timeout.ms")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(45_000);
    Duration::from_millis(ms)
}

/// The first instance alone, told to stop itself holding the batch with its
/// `at`th record; once it has, the second runs to the end; then the first
/// is resumed and finishes. Both keep their offsets as `write` says.
pub(super) fn paused_instance(
    spec: &DbSinkSpec,
    at: u64,
    write: OffsetWrite,
) -> Result<(Vec<WorkerRun>, PausedRun)> {
    let orders = DbSinkSpec {
        offset_write: write,
        ..spec.clone()
    };
    let flag = spec.db.with_extension("paused");
    let _ = fs::remove_file(&flag);
    let first = {
        let told = WorkerSpec::DbSink(DbSinkSpec {
            pause: Some((at, flag.clone())),
            ..orders.clone()
        });
        std::thread::spawn(move || run_worker(&told))
    };
    let pid = wait_for_pid(&flag, &first, "the instance meant to pause")?;
    let stopped = Instant::now();
    let second = run_worker(&WorkerSpec::DbSink(orders));
    let before = SqliteStore::open(&spec.db, spec.variant.table())
        .and_then(|mut store| store.stored_offsets(&spec.input));
    // The second cannot finish before the broker has given it the first's
    // partitions; should it have, the pause still outlasts the timeout.
    let least = session_timeout() + Duration::from_secs(1);
    std::thread::sleep(least.saturating_sub(stopped.elapsed()));
    let was_stopped = is_stopped(pid);
    let paused_seconds = stopped.elapsed().as_secs_f64();
    // SAFETY: kill(2) with a process id and a signal number has no
    // memory-safety preconditions; the child is ours and not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    let first = first.join().map_err(|_| Error::Process {
        what: "the thread waiting for the paused instance".into(),
        detail: "it panicked".into(),
    })??;
    let (second, before) = (second?, before?);
    let _ = fs::remove_file(&flag);
    if !was_stopped {
        return Err(Error::Process {
            what: "the paused instance".into(),
            detail: "it was not stopped when the second instance had finished".into(),
        });
    }
    let Some((applied, offsets_after)) = first.after_pause.clone() else {
        return Err(Error::Process {
            what: "the paused instance".into(),
            detail: "resumed, it did not report the transaction of the batch it held"
                .into(),
        });
    };
    let paused = PausedRun {
        offset_write: write,
        session_timeout_ms: session_timeout().as_millis() as u64,
        paused_seconds,
        held: IdRanges::from_ids(first.paused.iter().copied()),
        offsets_before: before.into_iter().collect(),
        applied_on_resume: applied,
        offsets_after,
    };
    Ok((vec![first, second], paused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_moved_back_are_counted_per_partition() {
        let run = PausedRun {
            offset_write: OffsetWrite::Overwrite,
            session_timeout_ms: 6000,
            paused_seconds: 9.0,
            held: IdRanges::default(),
            offsets_before: vec![(0, 700), (1, 650), (2, 640)],
            applied_on_resume: 100,
            offsets_after: vec![(0, 250), (1, 650), (2, 700)],
        };
        assert_eq!(run.moved_back(), 450);
        assert!(!is_stopped(std::process::id() as i32));
    }
}
