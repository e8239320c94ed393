//! An independent recount of a topic from the broker's own log files, by
//! Apache Kafka's `DumpLogSegments` tool: every record with its producer,
//! and every transaction marker (COMMIT or ABORT), so which records were
//! committed and which aborted is known without any Kafka client's reader.
//! It checks the lab's readers, and gives the checker
//! ([`crate::audit::checker`]) the aborted positions it judges aborted reads
//! by.
//!
//! It needs the broker's files, so it works only on a broker that
//! `cargo xtask kafka up` started on this machine; anywhere else it says so.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::checker::Position;
use crate::error::{Error, Result};
use crate::local::LocalCluster;

/// The tool's class in Kafka 4.x (it moved from `kafka.tools` to the tools jar).
pub const TOOL: &str = "org.apache.kafka.tools.DumpLogSegments";

/// One data record of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    /// The lab's id, from the record's key (`None`: not one of ours).
    pub id: Option<u64>,
    pub producer_id: i64,
    pub transactional: bool,
}

/// A transaction marker: the end of `producer_id`'s transaction in a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub partition: i32,
    pub offset: i64,
    pub producer_id: i64,
    pub commit: bool,
}

/// What the tool printed, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub records: Vec<LogRecord>,
    pub markers: Vec<Marker>,
}

/// The fate of every record of ours, by the markers: a transactional
/// record belongs to the next marker of its producer in its partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recount {
    /// Committed (or written without a transaction), in log order.
    pub committed: Vec<LogRecord>,
    /// In transactions that ended with an ABORT marker.
    pub aborted: Vec<LogRecord>,
    /// In transactions with no marker yet (still open).
    pub open: Vec<LogRecord>,
}

/// Parses the output of `DumpLogSegments --print-data-log`. Each file's
/// partition comes from its `Dumping <dir>/<topic>-<partition>/<n>.log` line.
pub fn parse(text: &str) -> Result<Dump> {
    let mut dump = Dump::default();
    let mut partition: Option<i32> = None;
    let mut batch: Option<(i64, bool, bool)> = None; // producer, transactional, control
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("Dumping ") {
            partition = Some(partition_of(path)?);
        } else if line.starts_with("baseOffset:") {
            batch = Some((
                field(line, "producerId")?,
                field::<bool>(line, "isTransactional")?,
                field::<bool>(line, "isControl")?,
            ));
        } else if let Some(rest) = line.strip_prefix("| offset:") {
            let (Some(partition), Some((producer_id, transactional, control))) =
                (partition, batch)
            else {
                return Err(unexpected(line));
            };
            let offset = field(line, "offset")?;
            if control {
                dump.markers.push(Marker {
                    partition,
                    offset,
                    producer_id,
                    commit: value(rest, "endTxnMarker") == Some("COMMIT"),
                });
            } else {
                let id = rest
                    .split_once(" key: ")
                    .and_then(|(_, k)| k.split(' ').next())
                    .and_then(|k| k.parse().ok());
                dump.records.push(LogRecord {
                    partition,
                    offset,
                    id,
                    producer_id,
                    transactional,
                });
            }
        }
    }
    Ok(dump)
}

impl Dump {
    /// Settles every record by its producer's next marker in its partition.
    pub fn recount(&self) -> Recount {
        let mut recount = Recount::default();
        // Log order, records and markers together.
        let mut events: Vec<(i32, i64, Option<&LogRecord>, Option<&Marker>)> =
            Vec::new();
        events.extend(
            self.records
                .iter()
                .map(|r| (r.partition, r.offset, Some(r), None)),
        );
        events.extend(
            self.markers
                .iter()
                .map(|m| (m.partition, m.offset, None, Some(m))),
        );
        events.sort_by_key(|e| (e.0, e.1));
        let mut pending: HashMap<(i32, i64), Vec<LogRecord>> = HashMap::new();
        for (partition, _, record, marker) in events {
            if let Some(r) = record {
                if r.transactional {
                    pending
                        .entry((partition, r.producer_id))
                        .or_default()
                        .push(*r);
                } else {
                    recount.committed.push(*r);
                }
            }
            if let Some(m) = marker {
                let settled = pending
                    .remove(&(partition, m.producer_id))
                    .unwrap_or_default();
                match m.commit {
                    true => recount.committed.extend(settled),
                    false => recount.aborted.extend(settled),
                }
            }
        }
        let mut open: Vec<LogRecord> = pending.into_values().flatten().collect();
        open.sort_by_key(|r| (r.partition, r.offset));
        recount.open = open;
        recount
    }
}

impl Recount {
    /// Where the records of aborted transactions sit: what a
    /// [`History`](crate::audit::checker::History) takes as `aborted`.
    pub fn aborted_positions(&self) -> Vec<Position> {
        self.aborted
            .iter()
            .map(|r| Position {
                partition: r.partition,
                offset: r.offset,
            })
            .collect()
    }
}

/// Runs `DumpLogSegments` over every segment of `topic` on the local broker
/// serving `bootstrap`, and parses what it prints.
pub fn dump_topic(bootstrap: &str, topic: &str) -> Result<Dump> {
    let local = LocalCluster::serving(bootstrap).ok_or_else(|| Error::Unsupported {
        what: "recounting a topic with DumpLogSegments".into(),
        backend: bootstrap.into(),
        why: "the tool reads the broker's own log files, and only a broker started on this \
              machine by `cargo xtask kafka up` has them here; run it against the course's broker"
            .into(),
    })?;
    let broker = local.brokers.first().ok_or_else(|| {
        Error::BadData(format!(
            "the local cluster {} lists no broker; restart it",
            local.name
        ))
    })?;
    let java = broker
        .command
        .first()
        .cloned()
        .unwrap_or_else(|| "java".into());
    let classpath = broker
        .command
        .iter()
        .skip_while(|a| *a != "-cp")
        .nth(1)
        .ok_or_else(|| no_launch("no -cp in the broker's command line"))?;
    let files = segments(&local, topic)?;
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let out = Command::new(&java)
        .args(["-cp", classpath, TOOL, "--print-data-log", "--files"])
        .arg(files.join(","))
        .output()
        .map_err(|source| Error::Io {
            doing: format!("cannot start {java} for {TOOL}"),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Process {
            what: TOOL.into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// The `.log` segments of every partition of `topic`, on the first broker
/// of `local` that holds each partition, in offset order.
fn segments(local: &LocalCluster, topic: &str) -> Result<Vec<PathBuf>> {
    let mut by_partition: BTreeMap<i32, Vec<PathBuf>> = BTreeMap::new();
    for broker in &local.brokers {
        let properties = broker
            .command
            .last()
            .ok_or_else(|| no_launch("the broker's command line is empty"))?;
        for dir in log_dirs(Path::new(properties))? {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(p) = name
                    .strip_prefix(topic)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                if by_partition.contains_key(&p) {
                    continue;
                }
                let mut logs: Vec<PathBuf> = std::fs::read_dir(entry.path())
                    .map_err(|source| Error::Io {
                        doing: format!("cannot list {}", entry.path().display()),
                        source,
                    })?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.extension().is_some_and(|e| e == "log"))
                    .collect();
                logs.sort();
                by_partition.insert(p, logs);
            }
        }
    }
    if by_partition.is_empty() {
        return Err(Error::BadData(format!(
            "no partition of {topic} in the local broker's data directories: is the topic \
             name right, and was it written to the course's broker?"
        )));
    }
    Ok(by_partition.into_values().flatten().collect())
}

/// The `log.dirs` (or `log.dir`) of a broker's properties file.
fn log_dirs(properties: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(properties).map_err(|source| Error::Io {
        doing: format!("cannot read the broker's settings {}", properties.display()),
        source,
    })?;
    let dirs = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("log.dirs=")
                .or_else(|| l.strip_prefix("log.dir="))
        })
        .flat_map(|v| v.split(',').map(|d| PathBuf::from(d.trim())))
        .collect();
    Ok(dirs)
}

fn no_launch(why: &str) -> Error {
    Error::BadData(format!(
        "cannot tell how the local broker was started ({why}); restart it with `cargo xtask kafka up`"
    ))
}

/// The partition of a segment path `<dir>/<topic>-<partition>/<n>.log`.
fn partition_of(path: &str) -> Result<i32> {
    Path::new(path.trim())
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str())
        .and_then(|d| d.rsplit_once('-'))
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| unexpected(path))
}

/// The value after `name: ` in a line of the tool's output.
fn value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}: "))? + name.len() + 2;
    line[at..].split_whitespace().next()
}

fn field<T: std::str::FromStr>(line: &str, name: &str) -> Result<T> {
    value(line, name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unexpected(line))
}

fn unexpected(line: &str) -> Error {
    Error::BadData(format!(
        "DumpLogSegments printed a line this parser does not know ({line:?}); \
         it reads the output of Kafka 4.x's {TOOL} --print-data-log"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Dumping /data/t-out-1/00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 1 count: 2 baseSequence: 0 lastSequence: 1 producerId: 11 producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: true isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1796252449719 size: 200 magic: 2 compresscodec: none crc: 1 isvalid: true
| offset: 0 CreateTime: 1796252449718 keySize: 1 valueSize: 100 sequence: 0 headerKeys: [] key: 7 payload: {\"id\":7}
| offset: 1 CreateTime: 1796252449718 keySize: 2 valueSize: 100 sequence: 1 headerKeys: [] key: 10 payload: {\"id\":10}
baseOffset: 2 lastOffset: 2 count: 1 baseSequence: 0 lastSequence: 0 producerId: 12 producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: true isControl: false deleteHorizonMs: OptionalLong.empty position: 200 CreateTime: 1796252449719 size: 100 magic: 2 compresscodec: none crc: 1 isvalid: true
| offset: 2 CreateTime: 1796252449718 keySize: 1 valueSize: 100 sequence: 0 headerKeys: [] key: 8 payload: {\"id\":8}
baseOffset: 3 lastOffset: 3 count: 1 baseSequence: -1 lastSequence: -1 producerId: 11 producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: true isControl: true deleteHorizonMs: OptionalLong.empty position: 300 CreateTime: 1796252449739 size: 78 magic: 2 compresscodec: none crc: 3 isvalid: true
| offset: 3 CreateTime: 1796252449739 keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] endTxnMarker: COMMIT coordinatorEpoch: 0
baseOffset: 4 lastOffset: 4 count: 1 baseSequence: -1 lastSequence: -1 producerId: 12 producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: true isControl: true deleteHorizonMs: OptionalLong.empty position: 378 CreateTime: 1796252449739 size: 78 magic: 2 compresscodec: none crc: 3 isvalid: true
| offset: 4 CreateTime: 1796252449739 keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] endTxnMarker: ABORT coordinatorEpoch: 0
baseOffset: 5 lastOffset: 5 count: 1 baseSequence: 0 lastSequence: 0 producerId: 13 producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: true isControl: false deleteHorizonMs: OptionalLong.empty position: 456 CreateTime: 1796252449719 size: 100 magic: 2 compresscodec: none crc: 1 isvalid: true
| offset: 5 CreateTime: 1796252449718 keySize: 1 valueSize: 100 sequence: 0 headerKeys: [] key: 9 payload: {\"id\":9}
";

    #[test]
    fn interleaved_producers_are_settled_by_their_own_markers() {
        let dump = parse(SAMPLE).unwrap();
        assert_eq!(dump.records.len(), 4);
        assert_eq!(dump.markers.len(), 2);
        assert!(dump.markers.iter().all(|m| m.partition == 1));
        let ids =
            |rs: &[LogRecord]| rs.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>();
        let r = dump.recount();
        // 8 sits between 10 and the COMMIT, but belongs to producer 12's abort.
        assert_eq!(ids(&r.committed), [7, 10]);
        assert_eq!(ids(&r.aborted), [8]);
        assert_eq!(ids(&r.open), [9]);
        assert_eq!((r.aborted[0].partition, r.aborted[0].offset), (1, 2));
    }

    #[test]
    fn output_of_another_shape_is_refused_with_a_reason() {
        let err = parse("| offset: 0 key: 1").unwrap_err().to_string();
        assert!(err.contains("does not know"), "{err}");
        let err = parse("Dumping /x/nopartition/0.log")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not know"), "{err}");
    }

    #[test]
    fn a_broker_not_started_here_is_refused_clearly() {
        let err = dump_topic("198.51.100.7:9092", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo xtask kafka up"), "{err}");
    }
}
