//! The book's nemesis part: seeded fault schedules on the three-broker
//! cluster (`lab::faults::nemesis::run_schedules`), each against the
//! exactly-once pipeline and the at-least-once one, recorded as
//! `nemesis.json`, rendered as the table of the nemesis page and its charts.

use anyhow::{bail, Result};
use lab::faults::nemesis::{
    nemesis_markdown, nemesis_steps_markdown, run, NemesisOptions, NemesisRecord,
    NemesisRun, NEMESIS_VERSION,
};

use lab::Cluster;

use crate::book::{generated_dir, record, recorded, Clusters};
use crate::kafka::{self, Layout};

/// The recorded run.
const FILE: &str = "nemesis.json";

/// How many schedules the book records. Each takes four to six minutes
/// (both pipelines), about four hours in all, so the part is resumable:
/// every schedule is saved as it ends, and the next `regen --only nemesis`
/// runs only the seeds still missing (interrupt it whenever you like).
pub const SCHEDULES: u64 = 50;

/// The first seed the book records.
const SEED: u64 = 1;

/// What a cluster is, without where: "Apache Kafka 4.4.0, 3 brokers".
fn kind(describe: &str) -> &str {
    describe.split(" at ").next().unwrap_or(describe)
}

/// The recorded runs still valid for this version of the lab, this kind of
/// cluster and these options; anything else is run again.
fn kept(options: &NemesisOptions, cluster: &str) -> Vec<NemesisRun> {
    let Ok(old) = recorded::<NemesisRecord>(FILE) else {
        return Vec::new();
    };
    if old.version != NEMESIS_VERSION || kind(&old.cluster) != kind(cluster) {
        return Vec::new();
    }
    old.runs
        .into_iter()
        .filter(|r| (SEED..SEED + SCHEDULES).contains(&r.seed))
        .filter(|r| {
            r.options
                == NemesisOptions {
                    seed: r.seed,
                    ..options.clone()
                }
        })
        .collect()
}

/// Where the schedules run (bootstrap addresses; a client is not shared
/// between threads): the three-broker cluster, and the spare one beside it
/// if it is up (two schedules at once); or the clusters `NEMESIS_CLUSTERS`
/// names (`three`, `three-spare`, comma-separated, or `both`), e.g. to leave
/// the first free for other work.
fn lanes(clusters: &Clusters) -> Result<Vec<String>> {
    let spare = || {
        kafka::running(Layout::ThreeSpare).map(|c| c.bootstrap).ok_or_else(|| {
            anyhow::anyhow!("the spare cluster is not running: `cargo xtask kafka up --three-spare`")
        })
    };
    if let Ok(names) = std::env::var("NEMESIS_CLUSTERS") {
        let names = if names.trim() == "both" {
            "three,three-spare".to_string()
        } else {
            names
        };
        return names
            .split(',')
            .map(|n| match n.trim() {
                "three" => Ok(clusters.three()?.bootstrap().to_string()),
                "three-spare" => spare(),
                other => bail!(
                    "NEMESIS_CLUSTERS names `{other}`: use three, three-spare, both, or \
                     three,three-spare"
                ),
            })
            .collect();
    }
    let mut lanes = vec![clusters.three()?.bootstrap().to_string()];
    match spare() {
        Ok(bootstrap) => lanes.push(bootstrap),
        Err(_) => println!(
            "nemesis: one schedule at a time; `cargo xtask kafka up --three-spare` starts a \
             second cluster, and the next run uses both"
        ),
    }
    Ok(lanes)
}

/// What the lanes share: the seeds still to run, the runs so far, and
/// whether one lane failed (the others then stop after their schedule).
struct Campaign {
    todo: Vec<u64>,
    runs: Vec<NemesisRun>,
    failed: bool,
}

// long: the lanes' loop and the saving after every schedule read best together.
pub fn measure(clusters: &Clusters) -> Result<()> {
    let options = NemesisOptions {
        seed: SEED,
        ..NemesisOptions::default()
    };
    let lanes = lanes(clusters)?;
    let describe = format!(
        "{} at {}",
        kind(&clusters.three()?.describe()),
        lanes.join(" and ")
    );
    let runs = kept(&options, &describe);
    let mut todo: Vec<u64> = (SEED..SEED + SCHEDULES)
        .filter(|s| runs.iter().all(|r| r.seed != *s))
        .collect();
    todo.reverse();
    println!(
        "nemesis: {} of {SCHEDULES} schedules recorded, {} to run, of {} records each, on {} \
         lane(s): {describe} (four to six minutes each; each is saved as it ends, so stop \
         whenever you like and run `cargo xtask regen --only nemesis` again to go on)",
        runs.len(),
        todo.len(),
        options.records,
        lanes.len(),
    );
    let stop = lab::local::run_dir().join("nemesis.stop");
    println!(
        "nemesis: to stop after the schedules in progress: touch {}",
        stop.display()
    );
    let campaign = std::sync::Mutex::new(Campaign {
        todo,
        runs,
        failed: false,
    });
    let lane = |bootstrap: &str| -> Result<()> {
        let cluster = Cluster::connect(bootstrap)?;
        loop {
            let seed = {
                let mut c = campaign.lock().expect("a lane panicked");
                if c.failed || stop.exists() {
                    return Ok(());
                }
                match c.todo.pop() {
                    Some(seed) => seed,
                    None => return Ok(()),
                }
            };
            let one = NemesisOptions {
                seed,
                ..options.clone()
            };
            let run = run(&cluster, &one).inspect_err(|_| {
                campaign.lock().expect("a lane panicked").failed = true;
            })?;
            println!(
                "nemesis: seed {seed} exactly-once {} in {:.0} s on {}",
                if run.exactly_once.verdict.clean() {
                    "clean"
                } else {
                    "NOT clean"
                },
                run.seconds,
                cluster.bootstrap()
            );
            let mut c = campaign.lock().expect("a lane panicked");
            c.runs.push(run);
            c.runs.sort_by_key(|r| r.seed);
            save(&describe, &c.runs)?;
        }
    };
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes.iter().map(|b| s.spawn(|| lane(b))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a nemesis lane panicked"))
            })
            .collect()
    });
    if stop.exists() {
        let _ = std::fs::remove_file(&stop);
        println!("nemesis: stopped, as {} asked", stop.display());
    }
    results.into_iter().collect()
}

/// The record and its pages, after every schedule: a stopped campaign leaves
/// the page current.
fn save(describe: &str, runs: &[NemesisRun]) -> Result<()> {
    record(
        FILE,
        &NemesisRecord {
            version: NEMESIS_VERSION,
            cluster: describe.to_string(),
            seconds: runs.iter().map(|r| r.seconds).sum(),
            runs: runs.to_vec(),
        },
    )?;
    for (name, text) in pages()? {
        std::fs::write(generated_dir().join(name), text)?;
    }
    Ok(())
}

pub fn pages() -> Result<Vec<(String, String)>> {
    let run: NemesisRecord = recorded(FILE)?;
    if !run.cluster.starts_with("Apache Kafka") {
        bail!("book/src/generated/{FILE} was not measured on Apache Kafka");
    }
    let header = format!("<!-- generated by `cargo xtask regen` from {FILE}: a lab run, not typed -->\n\n");
    let mut pages = vec![
        (
            "nemesis.md".into(),
            header.clone() + &nemesis_markdown(&run),
        ),
        (
            "nemesis-steps.md".into(),
            header + &nemesis_steps_markdown(&run),
        ),
    ];
    // The summary, the first schedule's timeline and the timeline of every
    // schedule that exactly-once did not come through clean.
    for (stem, chart) in lab::charts::nemesis_charts(&run) {
        pages.push((format!("{stem}.svg"), chart.to_svg_string()));
    }
    Ok(pages)
}
