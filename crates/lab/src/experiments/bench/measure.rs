//! What [`bench`] does with the cases: the producer-alone runs in interleaved
//! rounds, then per case its pass with a consumer reading along and its
//! ProducerPerformance runs, and from all of them the case's figure.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::host::{load_average, Settle};
use super::pass::{produce_pass, Pass};
use super::payload::measure_encoding;
use super::producer_performance::producer_performance;
use super::report::count;
use super::{BenchOptions, BenchReport, Case, EndToEnd, Figure, PerfRun};
use crate::cluster::{librdkafka_version, Cluster};
use crate::error::{Error, Result};
use crate::semantics::Semantic;

/// Runs every case of `options` on `cluster`.
pub fn bench(cluster: &Cluster, options: &BenchOptions) -> Result<BenchReport> {
    bench_with_progress(cluster, options, &mut |_| {})
}

/// As [`bench`](fn@bench), saying what it is doing through `progress`.
pub fn bench_with_progress(
    cluster: &Cluster,
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    if options.records == 0 {
        return Err(Error::BadConfig(
            "a benchmark needs at least one record".into(),
        ));
    }
    // Every case writes its warm-up and its records into one fresh topic.
    cluster.check_fits(
        "a benchmark case (its warm-up included)",
        options.warmup_records + options.records,
        options.partitions,
        options.record_bytes as u64,
    )?;
    let started = Instant::now();
    let load_before = load_average();
    let started_unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut session = Session {
        cluster,
        options,
        settle: Settle::new(options.settle_dirty_mb),
        notes: vec![client_defaults_note(options)],
        progress,
    };
    (session.progress)("measuring payload encoding");
    let payload_encoding = measure_encoding(options.record_bytes);
    let cases = session.runnable_cases();
    let rounds = session.rounds(&cases)?;
    let figures = session.figures(&cases, rounds);
    session.notes.extend(method_notes(options, &figures));
    Ok(BenchReport {
        backend: cluster.backend(),
        backend_description: cluster.describe(),
        brokers: cluster.broker_count(),
        kafka_version: cluster.kafka_version().to_string(),
        librdkafka_version: librdkafka_version(),
        options: options.clone(),
        load_before,
        load_after: load_average(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        started_unix_secs,
        seconds: started.elapsed().as_secs_f64(),
        payload_encoding,
        settle_seconds: session.settle.waited.as_secs_f64(),
        max_dirty_mb_at_start: session.settle.max_dirty_mb,
        figures,
        notes: session.notes,
    })
}

/// A benchmark under way: where and what it measures, and what it has noted
/// so far.
struct Session<'a> {
    cluster: &'a Cluster,
    options: &'a BenchOptions,
    progress: &'a mut dyn FnMut(&str),
    settle: Settle,
    notes: Vec<String>,
}

impl Session<'_> {
    /// Says which run comes next, and lets the page cache settle before it.
    fn next_run(&mut self, what: &str) {
        (self.progress)(what);
        self.settle.wait(&mut *self.progress);
    }

    /// The options' cases, less those the cluster cannot run faithfully
    /// (transactions on the mock cluster), each skipped with a note.
    fn runnable_cases(&mut self) -> Vec<Case> {
        let mut cases = Vec::new();
        for &case in &self.options.cases {
            if case.commit_interval().is_some() {
                if let Err(e) = self.cluster.require_faithful(Semantic::ExactlyOnce) {
                    self.notes.push(format!("{} skipped: {e}", case.label()));
                    continue;
                }
            }
            cases.push(case);
        }
        cases
    }

    /// The producer-alone runs in rounds, each round every case once, so
    /// that a change in the machine's load spreads over every case instead
    /// of landing on one; in a round, right after a case's lab run, its
    /// ProducerPerformance run on as many records, so that the two clients of
    /// a pair share the machine's mood. Per case, its runs by round (None: a
    /// failed run, or none in that round).
    fn rounds(&mut self, cases: &[Case]) -> Result<Rounds> {
        let repetitions = self.options.repetitions.max(1);
        let pp_runs = if self.options.producer_performance {
            self.options.producer_performance_runs.max(1)
        } else {
            0
        };
        let rounds = repetitions.max(pp_runs);
        // A failed run (say, the broker stalled) is left out and noted; three
        // failures in a row end the benchmark.
        let mut lab: Vec<Vec<Option<Pass>>> =
            cases.iter().map(|_| Vec::new()).collect();
        let mut pp: Vec<Vec<Option<PerfRun>>> =
            cases.iter().map(|_| Vec::new()).collect();
        let mut failures_in_a_row = 0;
        for r in 1..=rounds {
            for (i, &case) in cases.iter().enumerate() {
                let pass = if r <= repetitions {
                    self.next_run(&format!(
                        "{}: producer alone, run {r} of {repetitions}",
                        case.label()
                    ));
                    match produce_pass(self.cluster, case, self.options, false) {
                        Ok(pass) => {
                            failures_in_a_row = 0;
                            Some(pass)
                        }
                        Err(e) => {
                            failures_in_a_row += 1;
                            if failures_in_a_row >= 3 {
                                return Err(e);
                            }
                            self.notes.push(format!(
                                "{}: run {r} failed, left out: {e}",
                                case.label()
                            ));
                            None
                        }
                    }
                } else {
                    None
                };
                // As many records as the lab's run of the round sent (a
                // transactional case may send more than asked).
                let records = pass
                    .as_ref()
                    .or_else(|| lab[i].iter().rev().flatten().next())
                    .map_or(self.options.records, |p| p.throughput.records);
                lab[i].push(pass);
                let java = (r <= pp_runs)
                    .then(|| self.producer_performance(case, records, r))
                    .flatten();
                pp[i].push(java);
            }
        }
        Ok(Rounds { lab, pp })
    }

    /// The figure of every case that has a producer-alone run left.
    fn figures(&mut self, cases: &[Case], rounds: Rounds) -> Vec<Figure> {
        let rates: Vec<Vec<Option<f64>>> = rounds
            .lab
            .iter()
            .map(|r| {
                r.iter()
                    .map(|p| p.as_ref().map(|p| p.throughput.records_per_sec))
                    .collect()
            })
            .collect();
        let acks_all = cases.iter().position(|&c| c == Case::AcksAll);
        let mut figures = Vec::new();
        let runs = rounds.lab.into_iter().zip(rounds.pp);
        for (i, (&case, (lab, pp))) in cases.iter().zip(runs).enumerate() {
            let vs_acks_all = acks_all.and_then(|a| paired_ratio(&rates[i], &rates[a]));
            figures.extend(self.figure(case, lab, pp, vs_acks_all));
        }
        figures
    }

    /// The figure of `case`: its median producer-alone run, its pass with a
    /// consumer if the options ask for it, and its ProducerPerformance runs
    /// `pp` (by round, as `lab`), each paired with the lab's run of its
    /// round. None (and a note) if every producer-alone run failed.
    fn figure(
        &mut self,
        case: Case,
        lab: Vec<Option<Pass>>,
        pp: Vec<Option<PerfRun>>,
        vs_acks_all: Option<f64>,
    ) -> Option<Figure> {
        let label = case.label();
        let pairs: Vec<Option<f64>> = lab
            .iter()
            .zip(pp.iter().chain(std::iter::repeat(&None)))
            .map(|(l, p)| {
                let ratio = l.as_ref()?.throughput.records_per_sec
                    / p.as_ref()?.result.records_per_sec;
                ratio.is_finite().then_some(ratio)
            })
            .collect();
        let runs: Vec<Pass> = lab.into_iter().flatten().collect();
        if runs.is_empty() {
            self.notes
                .push(format!("{label}: every run failed, so it has no figure"));
            return None;
        }
        let throughput_runs: Vec<f64> =
            runs.iter().map(|p| p.throughput.records_per_sec).collect();
        let failed = runs.iter().map(|p| p.failed).sum();
        let first_error = runs.iter().find_map(|p| p.first_error.clone());
        let alone = median_by(runs, |p| p.throughput.records_per_sec)?;
        if let Some(why) = &alone.broker_unknown {
            self.note_once(format!("broker-side figures unknown: {why}"));
        }
        let end_to_end = if self.options.end_to_end {
            self.end_to_end(case)
        } else {
            None
        };
        let producer_performance = median_java(pp);
        if let Some(why) = producer_performance
            .as_ref()
            .and_then(|p| p.broker_unknown.clone())
        {
            self.note_once(format!("broker-side figures unknown: {why}"));
        }
        Some(Figure {
            case,
            label,
            backend_description: self.cluster.describe(),
            kafka_version: self.cluster.kafka_version().to_string(),
            producer_settings: alone.settings,
            records: self.options.records,
            record_bytes: self.options.record_bytes,
            failed,
            first_error,
            throughput: alone.throughput,
            throughput_runs,
            ack_latency: alone.ack_latency,
            transactions: alone.transactions,
            end_to_end,
            producer_performance,
            vs_acks_all,
            vs_producer_performance: median(pairs.iter().flatten().copied().collect()),
            vs_producer_performance_pairs: pairs.into_iter().flatten().collect(),
            broker_log: alone.broker_log,
            wire: alone.wire,
        })
    }

    /// Adds `note` unless it is there already.
    fn note_once(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The second pass of `case`, with a consumer reading along; None (and a
    /// note) if it failed.
    fn end_to_end(&mut self, case: Case) -> Option<EndToEnd> {
        let label = case.label();
        self.next_run(&format!("{label}: with a consumer reading along"));
        match produce_pass(self.cluster, case, self.options, true) {
            Ok(pass) => {
                if pass.received < self.options.records {
                    self.notes.push(format!(
                        "{label}: the end-to-end reader received {} of {} records",
                        pass.received, self.options.records
                    ));
                }
                Some(EndToEnd {
                    received: pass.received,
                    latency: pass.end_to_end.unwrap_or_default(),
                    throughput: pass.throughput,
                    ack_latency: pass.ack_latency,
                })
            }
            Err(e) => {
                self.notes
                    .push(format!("{label}: the end-to-end pass failed: {e}"));
                None
            }
        }
    }

    /// ProducerPerformance's run `r` on `case`, sending `records`; None (and
    /// a note) if it did not run.
    fn producer_performance(
        &mut self,
        case: Case,
        records: u64,
        r: u32,
    ) -> Option<PerfRun> {
        let label = case.label();
        self.next_run(&format!("{label}: ProducerPerformance, run {r}"));
        producer_performance(self.cluster, case, self.options, records)
            .map_err(|e| {
                self.notes.push(format!(
                    "{label}: ProducerPerformance run {r} did not run: {e}"
                ))
            })
            .ok()
    }
}

/// Per case, its runs by round: the lab's producer alone, and ProducerPerformance.
struct Rounds {
    lab: Vec<Vec<Option<Pass>>>,
    pp: Vec<Vec<Option<PerfRun>>>,
}

/// The median of ProducerPerformance's runs, with the rate of every run that
/// ran; None if none did.
fn median_java(runs: Vec<Option<PerfRun>>) -> Option<PerfRun> {
    let runs: Vec<PerfRun> = runs.into_iter().flatten().collect();
    let rates: Vec<f64> = runs.iter().map(|p| p.result.records_per_sec).collect();
    let median = median_by(runs, |p| p.result.records_per_sec)?;
    Some(PerfRun {
        records_per_sec_runs: rates,
        ..median
    })
}

/// The first note: what both clients are set to.
fn client_defaults_note(options: &BenchOptions) -> String {
    let mut note = String::from(
        "both clients batch up to 1,000,000 bytes per partition (librdkafka's default batch.size; \
         the Java client's default of 16384 is raised to match) and otherwise use their \
         defaults: linger.ms=5 in both, librdkafka also caps a batch at batch.num.messages=10000; \
         no compression",
    );
    if !options.producer_overrides.is_empty() {
        let extra: Vec<String> = options
            .producer_overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        note += &format!("; overridden in both: {}", extra.join(" "));
    }
    note
}

/// How the figures were taken, for the notes after them.
fn method_notes(options: &BenchOptions, figures: &[Figure]) -> Vec<String> {
    let mut notes = Vec::new();
    let java: Vec<&PerfRun> = figures
        .iter()
        .filter_map(|f| f.producer_performance.as_ref())
        .collect();
    if let Some(first) = java.first() {
        let warmup = if java.iter().all(|p| p.warmup_records > 0) {
            format!(
                "after the same warm-up as the lab's (--warmup-records {}; its figure is the \
                 steady-state summary, which it times from handing over the first record after \
                 the warm-up to closing the producer)",
                first.warmup_records
            )
        } else {
            "without a warm-up (its tool, from a Kafka before 4.2, has no --warmup-records), \
             so its time includes the JVM's JIT"
                .to_string()
        };
        notes.push(format!(
            "ProducerPerformance: {} per case, each in a fresh JVM right after a lab run of the \
             case, {warmup}, sending a random payload without a key; its figure is the median \
             run, and lab ÷ Java the median of the ratios of the pairs (lab run, then Java run), \
             with their range",
            count(options.producer_performance_runs.max(1), "run"),
        ));
    }
    if figures
        .iter()
        .any(|f| f.broker_log.records_per_sec().is_some())
    {
        notes.push(format!(
            "broker: how fast the topic's log grew on the broker's disk over the measured window \
             (its .log files sampled every {} ms, from their growing past the warm-up to their \
             final size), in records/s (log bytes over the log's bytes per record); a client's \
             figure more than {:.0} % away from its broker's is flagged",
            super::SAMPLE_EVERY.as_millis(),
            super::DISAGREEMENT * 100.0
        ));
    }
    if options.end_to_end {
        notes.push(
            "end-to-end latency: the consumer uses librdkafka's defaults (fetch.wait.max.ms=500) \
             and read_committed, so a transactional record waits for its commit"
                .into(),
        );
    }
    notes
}

/// The median of `values` (for an even count, the mean of the two middle
/// ones); None if there are none.
pub(super) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The median of `runs[i] / base[i]` over the rounds where both ran; for an
/// even count, the mean of the two middle ratios.
pub fn paired_ratio(runs: &[Option<f64>], base: &[Option<f64>]) -> Option<f64> {
    median(
        runs.iter()
            .zip(base)
            .filter_map(|(r, b)| Some((*r)? / (*b)?))
            .collect(),
    )
}

/// The run of median `rate` (the lower middle of an even number); None if
/// there are no runs.
fn median_by<T>(mut runs: Vec<T>, rate: impl Fn(&T) -> f64) -> Option<T> {
    runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let middle = runs.len().checked_sub(1)? / 2;
    Some(runs.swap_remove(middle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_paired_by_round() {
        // Each round's ratio, then their median: a round in which the machine
        // was busy for one of the two cases only is outvoted.
        let case = [Some(200.0), Some(100.0), Some(210.0)];
        let base = [Some(400.0), Some(400.0), Some(420.0)];
        assert_eq!(paired_ratio(&case, &base), Some(0.5));
        assert_eq!(
            paired_ratio(&[Some(3.0), Some(1.0)], &[Some(4.0), Some(4.0)]),
            Some(0.5)
        );
        // A round where either failed is left out.
        let gaps = [Some(1.0), None, Some(2.0), Some(9.0)];
        let base = [Some(2.0), Some(1.0), None, Some(18.0)];
        assert_eq!(paired_ratio(&gaps, &base), Some(0.5));
        assert_eq!(paired_ratio(&[], &[]), None);
        assert_eq!(paired_ratio(&[Some(1.0)], &[Some(0.0)]), None);
    }

    #[test]
    fn the_median_run_is_the_lower_middle() {
        let rate = |r: &f64| *r;
        assert_eq!(median_by(vec![3.0, 1.0, 2.0], rate), Some(2.0));
        assert_eq!(median_by(vec![4.0, 1.0, 3.0, 2.0], rate), Some(2.0));
        assert_eq!(median_by(Vec::new(), rate), None);
    }
}
