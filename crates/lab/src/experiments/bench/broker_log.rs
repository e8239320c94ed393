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
//!
//! The same samples read the CPU time the client process and the broker
//! processes have used (`/proc/<pid>/stat`), so that the window also says
//! how many microseconds of CPU each record cost on each side: on a machine
//! whose few cores the client shares with the broker, that, more than the
//! network, sets how fast a client can go.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    /// CPU time per record over the window, on each side (None in reports
    /// recorded before the bench read it, or where /proc could not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuPerRecord>,
}

/// Microseconds of CPU (user and system, every thread) per record appended
/// over a measured window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuPerRecord {
    /// The client's process: the lab's own, or ProducerPerformance's JVM.
    pub client_us: f64,
    /// The broker processes (all of them, on a local cluster).
    pub broker_us: f64,
}

impl CpuPerRecord {
    /// The most records per second `cores` cores could carry if client and
    /// broker used them fully and nothing else ran: a ceiling set by CPU.
    pub fn ceiling(&self, cores: usize) -> Option<f64> {
        let per_record = self.client_us + self.broker_us;
        (per_record > 0.0).then(|| cores as f64 * 1e6 / per_record)
    }
}

/// Where one topic's partitions live on the local brokers' disks.
#[derive(Clone, Debug)]
pub(super) struct LogProbe {
    /// Per partition, its folder on every broker that holds a replica.
    partitions: Vec<Vec<PathBuf>>,
    /// The local brokers' processes, whose CPU time the samples read.
    broker_pids: Vec<u32>,
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
                return Ok(LogProbe {
                    partitions: found,
                    broker_pids: local.brokers.iter().map(|b| b.pid).collect(),
                });
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

    /// The CPU time the brokers have used so far, in clock ticks.
    fn broker_ticks(&self) -> Option<u64> {
        self.broker_pids.iter().map(|&pid| cpu_ticks(pid)).sum()
    }

    /// A sample now; `client`: the client's process (0 while it has not
    /// started). A process that has just ended keeps its last reading.
    fn sample(
        &self,
        origin: Instant,
        client: &AtomicU32,
        last: Option<&Sample>,
    ) -> Sample {
        let pid = client.load(Ordering::SeqCst);
        let carried = |read: Option<u64>, before: Option<u64>| read.or(before);
        Sample {
            seconds: origin.elapsed().as_secs_f64(),
            bytes: self.size(),
            client_ticks: carried(
                (pid != 0).then(|| cpu_ticks(pid)).flatten(),
                last.and_then(|s| s.client_ticks),
            ),
            broker_ticks: carried(
                self.broker_ticks(),
                last.and_then(|s| s.broker_ticks),
            ),
        }
    }

    /// Runs `body` while sampling the log's size and the CPU time of the
    /// client process `client` (its pid, set by `body` once it has one) and
    /// of the brokers; after it, samples on until the size has not changed
    /// for 50 ms (at most a second), so that what the broker appends last (a
    /// commit marker) is seen.
    pub(super) fn watch<T>(
        &self,
        client: &AtomicU32,
        body: impl FnOnce() -> T,
    ) -> (T, Vec<Sample>) {
        let done = AtomicBool::new(false);
        let origin = Instant::now();
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut samples = vec![self.sample(origin, client, None)];
                let mut settled_since: Option<Instant> = None;
                let mut done_at: Option<Instant> = None;
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    let sample = self.sample(origin, client, samples.last());
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

/// The log size at a time since sampling started, and the CPU time the
/// client and the brokers had used by then (clock ticks; None: unknown).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sample {
    pub(super) seconds: f64,
    pub(super) bytes: u64,
    pub(super) client_ticks: Option<u64>,
    pub(super) broker_ticks: Option<u64>,
}

/// The CPU time process `pid` has used (user and system, every thread), in
/// clock ticks: fields 14 and 15 of `/proc/<pid>/stat`, counted after the
/// command name's closing parenthesis (the name may hold spaces).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is the first: utime is 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
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
    // The first sample past the mark, and the one before it.
    let crossing = |past: &dyn Fn(u64) -> bool| -> Option<(usize, usize)> {
        let i = samples.iter().position(|s| past(s.bytes))?;
        Some((i.checked_sub(1)?, i))
    };
    let midpoint =
        |(a, b): (usize, usize)| (samples[a].seconds + samples[b].seconds) / 2.0;
    let start = crossing(&|b| b > window_from)?;
    let end = crossing(&|b| b >= last)?;
    let seconds = midpoint(end) - midpoint(start);
    if seconds <= 0.0 {
        return None;
    }
    let bytes = last - window_from;
    let bytes_per_record = (last - first) as f64 / records as f64;
    let appended = bytes as f64 / bytes_per_record;
    // CPU from the sample before the window's first growth to the one that
    // saw its final size: the window with at most a sample to spare each side.
    let (from, to) = (&samples[start.0], &samples[end.1]);
    let used = |a: Option<u64>, b: Option<u64>| {
        Some(b?.checked_sub(a?)? as f64 / ticks_per_sec() * 1e6 / appended)
    };
    let cpu = match (
        used(from.client_ticks, to.client_ticks),
        used(from.broker_ticks, to.broker_ticks),
    ) {
        (Some(client_us), Some(broker_us)) => Some(CpuPerRecord {
            client_us,
            broker_us,
        }),
        _ => None,
    };
    Some(LogGrowth {
        bytes,
        seconds,
        bytes_per_record,
        records_per_sec: appended / seconds,
        cpu,
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
            .map(|&(seconds, bytes)| Sample {
                seconds,
                bytes,
                client_ticks: None,
                broker_ticks: None,
            })
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
    fn cpu_per_record_is_read_over_the_window() {
        // Ticks (100 a second) at each sample: the client used 20 and the
        // broker 50 between the sample before the window and the one that
        // saw the final size, over 90 records.
        let mut s = samples(&[(0.0, 0), (0.9, 1_000), (1.1, 4_000), (2.1, 10_000)]);
        for (sample, (client, broker)) in
            s.iter_mut().zip([(0, 0), (5, 10), (15, 40), (25, 60)])
        {
            sample.client_ticks = Some(client);
            sample.broker_ticks = Some(broker);
        }
        let cpu = growth(&s, 1_000, 100).unwrap().cpu.unwrap();
        let per_tick = 1e6 / ticks_per_sec() / 90.0;
        assert!((cpu.client_us - 20.0 * per_tick).abs() < 1e-6, "{cpu:?}");
        assert!((cpu.broker_us - 50.0 * per_tick).abs() < 1e-6, "{cpu:?}");
        // Both sides at 5 us a record: two cores carry 200,000 records/s.
        let even = CpuPerRecord {
            client_us: 5.0,
            broker_us: 5.0,
        };
        assert_eq!(even.ceiling(2), Some(200_000.0));
        // No CPU readings, no CPU figure (the throughput figure stays).
        s.iter_mut().for_each(|x| x.client_ticks = None);
        assert_eq!(growth(&s, 1_000, 100).unwrap().cpu, None);
    }

    #[test]
    fn a_process_cpu_time_is_read_from_proc() {
        let before = cpu_ticks(std::process::id()).unwrap();
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = cpu_ticks(std::process::id()).unwrap();
        assert!(after > before, "100 ms of busy work used no CPU ticks");
        assert_eq!(cpu_ticks(u32::MAX), None);
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
