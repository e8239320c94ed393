//! The exactly-once history checker (`lab::audit::checker`): a clean history
//! recorded from a real pipeline run (the fixture), and the same history with
//! each anomaly planted in it, each caught with the right ids. On the
//! course's own broker, a real run's verdict is checked against a recount of
//! the broker's log files by Apache Kafka's `DumpLogSegments`.
//!
//! The fixture tests run everywhere; the real-Kafka ones are ignored without
//! KAFKA_BOOTSTRAP_SERVERS. By hand:
//!
//!     KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
//!     cargo test -p lab --test checker -- --include-ignored

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use lab::audit::checker::{
    self, recorder, FaultStep, GroupOffset, History, Mark, Seen,
};
use lab::audit::dump_log;
use lab::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use lab::{Cluster, Outcome, RunOptions, Semantic};

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checker-history.json")
}

/// The clean history recorded from a real run (see `a_real_run_...` below).
fn fixture() -> History {
    let text = std::fs::read_to_string(fixture_path())
        .expect("the fixture is in the repository");
    History::from_json(&text).unwrap()
}

/// The committed output record of `id`.
fn committed(h: &History, id: u64) -> Seen {
    *h.committed
        .iter()
        .find(|r| r.id == id)
        .expect("id in the output")
}

/// The input records of `partition`, in offset order.
fn input_of(h: &History, partition: i32) -> Vec<Seen> {
    let mut rs: Vec<Seen> = h
        .input
        .iter()
        .filter(|r| r.partition == partition)
        .copied()
        .collect();
    rs.sort_by_key(|r| r.offset);
    rs
}

/// A finished exactly-once pipeline run: `records` input records on 3
/// partitions, through the processor to the output topic.
fn run_pipeline(cluster: &Cluster, records: u64) -> Outcome {
    let options = RunOptions {
        transaction_size: 50,
        ..RunOptions::records(records)
    };
    lab::run(cluster, Semantic::ExactlyOnce, &options).expect("the pipeline runs")
}

/// Writes `ids` to `topic` in one transaction of a fresh transactional
/// producer and aborts it: what a fenced processor leaves in the log.
fn write_aborted(cluster: &Cluster, topic: &str, ids: std::ops::Range<u64>) {
    let tid = cluster.fresh_name("checker-aborter");
    let producer: BaseProducer = Semantic::ExactlyOnce
        .producer_config(cluster.bootstrap(), Some(&tid), &[])
        .unwrap()
        .create()
        .expect("a transactional producer");
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    for id in ids {
        let key = lab::record::key(id);
        let value = lab::record::value(id, 100);
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    producer.abort_transaction(Duration::from_secs(30)).unwrap();
}

// ---- The recorded clean history, and each anomaly planted in it ----

#[test]
fn the_recorded_clean_history_is_judged_clean() {
    let h = fixture();
    // The fixture is what it claims to be: a few hundred records on 3
    // partitions, with records of an aborted transaction in the output's log.
    assert_eq!(h.input.len(), 300);
    assert_eq!(
        h.input
            .iter()
            .map(|r| r.partition)
            .collect::<BTreeSet<_>>()
            .len(),
        3
    );
    let aborted = h
        .aborted
        .as_ref()
        .expect("the fixture knows its aborted positions");
    assert!(!aborted.is_empty());
    assert!(h.uncommitted.len() > h.committed.len());
    let v = checker::check(&h).unwrap();
    assert!(v.clean(), "{v}");
    assert!(v.same_ids());
    assert_eq!(v.aborted_in_log, aborted.len() as u64);
    // The processor keeps each key's partition: p goes to p.
    let map: BTreeMap<i32, BTreeSet<i32>> =
        (0..3).map(|p| (p, BTreeSet::from([p]))).collect();
    assert_eq!(v.partition_map, map);
    let text = v.to_string();
    assert!(text.contains("Verdict: exactly once held"), "{text}");
}

#[test]
fn a_planted_loss_is_found_with_its_id_and_the_fault_in_force() {
    let mut h = fixture();
    let partition = input_of(&h, 1);
    let (before, victim) = (partition[40], partition[41]);
    h.committed.retain(|r| r.id != victim.id);
    h.uncommitted.retain(|r| r.id != victim.id);
    // It went missing when the processor wrote its predecessor: a fault in
    // force exactly then is named, one before it is not.
    let t = committed(&h, before.id).at_ms;
    h.faults = vec![
        FaultStep {
            name: "broker SIGKILL + restart".into(),
            from: Mark::Ms(t),
            until: Some(Mark::Ms(t + 1)),
        },
        FaultStep {
            name: "follower SIGSTOP".into(),
            from: Mark::Records(0),
            until: Some(Mark::Ms(t)),
        },
    ];
    let v = checker::check(&h).unwrap();
    assert_eq!(v.lost.ids(), [victim.id]);
    assert_eq!(v.lost.shown[0].faults, ["broker SIGKILL + restart"]);
    // The group's offsets say it was done: lost for good.
    assert_eq!(v.over_committed.ids(), [victim.id]);
    assert_eq!(
        v.duplicated.count + v.out_of_order.count + v.aborted_reads.count,
        0
    );
    assert!(!v.same_ids());
    println!("{v}");
}

#[test]
fn the_timeline_chart_marks_each_planted_anomaly_and_the_fault() {
    let mut h = fixture();
    let victim = input_of(&h, 1)[41];
    h.committed.retain(|r| r.id != victim.id);
    h.uncommitted.retain(|r| r.id != victim.id);
    h.faults.push(FaultStep {
        name: "processor SIGKILL + restart".into(),
        from: Mark::Records(100),
        until: Some(Mark::Records(150)),
    });
    let v = checker::check(&h).unwrap();
    let svg = lab::charts::history_timeline(&h, &v).to_svg_string();
    for text in [
        lab::charts::timeline::WRITTEN,
        "lost (1)",
        "offsets past output (1)",
        "processor SIGKILL + restart",
    ] {
        assert!(svg.contains(text), "the chart lacks {text:?}");
    }
    let clean = fixture();
    let svg = lab::charts::history_timeline(&clean, &checker::check(&clean).unwrap())
        .to_svg_string();
    assert!(svg.contains("exactly once held") && !svg.contains("lost ("));
}

#[test]
fn a_planted_duplicate_is_found_and_is_not_called_a_reordering() {
    let mut h = fixture();
    let copy = committed(&h, input_of(&h, 0)[5].id);
    // Written again after the aborted records at the partition's end.
    let end = h
        .uncommitted
        .iter()
        .filter(|r| r.partition == copy.partition)
        .map(|r| r.offset)
        .max();
    let again = Seen {
        offset: end.unwrap() + 2,
        at_ms: h.committed.iter().map(|r| r.at_ms).max().unwrap() + 10,
        ..copy
    };
    h.committed.push(again);
    h.uncommitted.push(again);
    let v = checker::check(&h).unwrap();
    assert_eq!(v.duplicated.ids(), [copy.id]);
    assert_eq!(v.duplicated.shown[0].at_ms, again.at_ms);
    assert_eq!(v.out_of_order.count + v.lost.count, 0, "{v}");
}

#[test]
fn a_planted_aborted_read_is_found_by_its_position() {
    let mut h = fixture();
    let aborted = h.aborted.clone().unwrap();
    let leaked = *h
        .uncommitted
        .iter()
        .find(|r| r.partition == aborted[0].partition && r.offset == aborted[0].offset)
        .expect("the aborted position is in the log");
    h.committed.push(leaked);
    let v = checker::check(&h).unwrap();
    assert_eq!(v.aborted_reads.ids(), [leaked.id]);
    // Its id was committed too: the reader saw it twice.
    assert_eq!(v.duplicated.ids(), [leaked.id]);
    // Without the log's markers the leak cannot be told apart.
    h.aborted = None;
    let blind = checker::check(&h).unwrap();
    assert_eq!(blind.aborted_reads.count, 0);
    assert!(blind.to_string().contains("not checked"), "{blind}");
}

#[test]
fn a_planted_reordering_is_found_on_the_record_that_moved_later() {
    let mut h = fixture();
    // Two neighbours in output partition 2, both from input partition 2.
    let mut out: Vec<usize> = (0..h.committed.len())
        .filter(|&i| h.committed[i].partition == 2)
        .collect();
    out.sort_by_key(|&i| h.committed[i].offset);
    let (a, b) = (out[10], out[11]);
    let (first, second) = (h.committed[a].id, h.committed[b].id);
    h.committed[a].id = second;
    h.committed[b].id = first;
    let v = checker::check(&h).unwrap();
    assert_eq!(v.out_of_order.ids(), [first]);
    assert_eq!(v.lost.count + v.duplicated.count, 0, "{v}");
}

#[test]
fn offsets_past_the_output_and_behind_it_are_both_found() {
    // The processor never wrote the last three records of partition 2, yet
    // the group's offset covers them.
    let mut h = fixture();
    let tail: Vec<u64> = input_of(&h, 2).iter().rev().take(3).map(|r| r.id).collect();
    h.committed.retain(|r| !tail.contains(&r.id));
    h.uncommitted.retain(|r| !tail.contains(&r.id));
    let v = checker::check(&h).unwrap();
    let mut want = tail.clone();
    want.sort_unstable();
    assert_eq!(v.over_committed.ids(), want);
    assert_eq!(v.lost.ids(), want);

    // The group's offset of partition 0 moved back by five records: their
    // output is committed, a restart would read them again.
    let mut h = fixture();
    let p0 = input_of(&h, 0);
    let back = p0[p0.len() - 5].offset;
    h.group_offsets = h
        .group_offsets
        .iter()
        .map(|g| GroupOffset {
            next: if g.partition == 0 { back } else { g.next },
            ..*g
        })
        .collect();
    let v = checker::check(&h).unwrap();
    let mut want: Vec<u64> = p0[p0.len() - 5..].iter().map(|r| r.id).collect();
    want.sort_unstable();
    assert_eq!(v.reprocessing_pending.ids(), want);
    assert_eq!(v.over_committed.count + v.lost.count, 0);
}

#[test]
fn an_id_from_nowhere_breaks_output_equals_input() {
    let mut h = fixture();
    let stranger = Seen {
        id: 1_000_000,
        offset: 100_000,
        ..h.committed[0]
    };
    h.committed.push(stranger);
    let v = checker::check(&h).unwrap();
    assert_eq!(v.unexpected.ids(), [1_000_000]);
    assert!(!v.same_ids());
    assert!(v.to_string().contains("output ids = input ids: no"), "{v}");
}

#[test]
fn a_history_no_log_could_hold_is_refused() {
    let mut h = fixture();
    let twin = Seen {
        id: 7_777,
        ..h.committed[0]
    };
    h.committed.push(twin);
    let err = checker::check(&h).unwrap_err().to_string();
    assert!(err.contains("two records at partition"), "{err}");
    let err = History::from_json("{\"input\": 3}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a pipeline history"), "{err}");
}

// ---- Real Kafka: record a run, recount it with DumpLogSegments ----

/// Runs a pipeline, leaves an aborted transaction in its output, recounts
/// the output's log with DumpLogSegments and records the history.
fn record_a_run(cluster: &Cluster) -> (History, dump_log::Recount) {
    let o = run_pipeline(cluster, 300);
    let output = o
        .output_topic
        .clone()
        .expect("exactly-once has an output topic");
    // A fenced writer's leftovers: ids the pipeline also committed.
    write_aborted(cluster, &output, 40..52);
    let recount = dump_log::dump_topic(cluster.bootstrap(), &output)
        .expect("DumpLogSegments reads the course's broker")
        .recount();
    let pipeline = recorder::Pipeline {
        input: &o.input_topic,
        output: &output,
        group: &o.group,
    };
    let h = recorder::record(
        cluster,
        &pipeline,
        Vec::new(),
        Some(recount.aborted_positions()),
    )
    .expect("the history is recorded");
    (h, recount)
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS (the course's own broker)"]
fn a_real_runs_verdict_agrees_with_the_log_recounted_by_dump_log_segments() {
    let cluster = common::kafka();
    let (h, recount) = record_a_run(&cluster);
    let v = checker::check(&h).unwrap();
    println!("{v}");
    assert!(v.clean(), "{v}");
    // The log's own account, shared with no Kafka client: every committed
    // record is where the read_committed reader found it, every aborted one
    // where only the read_uncommitted reader found it, nothing left open.
    let at = |rs: &[dump_log::LogRecord]| -> BTreeSet<(i32, i64, u64)> {
        rs.iter()
            .map(|r| (r.partition, r.offset, r.id.unwrap()))
            .collect()
    };
    let seen = |rs: &[Seen]| -> BTreeSet<(i32, i64, u64)> {
        rs.iter().map(|r| (r.partition, r.offset, r.id)).collect()
    };
    assert_eq!(at(&recount.committed), seen(&h.committed));
    let only_uncommitted: BTreeSet<_> = seen(&h.uncommitted)
        .difference(&seen(&h.committed))
        .copied()
        .collect();
    assert_eq!(at(&recount.aborted), only_uncommitted);
    assert_eq!(recount.aborted.len(), 12);
    assert!(recount.open.is_empty());
    // The recount's own lost and duplicated agree with the verdict's.
    let input: BTreeSet<u64> = h.input.iter().map(|r| r.id).collect();
    let ids: Vec<u64> = recount.committed.iter().map(|r| r.id.unwrap()).collect();
    let distinct: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(input.difference(&distinct).count() as u64, v.lost.count);
    assert_eq!((ids.len() - distinct.len()) as u64, v.duplicated.count);
    assert_eq!(v.aborted_in_log, recount.aborted.len() as u64);
    if std::env::var_os("LAB_WRITE_CHECKER_FIXTURE").is_some() {
        std::fs::write(fixture_path(), h.to_json()).unwrap();
    }
}

#[test]
#[ignore = "needs Apache Kafka at KAFKA_BOOTSTRAP_SERVERS"]
fn a_broker_of_another_machine_is_refused_by_the_recount_with_a_reason() {
    let cluster = common::kafka();
    let err = dump_log::dump_topic("203.0.113.9:9092", "anything")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cargo xtask kafka up"), "{err}");
    // On the course's broker, an unknown topic is named as such.
    let err = dump_log::dump_topic(cluster.bootstrap(), "no-such-topic-here")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no partition of no-such-topic-here"), "{err}");
}
