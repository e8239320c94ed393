//! The broker's side of a measurement: how fast the topic's log grew on the
//! broker's disk over the measured window, a second throughput figure that
//! does not depend on the client's clock or on what the client says it sent.
//!
//! The lab can read it only for the brokers `cargo xtask kafka up` started on
//! this machine: their state file names each broker's `server.properties`,
//! whose `log.dirs` hold one folder per partition (`topic-0`, ...), whose
//! `.log` segment files grow as the broker appends. While a run goes on, a
//! thread samples the size of those files every [`SAMPLE_EVERY`]; the window
//! is the time from the log's growing past the warm-up to its reaching its
//! final size. For any other broker the figure is unknown, never guessed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::{Backend, Cluster};
use crate::local::{LocalBroker, LocalCluster};

/// How often the log's size is read while a run goes on: a few `stat`s of
/// the partition's folder, next to nothing beside a producer.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// What the broker's log says of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerLog {
    /// Recorded before the bench had the check.
    #[default]
    NotChecked,
    /// The lab cannot read this broker's log (not a broker started by
    /// `cargo xtask kafka up` on this machine), or the run was too short to
    /// time from it. See the report's notes.
    Unknown,
    /// The log grew so fast over the measured window.
    Grew(LogGrowth),
}

impl BrokerLog {
    pub fn records_per_sec(&self) -> Option<f64> {
        match self {
            BrokerLog::Grew(g) => Some(g.records_per_sec),
            _ => None,
        }
    }
}

/// How the topic's log grew over a run's measured window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogGrowth {
    /// Bytes appended to the log over the window (record batches, framing
    /// and commit markers included).
    pub bytes: u64,
    /// The window as the log saw it: from its first growth past the warm-up
    /// to its reaching the final size.
    pub seconds: f64,
    /// Log bytes per record over the whole run, warm-up included.
    pub bytes_per_record: f64,
    /// `bytes / bytes_per_record / seconds`: records appended per second.
    pub records_per_sec: f64,
}

/// Where one topic's partitions live on the local brokers' disks.
#[derive(Clone, Debug)]
pub(super) struct LogProbe {
    /// Per partition, its folder on every broker that holds a replica.
    partitions: Vec<Vec<PathBuf>>,
}

impl LogProbe {
    /// The folders of `topic`'s `partitions` partitions (waiting up to 5 s
    /// for the broker to create them), or why the lab cannot see them.
    pub(super) fn find(
        cluster: &Cluster,
        topic: &str,
        partitions: i32,
    ) -> std::result::Result<LogProbe, String> {
        if cluster.backend() != Backend::Kafka {
            return Err("the mock cluster keeps no log on disk".into());
        }
        let local = LocalCluster::serving(cluster.bootstrap()).ok_or_else(|| {
            format!(
                "the broker at {} was not started by `cargo xtask kafka up` on this machine, \
                 so the lab cannot read its log",
                cluster.bootstrap()
            )
        })?;
        let dirs: Vec<PathBuf> = local.brokers.iter().flat_map(log_dirs).collect();
        if dirs.is_empty() {
            return Err("no broker's server.properties names its log.dirs".into());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<Vec<PathBuf>> = (0..partitions)
                .map(|p| {
                    dirs.iter()
                        .map(|d| d.join(format!("{topic}-{p}")))
                        .filter(|d| d.is_dir())
                        .collect()
                })
                .collect();
            if found.iter().all(|f: &Vec<PathBuf>| !f.is_empty()) {
                return Ok(LogProbe { partitions: found });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no folder of {topic} in the local brokers' log.dirs ({})",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The topic's log size in bytes: per partition, its largest replica's
    /// (the leader's, which appends first), summed.
    pub(super) fn size(&self) -> u64 {
        self.partitions
            .iter()
            .map(|replicas| {
                replicas.iter().map(|d| segments_size(d)).max().unwrap_or(0)
            })
            .sum()
    }

    /// Runs `body` while sampling the log's size; after it, samples on
    /// until the size has not changed for 50 ms (at most a second), so that
    /// what the broker appends last (a commit marker) is seen.
    pub(super) fn watch<T>(&self, body: impl FnOnce() -> T) -> (T, Vec<Sample>) {
        let done = AtomicBool::new(false);
        let origin = Instant::now();
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut samples = vec![Sample::at(origin, self.size())];
                let mut settled_since: Option<Instant> = None;
                let mut done_at: Option<Instant> = None;
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    let sample = Sample::at(origin, self.size());
                    let changed =
                        samples.last().is_some_and(|s| s.bytes != sample.bytes);
                    samples.push(sample);
                    if done.load(Ordering::SeqCst) {
                        let now = Instant::now();
                        let done_at = *done_at.get_or_insert(now);
                        let since = if changed {
                            settled_since.insert(now)
                        } else {
                            settled_since.get_or_insert(now)
                        };
                        if now - *since >= Duration::from_millis(50)
                            || now - done_at >= Duration::from_secs(1)
                        {
                            return samples;
                        }
                    }
                }
            });
            let out = body();
            done.store(true, Ordering::SeqCst);
            (out, sampler.join().unwrap_or_default())
        })
    }
}

/// The log size at a time since sampling started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sample {
    pub(super) seconds: f64,
    pub(super) bytes: u64,
}

impl Sample {
    fn at(origin: Instant, bytes: u64) -> Sample {
        Sample {
            seconds: origin.elapsed().as_secs_f64(),
            bytes,
        }
    }
}

/// The folders a local broker keeps its logs in: `log.dirs` (or `log.dir`)
/// of the `server.properties` on its command line.
fn log_dirs(broker: &LocalBroker) -> Vec<PathBuf> {
    let Some(props) = broker
        .command
        .iter()
        .rev()
        .find(|a| a.ends_with("server.properties"))
    else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(props).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            ["log.dirs", "log.dir"]
                .contains(&k.trim())
                .then(|| v.trim())
        })
        .take(1)
        .flat_map(|v| v.split(',').map(|d| PathBuf::from(d.trim())))
        .collect()
}

/// The size of the `.log` segment files in one partition's folder.
fn segments_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// How the log grew over the measured window, from `samples` taken over a
/// whole run of `records` records (warm-up included), the first before
/// anything was written, the last after everything was; `window_from`: the
/// log's size when the measured part began. The window runs from the first
/// sample past `window_from` to the first at the final size, each time taken
/// halfway from the sample before (the change happened in between). None if
/// the log did not grow, or grew past both ends between two samples.
pub(super) fn growth(
    samples: &[Sample],
    window_from: u64,
    records: u64,
) -> Option<LogGrowth> {
    let first = samples.first()?.bytes;
    let last = samples.last()?.bytes;
    if last <= first || last <= window_from || records == 0 {
        return None;
    }
    let crossing = |past: &dyn Fn(u64) -> bool| -> Option<f64> {
        let i = samples.iter().position(|s| past(s.bytes))?;
        let before = samples[i.checked_sub(1)?].seconds;
        Some((before + samples[i].seconds) / 2.0)
    };
    let start = crossing(&|b| b > window_from)?;
    let end = crossing(&|b| b >= last)?;
    let seconds = end - start;
    if seconds <= 0.0 {
        return None;
    }
    let bytes = last - window_from;
    let bytes_per_record = (last - first) as f64 / records as f64;
    Some(LogGrowth {
        bytes,
        seconds,
        bytes_per_record,
        records_per_sec: bytes as f64 / bytes_per_record / seconds,
    })
}

/// The log's size where a run's warm-up of `warmup` of `records` records
/// ended, for a client that does not pause after it (ProducerPerformance):
/// that share of the whole run's growth.
pub(super) fn warmup_boundary(samples: &[Sample], warmup: u64, records: u64) -> u64 {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return 0;
    };
    let grown = last.bytes.saturating_sub(first.bytes) as f64;
    first.bytes + (grown * warmup as f64 / records.max(1) as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(f64, u64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(seconds, bytes)| Sample { seconds, bytes })
            .collect()
    }

    #[test]
    fn the_window_runs_from_past_the_warm_up_to_the_final_size() {
        // 1,000 bytes of warm-up (10 records), then 9,000 bytes (90 records)
        // grown between 1.0 s and 2.0 s, then nothing.
        let s = samples(&[
            (0.0, 0),
            (0.1, 1_000),
            (0.9, 1_000),
            (1.1, 4_000),
            (1.5, 7_000),
            (1.9, 9_000),
            (2.1, 10_000),
            (2.3, 10_000),
        ]);
        let g = growth(&s, 1_000, 100).unwrap();
        assert_eq!(g.bytes, 9_000);
        assert!((g.seconds - 1.0).abs() < 1e-9, "{g:?}");
        assert_eq!(g.bytes_per_record, 100.0);
        assert!((g.records_per_sec - 90.0).abs() < 1e-9, "{g:?}");
        // A client that does not pause after its warm-up: its share.
        assert_eq!(warmup_boundary(&s, 10, 100), 1_000);
    }

    #[test]
    fn no_growth_or_no_time_between_samples_is_no_figure() {
        assert_eq!(growth(&samples(&[(0.0, 5), (1.0, 5)]), 5, 10), None);
        // Everything appended between two samples: no window to time.
        assert_eq!(growth(&samples(&[(0.0, 0), (1.0, 100)]), 0, 10), None);
        assert_eq!(growth(&[], 0, 10), None);
        assert_eq!(
            growth(&samples(&[(0.0, 0), (1.0, 50), (2.0, 100)]), 0, 0),
            None
        );
    }

    #[test]
    fn log_dirs_are_read_from_the_brokers_properties() {
        let dir =
            std::env::temp_dir().join(format!("lab-logdirs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let props = dir.join("server.properties");
        std::fs::write(&props, "node.id=1\nlog.dirs=/a/data, /b/data\n").unwrap();
        let broker = LocalBroker {
            node_id: 1,
            port: 1,
            controller_port: 2,
            pid: 0,
            command: vec!["java".into(), props.display().to_string()],
            log: PathBuf::new(),
        };
        assert_eq!(
            log_dirs(&broker),
            [PathBuf::from("/a/data"), PathBuf::from("/b/data")]
        );
        let segment = dir.join("00000000000000000000.log");
        std::fs::write(&segment, [0u8; 300]).unwrap();
        std::fs::write(dir.join("00000000000000000000.index"), [0u8; 99]).unwrap();
        assert_eq!(segments_size(&dir), 300);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
