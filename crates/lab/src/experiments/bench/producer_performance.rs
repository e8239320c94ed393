//! Kafka's own `ProducerPerformance` (the Java client) on the same workload
//! as a case: run from the course's cache of Kafka's jars, one JVM per run,
//! with the lab's warm-up (`--warmup-records`, Kafka 4.2 and later), and its
//! summary lines parsed.
//!
//! With a warm-up, `--num-records` counts the warm-up too, and the tool
//! prints two summaries: the whole run, then the steady state (the records
//! after the warm-up, timed from the moment the first of them is handed to
//! the producer, while the warm-up's last ones may still be on their way, to
//! the producer's close). The steady state is its figure.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::broker_log::{growth, warmup_boundary, BrokerLog, LogProbe};
use super::pass::delete_topic;
use super::wire::JavaMetrics;
use super::{BenchOptions, Case};
use crate::cluster::{Backend, Cluster};

/// A run of Kafka's ProducerPerformance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfRun {
    pub command: Vec<String>,
    /// The kafka-tools jar it ran from.
    pub tools_jar: String,
    /// Wall-clock time of the whole process, JVM start included.
    pub wall_seconds: f64,
    /// Of the median run (by throughput).
    pub result: PerfResult,
    /// Records/s of every run, in the order they ran.
    #[serde(default)]
    pub records_per_sec_runs: Vec<f64>,
    /// Warm-up records before the measured ones (`--warmup-records`); 0 for
    /// a tool without the option (before Kafka 4.2) and in older reports.
    #[serde(default)]
    pub warmup_records: u64,
    /// With a warm-up, the summary of the whole run (warm-up included);
    /// `result` is then the steady state's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_run: Option<PerfResult>,
    /// How fast the broker's log grew over the steady state (the median run's).
    #[serde(default)]
    pub broker_log: BrokerLog,
    /// Why `broker_log` is unknown, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_unknown: Option<String>,
    /// Its own metrics of the median run (`--print-metrics`).
    #[serde(default)]
    pub metrics: JavaMetrics,
}

/// The final line of ProducerPerformance's output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfResult {
    pub records: u64,
    pub records_per_sec: f64,
    /// 2^20 bytes per second ("MB/sec" in its output).
    pub mb_per_sec: f64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// The Java to run Kafka's tools with: `$JAVA_HOME/bin/java`, else `java` on the PATH.
pub fn java() -> Option<PathBuf> {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("java"))
                .find(|p| p.is_file())
        })
}

/// The kafka-tools jar in the course's cache: of `version` if cached, else
/// of any cached version. Returns (the libs folder, the jar's file name).
pub fn kafka_tools(version: &str) -> Option<(PathBuf, String)> {
    let kafka = crate::local::cache_dir().join("kafka");
    let tools_in = |libs: &PathBuf| -> Option<String> {
        std::fs::read_dir(libs)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|name| {
                name.starts_with("kafka-tools-")
                    && !name.starts_with("kafka-tools-api")
                    && name.ends_with(".jar")
            })
    };
    let exact = kafka.join(version).join("libs");
    if let Some(jar) = tools_in(&exact) {
        return Some((exact, jar));
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(&kafka)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("libs")))
        .collect();
    others.sort();
    others.into_iter().rev().find_map(|libs| {
        let jar = tools_in(&libs)?;
        Some((libs, jar))
    })
}

/// Whether the kafka-tools jar `tools_jar` (`kafka-tools-4.4.0.jar`) has
/// ProducerPerformance's `--warmup-records`: Kafka 4.2 and later (KIP-1052).
pub fn has_warmup_option(tools_jar: &str) -> bool {
    let version = tools_jar
        .trim_start_matches("kafka-tools-")
        .trim_end_matches(".jar");
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (4, 2),
        _ => false,
    }
}

/// Runs ProducerPerformance for `case` on a fresh topic, after `warmup`
/// records if the tool can, and parses its result. `records`: as many as
/// the lab's run sent (a transactional case may send more than
/// `options.records`, see `BenchOptions::min_commits`).
pub(super) fn producer_performance(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    records: u64,
) -> std::result::Result<PerfRun, String> {
    if cluster.backend() != Backend::Kafka {
        return Err("it needs Apache Kafka, not the mock cluster".into());
    }
    let java = java().ok_or("no Java: set JAVA_HOME or put java on the PATH")?;
    let (libs, tools_jar) = kafka_tools(cluster.kafka_version()).ok_or(
        "Kafka's jars are not in the course's cache (`cargo xtask kafka up` fetches them)",
    )?;
    let warmup = if has_warmup_option(&tools_jar) {
        options.warmup_records
    } else {
        0
    };
    let topic = cluster.fresh_name(&format!("bench-pp-{}", case.slug()));
    cluster
        .create_topic(&topic, options.partitions)
        .map_err(|e| e.to_string())?;
    let command = command_line(
        cluster, case, options, &java, &libs, &topic, records, warmup,
    );
    let probe = LogProbe::find(cluster, &topic, options.partitions);
    // Its JVM's pid, for the probe's CPU readings, once it has started.
    let client = AtomicU32::new(0);
    let run = || run_timed(&command, &client);
    let ((output, wall_seconds), broker) = match &probe {
        Ok(probe) => {
            let (out, samples) = probe.watch(&client, run);
            let from = warmup_boundary(&samples, warmup, records + warmup);
            let grew = growth(&samples, from, records + warmup);
            let why = "the log did not grow over more than one sample: too short a run to time";
            (
                out,
                grew.map(BrokerLog::Grew).ok_or_else(|| why.to_string()),
            )
        }
        Err(why) => (run(), Err(why.clone())),
    };
    delete_topic(cluster, &topic);
    let output = output.map_err(|e| format!("cannot start {}: {e}", command[0]))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summaries = parse_summaries(&stdout);
    let result = summaries
        .steady_state
        .or(summaries.whole_run)
        .ok_or_else(|| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            format!(
            "{}; no result line in its output. stdout ends: {:?}; stderr ends: {:?}",
            output.status,
            stdout.lines().last().unwrap_or(""),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
        })?;
    Ok(PerfRun {
        command,
        tools_jar,
        wall_seconds,
        result,
        records_per_sec_runs: vec![result.records_per_sec],
        warmup_records: warmup,
        whole_run: summaries.steady_state.and(summaries.whole_run),
        broker_log: broker.clone().unwrap_or(BrokerLog::Unknown),
        broker_unknown: broker.err(),
        metrics: JavaMetrics::parse(&stdout),
    })
}

/// Runs `command` to its end, its pid in `client` once spawned (for the
/// probe's CPU readings): its output, and its wall-clock seconds.
fn run_timed(
    command: &[String],
    client: &AtomicU32,
) -> (std::io::Result<std::process::Output>, f64) {
    let started = Instant::now();
    let output = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|child| {
            client.store(child.id(), Ordering::SeqCst);
            child.wait_with_output()
        });
    (output, started.elapsed().as_secs_f64())
}

/// ProducerPerformance's command line for `case`: `records` measured
/// records after `warmup` ones (0: no `--warmup-records`) on `topic`.
#[allow(clippy::too_many_arguments)]
fn command_line(
    cluster: &Cluster,
    case: Case,
    options: &BenchOptions,
    java: &std::path::Path,
    libs: &std::path::Path,
    topic: &str,
    records: u64,
    warmup: u64,
) -> Vec<String> {
    let mut command: Vec<String> = vec![
        java.display().to_string(),
        // Numbers with a decimal point whatever the machine's locale.
        "-Duser.language=en".into(),
        "-Duser.country=US".into(),
        "-cp".into(),
        format!("{}/*", libs.display()),
        "org.apache.kafka.tools.ProducerPerformance".into(),
        "--topic".into(),
        topic.to_string(),
        // The warm-up counts among --num-records.
        "--num-records".into(),
        (records + warmup).to_string(),
        "--record-size".into(),
        options.record_bytes.to_string(),
        "--throughput".into(),
        "-1".into(),
        // Its producer's metrics at the end: records per request, batch size.
        "--print-metrics".into(),
    ];
    if warmup > 0 {
        command.push("--warmup-records".into());
        command.push(warmup.to_string());
    }
    if let Some(interval) = case.commit_interval() {
        command.push("--transactional-id".into());
        command.push(cluster.fresh_name("bench-pp-tx"));
        command.push("--transaction-duration-ms".into());
        command.push(interval.as_millis().to_string());
    }
    command.push("--producer-props".into());
    command.push(format!("bootstrap.servers={}", cluster.bootstrap()));
    for (k, v) in case
        .java_props(options.one_in_flight)
        .into_iter()
        .chain(options.producer_overrides.iter().cloned())
    {
        command.push(format!("{k}={v}"));
    }
    command
}

/// ProducerPerformance's summary lines: the whole run's, and with a warm-up
/// the steady state's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summaries {
    pub whole_run: Option<PerfResult>,
    pub steady_state: Option<PerfResult>,
}

/// Both summary lines of ProducerPerformance's output (Kafka 4.2 and later,
/// with `--warmup-records`), e.g.
///
/// ```text
/// 30000 records sent, 16731.734523 records/sec (16.34 MB/sec), 31.51 ms avg latency, ...
/// 20000 steady state records sent, 43478.260870 records/sec (42.46 MB/sec), 27.06 ms avg latency, ...
/// ```
pub fn parse_summaries(output: &str) -> Summaries {
    let mut summaries = Summaries::default();
    for line in output.lines() {
        let Some(result) = parse_producer_performance(line) else {
            continue;
        };
        if line.contains("steady state records sent") {
            summaries.steady_state = Some(result);
        } else {
            summaries.whole_run = Some(result);
        }
    }
    summaries
}

/// Parses ProducerPerformance's final line, e.g.
///
/// ```text
/// 100000 records sent, 22634.7 records/sec (22.10 MB/sec), 1018.50 ms avg latency,
/// 1598.00 ms max latency, 1005 ms 50th, 1523 ms 95th, 1591 ms 99th, 1596 ms 99.9th.
/// ```
///
/// (one line). The periodic lines before it have no percentiles and are
/// skipped; with a warm-up, the last summary is the steady state's (see
/// `parse_summaries` for both).
pub fn parse_producer_performance(output: &str) -> Option<PerfResult> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("50th"))?;
    let number = |text: &str| -> Option<f64> {
        text.split_whitespace()
            .next()?
            .trim_start_matches('(')
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
    };
    let (mut records, mut rate, mut mb, mut avg, mut max) =
        (None, None, None, None, None);
    let (mut p50, mut p95, mut p99, mut p999) = (None, None, None, None);
    for part in line.trim().trim_end_matches('.').split(", ") {
        let part = part.trim();
        if part.ends_with("records sent") {
            records = number(part).map(|n| n as u64);
        } else if part.contains("records/sec") {
            rate = number(part);
            mb = part
                .split_once('(')
                .and_then(|(_, rest)| rest.strip_suffix("MB/sec)"))
                .and_then(number);
        } else if part.ends_with("ms avg latency") {
            avg = number(part);
        } else if part.ends_with("ms max latency") {
            max = number(part);
        } else if part.ends_with("ms 50th") {
            p50 = number(part);
        } else if part.ends_with("ms 95th") {
            p95 = number(part);
        } else if part.ends_with("ms 99th") {
            p99 = number(part);
        } else if part.ends_with("ms 99.9th") {
            p999 = number(part);
        }
    }
    Some(PerfResult {
        records: records?,
        records_per_sec: rate?,
        mb_per_sec: mb?,
        avg_latency_ms: avg?,
        max_latency_ms: max?,
        p50_ms: p50?,
        p95_ms: p95?,
        p99_ms: p99?,
        p999_ms: p999?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINAL_LINE: &str =
        "100000 records sent, 22634.7 records/sec (22.10 MB/sec), \
        1018.50 ms avg latency, 1598.00 ms max latency, 1005 ms 50th, 1523 ms 95th, \
        1591 ms 99th, 1596 ms 99.9th.";

    #[test]
    fn parses_producer_performance_output() {
        let output = format!(
            "61234 records sent, 12246.8 records/sec (11.96 MB/sec), 900.1 ms avg latency, 1400.0 ms max latency.\n\
             {FINAL_LINE}\n"
        );
        let r = parse_producer_performance(&output).unwrap();
        assert_eq!(r.records, 100_000);
        assert_eq!(r.records_per_sec, 22634.7);
        assert_eq!(r.mb_per_sec, 22.10);
        assert_eq!(r.avg_latency_ms, 1018.5);
        assert_eq!(r.max_latency_ms, 1598.0);
        assert_eq!(
            (r.p50_ms, r.p95_ms, r.p99_ms, r.p999_ms),
            (1005.0, 1523.0, 1591.0, 1596.0)
        );
    }

    #[test]
    fn with_a_warm_up_the_steady_state_is_the_figure() {
        // Kafka 4.4.0's output with --num-records 30000 --warmup-records 10000.
        let output = "Warmup first 10000 records. Steady state results will print after the complete test summary.\n\
            21000 records sent, 4200.0 records/sec (4.10 MB/sec), 900.1 ms avg latency, 1400.0 ms max latency.\n\
            30000 records sent, 16731.734523 records/sec (16.34 MB/sec), 31.51 ms avg latency, 1041.00 ms max latency, 22 ms 50th, 70 ms 95th, 90 ms 99th, 117 ms 99.9th.\n\
            20000 steady state records sent, 43478.260870 records/sec (42.46 MB/sec), 27.06 ms avg latency, 90.00 ms max latency, 18 ms 50th, 73 ms 95th, 86 ms 99th, 90 ms 99.9th.\n";
        let s = parse_summaries(output);
        let (whole, steady) = (s.whole_run.unwrap(), s.steady_state.unwrap());
        assert_eq!(
            (whole.records, whole.records_per_sec),
            (30_000, 16731.734523)
        );
        assert_eq!(
            (steady.records, steady.records_per_sec),
            (20_000, 43478.26087)
        );
        assert_eq!(steady.mb_per_sec, 42.46);
        assert_eq!(parse_producer_performance(output), Some(steady));
        // Without a warm-up there is one summary.
        let s = parse_summaries(FINAL_LINE);
        assert_eq!(
            (s.whole_run.map(|r| r.records), s.steady_state),
            (Some(100_000), None)
        );
    }

    #[test]
    fn the_warm_up_is_passed_to_tools_that_have_the_option() {
        assert!(has_warmup_option("kafka-tools-4.4.0.jar"));
        assert!(has_warmup_option("kafka-tools-4.2.0.jar"));
        assert!(has_warmup_option("kafka-tools-5.0.1.jar"));
        assert!(!has_warmup_option("kafka-tools-4.1.1.jar"));
        assert!(!has_warmup_option("kafka-tools-3.9.0.jar"));
        assert!(!has_warmup_option("kafka-tools.jar"));

        let cluster = Cluster::mock().unwrap();
        let options = BenchOptions::new(1000, 100);
        let java = std::path::Path::new("/usr/bin/java");
        let libs = std::path::Path::new("/kafka/libs");
        let args = |warmup| {
            command_line(
                &cluster,
                Case::AcksAll,
                &options,
                java,
                libs,
                "t",
                1000,
                warmup,
            )
        };
        let after = |args: &[String], flag: &str| -> Option<String> {
            let i = args.iter().position(|a| a == flag)?;
            args.get(i + 1).cloned()
        };
        let warm = args(100);
        // The warm-up counts among --num-records: 1000 measured after 100.
        assert_eq!(after(&warm, "--num-records").as_deref(), Some("1100"));
        assert_eq!(after(&warm, "--warmup-records").as_deref(), Some("100"));
        let cold = args(0);
        assert_eq!(after(&cold, "--num-records").as_deref(), Some("1000"));
        assert!(!cold.iter().any(|a| a == "--warmup-records"), "{cold:?}");
    }

    #[test]
    fn parses_older_formats_and_refuses_incomplete_ones() {
        // Kafka 3.x printed the rate with six decimals.
        let old = "50000 records sent, 49950.049950 records/sec (48.78 MB/sec), 3.21 ms avg latency, \
                   210.00 ms max latency, 2 ms 50th, 5 ms 95th, 20 ms 99th, 200 ms 99.9th.";
        let r = parse_producer_performance(old).unwrap();
        assert_eq!(r.records_per_sec, 49950.04995);
        assert_eq!(r.p999_ms, 200.0);
        // Only periodic lines, an error, a cut-off line: no result.
        assert!(parse_producer_performance(
            "5000 records sent, 999.8 records/sec (0.98 MB/sec), 1.0 ms avg latency, 2.0 ms max latency."
        )
        .is_none());
        assert!(
            parse_producer_performance("Exception in thread \"main\" ...").is_none()
        );
        assert!(
            parse_producer_performance(&FINAL_LINE[..FINAL_LINE.len() - 20]).is_none()
        );
        assert!(
            parse_producer_performance(&FINAL_LINE.replace("22634.7", "NaN")).is_none()
        );
    }
}
