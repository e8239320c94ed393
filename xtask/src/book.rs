//! The book: check every include, regenerate what the lab measures, build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use lab::experiments::bench::BenchReport;
use lab::experiments::matrix::{self, MatrixOptions};
use lab::experiments::timelines::TimelineRun;
use lab::{Cluster, Outcome, Semantic};

use crate::kafka::{self, Layout};
use crate::repo_root;

pub fn src_dir() -> PathBuf {
    repo_root().join("book/src")
}

pub fn generated_dir() -> PathBuf {
    src_dir().join("generated")
}

/// Every `{{#include PATH[:ANCHOR]}}` in the book must name an existing file,
/// and an anchor must exist in it: mdBook silently includes nothing for an
/// unknown anchor. Generated files must not be placeholders.
pub fn check_includes(src: &Path) -> Result<usize> {
    let mut problems = Vec::new();
    let mut count = 0;
    for page in markdown_files(src)? {
        let text = fs::read_to_string(&page)?;
        for image in images(&text) {
            count += 1;
            if !page
                .parent()
                .unwrap_or(Path::new("."))
                .join(&image)
                .exists()
            {
                problems
                    .push(format!("{} shows {image}: no such file", page.display()));
            }
        }
        for include in includes(&text) {
            count += 1;
            let (path, anchor) = match include.split_once(':') {
                Some((p, a))
                    if !a.chars().next().is_some_and(|c| c.is_ascii_digit()) =>
                {
                    (p, Some(a))
                }
                _ => (include.as_str(), None),
            };
            let target = page.parent().unwrap_or(Path::new(".")).join(path);
            let where_ = format!(
                "{} includes {include}",
                page.strip_prefix(repo_root()).unwrap_or(&page).display()
            );
            let Ok(body) = fs::read_to_string(&target) else {
                problems.push(format!("{where_}: no such file"));
                continue;
            };
            if let Some(anchor) = anchor {
                let has = |tag: &str| {
                    body.lines().any(|l| {
                        l.trim_start()
                            .trim_start_matches("//")
                            .trim_start_matches('#')
                            .trim()
                            == format!("{tag}: {anchor}")
                    })
                };
                if !has("ANCHOR") || !has("ANCHOR_END") {
                    problems.push(format!("{where_}: no `ANCHOR: {anchor}` / `ANCHOR_END: {anchor}` pair in that file"));
                }
            }
            if body.contains("placeholder: run cargo xtask regen") {
                problems.push(format!(
                    "{where_}: still a placeholder; run `cargo xtask regen`"
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "the book's includes are broken:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(count)
}

fn includes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let directive = after[..end].trim();
        for kind in ["include ", "rustdoc_include "] {
            if let Some(arg) = directive.strip_prefix(kind) {
                out.push(arg.trim().to_string());
            }
        }
        rest = &after[end..];
    }
    out
}

/// Local images shown with `![alt](path)`.
fn images(text: &str) -> Vec<String> {
    text.split("![")
        .skip(1)
        .filter_map(|rest| rest.split_once("](").map(|(_, after)| after))
        .filter_map(|after| {
            after
                .split_once(')')
                .map(|(path, _)| path.trim().to_string())
        })
        .filter(|path| !path.contains("://"))
        .collect()
}

fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in
        fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(markdown_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(out)
}

/// Where the book's pages find mermaid (book.toml's `additional-js`). Not in
/// the repository (2.6 MB of minified JavaScript): [`mermaid_js`] writes it.
const MERMAID_JS: &str = "theme/mermaid.min.js";

/// Puts the mermaid library that the pinned `mdbook-mermaid` carries into
/// `book/theme/`, where the pages load it from: the diagrams render offline,
/// and the library changes only with `tools::MDBOOK_MERMAID_VERSION`.
/// (`mdbook-mermaid install` writes it, and edits a book.toml: it is given a
/// scratch book, so that the course's own book.toml and init script stay as
/// they are.)
pub fn mermaid_js() -> Result<()> {
    let scratch =
        std::env::temp_dir().join(format!("xtask-mermaid-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    fs::write(scratch.join("book.toml"), "[book]\n")?;
    let out = Command::new("mdbook-mermaid")
        .arg("install")
        .arg(&scratch)
        .output()
        .context("running mdbook-mermaid: install it with `cargo xtask setup`")?;
    let js = fs::read(scratch.join("mermaid.min.js"));
    let _ = fs::remove_dir_all(&scratch);
    let js = match js {
        Ok(js) if out.status.success() => js,
        _ => bail!(
            "mdbook-mermaid install did not write mermaid.min.js ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    let target = repo_root().join("book").join(MERMAID_JS);
    if fs::read(&target).ok().as_deref() != Some(js.as_slice()) {
        fs::write(&target, js)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// `mdbook build`, failing on any error or warning it prints.
pub fn build() -> Result<()> {
    let n = check_includes(&src_dir())?;
    mermaid_js()?;
    let out = Command::new("mdbook")
        .arg("build")
        .arg(repo_root().join("book"))
        .output()
        .context("running mdbook: install it with `cargo xtask setup`")?;
    let log = String::from_utf8_lossy(&out.stderr);
    // mdBook's own warnings read " WARN". mdbook-mermaid also prints
    // "Warning: ... built against version 0.5.0 of mdbook, but we're being
    // called from version 0.5.4" on every build: the same preprocessor
    // interface (mdbook-preprocessor 0.5), so that one is no failure.
    if !out.status.success() || log.contains("ERROR") || log.contains("WARN") {
        bail!("mdbook build failed:\n{log}");
    }
    println!("book: {n} includes resolved, built into book/book");
    Ok(())
}

/// librdkafka's timeout rules for a transactional producer, as effective
/// values read back from producers it created.
pub fn timeouts_markdown() -> String {
    format!(
        "<!-- generated by `cargo xtask regen` from crates/lab/src/client/effective.rs -->\n\n{}",
        lab::effective::timeout_rules_markdown()
    )
}

/// One semantic's settings tables, for that semantic's chapter.
pub fn semantic_settings_markdown(semantic: Semantic) -> String {
    format!(
        "<!-- generated by `cargo xtask regen` from crates/lab/src/client/semantics.rs -->\n\n{}",
        semantic.settings_markdown()
    )
}

/// The first-run table, rendered from its recorded outcomes.
pub fn first_run_markdown(outcomes: &[Outcome]) -> String {
    format!(
        "<!-- generated by `cargo xtask regen` from first-run.json: a lab run, not typed -->\n\n{}",
        Outcome::markdown_table(outcomes)
    )
}

/// The scenario matrix as the book shows it, from its recorded cells.
pub fn matrix_markdown(matrix: &matrix::Matrix) -> String {
    format!(
        "<!-- generated by `cargo xtask regen` from matrix.json: a lab run, not typed -->\n\n{}",
        matrix.markdown()
    )
}

/// The clusters a measurement may use: the course's local brokers. The
/// three-broker cluster is started only when a chosen part needs it.
pub struct Clusters {
    pub single: Cluster,
    three: Option<Cluster>,
}

impl Clusters {
    /// The three-broker cluster, which `regen` starts for the parts that say
    /// they need it.
    pub fn three(&self) -> Result<&Cluster> {
        self.three.as_ref().context(
            "this part needs the three-broker cluster: mark it `needs_three` in book::parts()",
        )
    }
}

/// One piece of the book's generated material: how to measure it (writing its
/// recorded JSON into `book/src/generated/`), and the pages it renders from
/// that JSON. `regen` measures then renders; `regen --render-only` renders;
/// `check_generated` (in `cargo xtask test`) renders in memory and compares,
/// so a page edited by hand, or stale after a code change, fails the test.
pub struct Part {
    /// What `regen --only NAME` calls it.
    pub name: &'static str,
    /// Measures on real Kafka and writes the part's JSON file(s).
    pub measure: fn(&Clusters) -> Result<()>,
    /// Reads the recorded JSON; returns every page (file name, contents). It
    /// fails if the JSON was not measured on Apache Kafka.
    pub pages: fn() -> Result<Vec<(String, String)>>,
    /// Whether measuring it needs the three-broker cluster too.
    pub needs_three: bool,
}

/// Every part, in the order `regen` measures them.
pub fn parts() -> Vec<Part> {
    vec![
        Part {
            name: "settings",
            measure: |_| Ok(()),
            pages: || {
                let mut pages = vec![("timeouts.md".into(), timeouts_markdown())];
                // One page per semantic, for the chapter that teaches it
                // (and the only place each table is shown).
                for s in Semantic::ALL {
                    pages.push((
                        format!("settings-{}.md", s.name()),
                        semantic_settings_markdown(s),
                    ));
                }
                Ok(pages)
            },
            needs_three: false,
        },
        Part {
            name: "first-run",
            measure: measure_first_run,
            pages: first_run_pages,
            needs_three: false,
        },
        Part {
            name: "matrix",
            measure: measure_matrix,
            pages: matrix_pages,
            needs_three: true,
        },
        Part {
            name: "bench",
            measure: measure_bench,
            pages: bench_pages,
            needs_three: true,
        },
        Part {
            name: "bench-cpu",
            measure: measure_bench_cpu,
            pages: bench_cpu_pages,
            needs_three: false,
        },
        Part {
            name: "pipeline",
            measure: crate::book_pipeline::measure,
            pages: crate::book_pipeline::pages,
            needs_three: true,
        },
        Part {
            name: "corrections",
            measure: measure_corrections,
            pages: corrections_pages,
            needs_three: false,
        },
        Part {
            name: "side-effects",
            measure: measure_side_effects,
            pages: side_effects_pages,
            needs_three: false,
        },
        Part {
            name: "holes",
            measure: crate::book_holes::measure,
            pages: crate::book_holes::pages,
            needs_three: false,
        },
        Part {
            name: "holes-leader",
            measure: crate::book_holes_leader::measure,
            pages: crate::book_holes_leader::pages,
            needs_three: true,
        },
        Part {
            name: "group-protocols",
            measure: crate::book_protocols::measure,
            pages: crate::book_protocols::pages,
            needs_three: false,
        },
        Part {
            name: "nemesis",
            measure: crate::book_nemesis::measure,
            pages: crate::book_nemesis::pages,
            needs_three: true,
        },
        Part {
            name: "monitoring",
            measure: measure_monitoring,
            pages: monitoring_pages,
            needs_three: false,
        },
    ]
}

/// Reads a recorded JSON file of `book/src/generated/`, with an error that
/// says how to make it.
pub fn recorded<T: serde::de::DeserializeOwned>(name: &str) -> Result<T> {
    let path = generated_dir().join(name);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading book/src/generated/{name}: measure it with `cargo xtask regen`"
        )
    })?;
    serde_json::from_str(&text).with_context(|| {
        format!("book/src/generated/{name} is not what the lab records: run `cargo xtask regen`")
    })
}

/// Writes a recorded JSON file into `book/src/generated/`.
pub fn record<T: serde::Serialize>(name: &str, value: &T) -> Result<()> {
    fs::create_dir_all(generated_dir())?;
    fs::write(
        generated_dir().join(name),
        serde_json::to_string_pretty(value)?,
    )?;
    Ok(())
}

fn measure_first_run(clusters: &Clusters) -> Result<()> {
    let outcomes = lab::experiments::first_run(&clusters.single, 1000)?;
    for outcome in &outcomes {
        println!("{outcome}");
    }
    record("first-run.json", &outcomes)
}

fn first_run_pages() -> Result<Vec<(String, String)>> {
    let outcomes: Vec<Outcome> = recorded("first-run.json")?;
    if outcomes.iter().any(|o| o.backend != lab::Backend::Kafka) {
        bail!("book/src/generated/first-run.json was not measured on Apache Kafka");
    }
    Ok(vec![
        ("first-run.md".into(), first_run_markdown(&outcomes)),
        (
            "first-run.svg".into(),
            lab::charts::outcomes_chart(&outcomes).to_svg_string(),
        ),
    ])
}

fn measure_matrix(clusters: &Clusters) -> Result<()> {
    let options = MatrixOptions::book();
    let started = std::time::Instant::now();
    let run = matrix::run_matrix(
        &clusters.single,
        Some(clusters.three()?),
        &options,
        &mut |label| println!("matrix: {label}"),
    );
    println!(
        "matrix: {} cells and {} database cells in {:.0} s",
        run.cells.len(),
        run.database.len(),
        started.elapsed().as_secs_f64()
    );
    record("matrix.json", &run.matrix())?;
    // The timelines are the matrix's first-seed runs, drawn record by record.
    record("timeline.json", &run.timelines)
}

fn matrix_pages() -> Result<Vec<(String, String)>> {
    let matrix: matrix::Matrix = recorded("matrix.json")?;
    let backends = matrix
        .cells
        .iter()
        .map(|c| &c.backend)
        .chain(matrix.database.iter().map(|c| &c.backend));
    if backends.into_iter().any(|b| !b.starts_with("Apache Kafka")) {
        bail!("book/src/generated/matrix.json was not measured on Apache Kafka");
    }
    let mut pages = vec![
        ("matrix.md".into(), matrix_markdown(&matrix)),
        (
            "matrix.svg".into(),
            lab::charts::matrix_chart_of(&matrix).to_svg_string(),
        ),
    ];
    pages.extend(timeline_pages()?);
    Ok(pages)
}

/// One benchmark the book shows: its JSON file, the cluster, the options.
struct BenchRun {
    file: &'static str,
    three_brokers: bool,
    args: &'static [&'static str],
}

/// The book's benchmarks: every case with five requests in flight (the
/// clients' default) on one broker; the in-order setup of Confluent's
/// published comparison (one in flight); and the three-broker cluster, where
/// acks=all waits for followers. Measured by the lab's release build in a
/// process of its own: the debug build that runs xtask would measure the
/// debug build.
const BENCH_RUNS: [BenchRun; 3] = [
    BenchRun {
        file: "bench.json",
        three_brokers: false,
        args: &[
            "--records",
            "200000",
            "--repetitions",
            "5",
            "--producer-performance-runs",
            "5",
        ],
    },
    BenchRun {
        file: "bench-one-in-flight.json",
        three_brokers: false,
        args: &[
            "--records",
            "200000",
            "--repetitions",
            "5",
            "--producer-performance-runs",
            "5",
            "--one-in-flight",
            "--commit-interval-ms",
            "100",
            "--no-end-to-end",
        ],
    },
    BenchRun {
        file: "bench-three.json",
        three_brokers: true,
        args: &[
            "--records",
            "200000",
            "--repetitions",
            "5",
            "--producer-performance-runs",
            "5",
            "--commit-interval-ms",
            "100",
            "--no-end-to-end",
        ],
    },
];

/// Where the time goes: CPU per record on each side and librdkafka's own
/// counters, for the cases that differ (lab against Java; idempotent against
/// acks=all), then the idempotent producer again with four partitions and
/// with a longer linger, the two settings that change how often
/// librdkafka's broker thread wakes.
const CPU_RUNS: [BenchRun; 3] = [
    BenchRun {
        file: "bench-cpu.json",
        three_brokers: false,
        args: &[
            "--records",
            "200000",
            "--case",
            "acks-1",
            "--case",
            "acks-all",
            "--case",
            "idempotent",
            "--case",
            "transactional-100ms",
            "--repetitions",
            "3",
            "--producer-performance-runs",
            "3",
            "--no-end-to-end",
        ],
    },
    BenchRun {
        file: "bench-cpu-partitions.json",
        three_brokers: false,
        args: &[
            "--records",
            "200000",
            "--partitions",
            "4",
            "--case",
            "acks-all",
            "--case",
            "idempotent",
            "--repetitions",
            "3",
            "--no-producer-performance",
            "--no-end-to-end",
        ],
    },
    BenchRun {
        file: "bench-cpu-linger.json",
        three_brokers: false,
        args: &[
            "--records",
            "200000",
            "--producer-set",
            "linger.ms=100",
            "--case",
            "acks-all",
            "--case",
            "idempotent",
            "--repetitions",
            "3",
            "--no-producer-performance",
            "--no-end-to-end",
        ],
    },
];

fn measure_bench(clusters: &Clusters) -> Result<()> {
    run_benches(clusters, &BENCH_RUNS)
}

fn measure_bench_cpu(clusters: &Clusters) -> Result<()> {
    run_benches(clusters, &CPU_RUNS)
}

/// Runs `lab bench` (release build) once per entry of `runs`, each writing its JSON.
fn run_benches(clusters: &Clusters, runs: &[BenchRun]) -> Result<()> {
    for run in runs {
        let cluster = if run.three_brokers {
            clusters.three()?
        } else {
            &clusters.single
        };
        let json = generated_dir().join(run.file);
        println!(
            "bench: {} on {} (release build; several minutes)",
            run.args.join(" "),
            cluster.describe()
        );
        crate::run_loud(
            Command::new("cargo")
                .args(["run", "--release", "--quiet", "-p", "lab", "--", "bench"])
                .args(run.args)
                .arg("--bootstrap")
                .arg(cluster.bootstrap())
                .arg("--json")
                .arg(&json),
            "lab bench",
        )?;
    }
    Ok(())
}

fn bench_report(file: &str) -> Result<BenchReport> {
    let report: BenchReport = recorded(file)?;
    if report.backend != lab::Backend::Kafka {
        bail!("book/src/generated/{file} was not measured on Apache Kafka");
    }
    Ok(report)
}

fn bench_pages() -> Result<Vec<(String, String)>> {
    let mut pages = Vec::new();
    let mut reports = Vec::new();
    for run in BENCH_RUNS {
        let report = bench_report(run.file)?;
        let stem = run.file.trim_end_matches(".json");
        pages.push((
            format!("{stem}.md"),
            format!(
                "<!-- generated by `cargo xtask regen` from {}: a lab run, not typed -->\n\n{}",
                run.file,
                report.markdown()
            ),
        ));
        reports.push(report);
    }
    let [report, in_order, three] = &reports[..] else {
        unreachable!("one report per run");
    };
    let claims =
        lab::experiments::bench::published_claims(report, Some(in_order), Some(three));
    pages.push((
        "bench-claims.md".into(),
        format!(
            "<!-- generated by `cargo xtask regen` from the bench*.json files -->\n\n{}",
            lab::experiments::bench::claims_markdown(&claims)
        ),
    ));
    pages.push((
        "bench-eos-cost.md".into(),
        format!(
            "<!-- generated by `cargo xtask regen` from bench.json and bench-three.json -->\n\n{}",
            lab::experiments::bench::transaction_cost_markdown(report, Some(three))
        ),
    ));
    for (name, chart) in lab::charts::bench_charts(report) {
        pages.push((format!("{name}.svg"), chart.to_svg_string()));
    }
    Ok(pages)
}

fn bench_cpu_pages() -> Result<Vec<(String, String)>> {
    let [main, partitions, linger] = CPU_RUNS.map(|run| bench_report(run.file));
    let (main, partitions, linger) = (main?, partitions?, linger?);
    Ok(vec![
        (
            "bench-cpu.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from bench-cpu.json: a lab run, not typed -->\n\n{}",
                main.cpu_markdown()
            ),
        ),
        (
            "bench-cpu-settings.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from bench-cpu*.json: lab runs, not typed -->\n\n{}",
                lab::experiments::bench::cpu_comparison_markdown(&[
                    ("1 partition, linger.ms=5", &main),
                    ("4 partitions", &partitions),
                    ("linger.ms=100", &linger),
                ])
            ),
        ),
    ])
}

/// Scenario C with the consumers the course corrects (auto-commit, librdkafka's
/// store-after-processing pattern, seen ids in memory, seen ids kept with the
/// results), seeds 1-3 on one broker.
fn measure_corrections(clusters: &Clusters) -> Result<()> {
    use lab::faults::crash::{consumer_crash_variant, ConsumerVariant, CrashOptions};
    let mut runs = Vec::new();
    for variant in ConsumerVariant::ALL {
        for seed in 1..=3 {
            println!("corrections: {} / seed {seed}", variant.label());
            let run = consumer_crash_variant(
                &clusters.single,
                variant,
                &CrashOptions::new(2000, seed),
            )?;
            println!("{}", run.outcome);
            runs.push(run);
        }
    }
    record("corrections.json", &runs)
}

fn corrections_pages() -> Result<Vec<(String, String)>> {
    let runs: Vec<lab::faults::crash::VariantOutcome> = recorded("corrections.json")?;
    if runs
        .iter()
        .any(|r| r.outcome.backend != lab::Backend::Kafka)
    {
        bail!("book/src/generated/corrections.json was not measured on Apache Kafka");
    }
    Ok(vec![
        (
            "corrections.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from corrections.json: a lab run, not typed -->\n\n{}",
                lab::faults::crash::VariantOutcome::markdown_table(&runs)
            ),
        ),
        (
            "corrections.svg".into(),
            lab::charts::corrections_chart(&runs).to_svg_string(),
        ),
    ])
}

/// The side-effects scenario: each database consumer killed twice, seeds
/// 1-3; the offsets-in-database consumer as two instances through a
/// rebalance, and with an instance paused past its session timeout, once
/// per way of keeping the offsets; on one broker.
fn measure_side_effects(clusters: &Clusters) -> Result<()> {
    use lab::faults::crash::db::{db_sink_scenario, DbOptions, DbVariant, OffsetWrite};
    let mut runs = Vec::new();
    let plan = DbVariant::ALL
        .map(|v| (v, false, None))
        .into_iter()
        .chain([(DbVariant::OffsetsInDb, true, None)])
        .chain(OffsetWrite::ALL.map(|w| (DbVariant::OffsetsInDb, false, Some(w))));
    for (variant, rebalance, paused) in plan {
        for seed in 1..=3 {
            println!("side effects: {} / seed {seed}", variant.label());
            let options = DbOptions {
                rebalance,
                paused,
                ..DbOptions::new(2000, seed)
            };
            let run = db_sink_scenario(&clusters.single, variant, &options)?;
            println!("{run}");
            let _ = fs::remove_file(&run.database);
            let _ = fs::remove_file(&run.notifications_log);
            runs.push(run);
        }
    }
    record("side-effects.json", &runs)
}

fn side_effects_pages() -> Result<Vec<(String, String)>> {
    let runs: Vec<lab::faults::crash::db::DbOutcome> = recorded("side-effects.json")?;
    if runs
        .iter()
        .any(|r| !r.backend_description.starts_with("Apache Kafka"))
    {
        bail!("book/src/generated/side-effects.json was not measured on Apache Kafka");
    }
    if runs.iter().all(|r| r.fates == Default::default()) {
        bail!(
            "book/src/generated/side-effects.json has no ids per run for the timeline: \
             re-record it with `cargo xtask regen --only side-effects`"
        );
    }
    if runs.iter().all(|r| r.paused.is_none()) {
        bail!(
            "book/src/generated/side-effects.json has no paused-instance runs: re-record it \
             with `cargo xtask regen --only side-effects`"
        );
    }
    Ok(vec![
        (
            "side-effects.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from side-effects.json: a lab run, not typed -->\n\n{}",
                lab::faults::crash::db::DbOutcome::markdown_table(&runs)
            ),
        ),
        (
            "side-effects-paused.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from side-effects.json: a lab run, not typed -->\n\n{}",
                lab::faults::crash::db::paused::markdown_table(&runs)
            ),
        ),
        (
            "side-effects-timeline.svg".into(),
            lab::charts::side_effects_timeline(&runs).to_svg_string(),
        ),
    ])
}

fn measure_monitoring(clusters: &Clusters) -> Result<()> {
    let measured = lab::experiments::monitored::measure(
        &clusters.single,
        1000,
        1,
        &mut |label| println!("monitoring: {label}"),
    )?;
    record("monitoring.json", &measured)
}

fn monitoring_pages() -> Result<Vec<(String, String)>> {
    let record: lab::experiments::monitored::MonitoringRecord =
        recorded("monitoring.json")?;
    let backends = record
        .runs
        .iter()
        .map(|r| &r.backend_description)
        .chain([&record.open_transaction.backend_description]);
    if backends.clone().any(|b| !b.starts_with("Apache Kafka")) {
        bail!("book/src/generated/monitoring.json was not measured on Apache Kafka");
    }
    Ok(vec![
        (
            "monitoring.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from monitoring.json: a lab run, not typed -->\n\n{}",
                lab::experiments::monitored::markdown(&record)
            ),
        ),
        (
            "monitoring-open-transaction.md".into(),
            format!(
                "<!-- generated by `cargo xtask regen` from monitoring.json: a lab run, not typed -->\n\n{}",
                lab::experiments::monitored::open_transaction_markdown(&record.open_transaction)
            ),
        ),
        (
            "monitoring.svg".into(),
            lab::charts::monitoring_chart(&record).to_svg_string(),
        ),
        (
            "monitoring-open-transaction.svg".into(),
            lab::charts::open_transaction_chart(&record.open_transaction).to_svg_string(),
        ),
    ])
}

fn timeline_pages() -> Result<Vec<(String, String)>> {
    let runs: Vec<TimelineRun> = recorded("timeline.json")?;
    if runs
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .any(|o| o.backend != lab::Backend::Kafka)
    {
        bail!("book/src/generated/timeline.json was not measured on Apache Kafka");
    }
    let mut pages = Vec::new();
    for scenario in lab::experiments::timelines::scenarios() {
        let file = format!("timeline-{}.svg", scenario.letter().to_lowercase());
        let of: Vec<TimelineRun> = runs
            .iter()
            .filter(|r| r.scenario == scenario)
            .cloned()
            .collect();
        if of.is_empty() {
            bail!(
                "book/src/generated/timeline.json has no run of {}: measure it with \
                 `cargo xtask regen --only matrix`",
                scenario.label()
            );
        }
        pages.push((file, lab::charts::timeline_chart(&of).to_svg_string()));
    }
    Ok(pages)
}

/// The parts `only` names (all of them if it is empty), or an error listing
/// the names there are.
fn chosen(only: &[String]) -> Result<Vec<Part>> {
    let all = parts();
    if let Some(unknown) = only
        .iter()
        .find(|n| !all.iter().any(|p| p.name == n.as_str()))
    {
        bail!(
            "no part of the book is called {unknown:?}; there are: {}",
            all.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(all
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|n| n == p.name))
        .collect())
}

/// Measures the chosen parts on the course's local Apache Kafka clusters
/// (started if they are not running: the three-broker one only for parts
/// that need it), then renders their pages.
pub fn regen(only: &[String]) -> Result<()> {
    let parts = chosen(only)?;
    let single = kafka::up(Layout::Single)?;
    let three = if parts.iter().any(|p| p.needs_three) {
        let three = kafka::up(Layout::Three)?;
        Some(Cluster::connect(&three.bootstrap)?)
    } else {
        None
    };
    let clusters = Clusters {
        single: Cluster::connect(&single.bootstrap)?,
        three,
    };
    if clusters.single.backend() != lab::Backend::Kafka {
        bail!(
            "the book's figures come from Apache Kafka, not {}",
            clusters.single.describe()
        );
    }
    for part in &parts {
        println!("==> measuring {}", part.name);
        (part.measure)(&clusters)
            .with_context(|| format!("measuring {}", part.name))?;
        write_pages(part)?;
    }
    println!("regenerated {}", generated_dir().display());
    Ok(())
}

fn write_pages(part: &Part) -> Result<()> {
    for (name, contents) in (part.pages)()? {
        fs::write(generated_dir().join(name), contents)?;
    }
    Ok(())
}

/// Re-renders the chosen parts' pages from their recorded runs, measuring
/// nothing (for a change of layout).
pub fn render(only: &[String]) -> Result<()> {
    for part in chosen(only)? {
        write_pages(&part)?;
    }
    println!(
        "re-rendered {} from its recorded runs",
        generated_dir().display()
    );
    Ok(())
}

/// The generated pages must be what the generator makes of the current code and
/// the recorded runs: nobody edited them by hand, and they are not stale.
pub fn check_generated() -> Result<()> {
    for part in parts() {
        for (name, contents) in (part.pages)()? {
            if fs::read_to_string(generated_dir().join(&name)).ok() != Some(contents) {
                bail!(
                    "book/src/generated/{name} is stale or edited by hand: run                      `cargo xtask regen --render-only --only {}` (or measure anew:                      `cargo xtask regen --only {}`)",
                    part.name,
                    part.name
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_includes_with_and_without_anchors() {
        let text = "a {{#include ../x.rs:run}} b {{#include gen.md}} {{#title t}} {{#rustdoc_include y.rs:2:5}}";
        assert_eq!(includes(text), ["../x.rs:run", "gen.md", "y.rs:2:5"]);
    }

    #[test]
    fn the_books_includes_resolve_and_the_generated_pages_are_current() {
        check_includes(&src_dir()).unwrap();
        check_generated().unwrap();
    }

    #[test]
    fn an_unknown_anchor_or_a_missing_file_is_an_error() {
        let dir =
            std::env::temp_dir().join(format!("xtask-book-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("x.rs"),
            "// ANCHOR: here\nfn f() {}\n// ANCHOR_END: here\n",
        )
        .unwrap();
        fs::write(dir.join("ok.md"), "{{#include x.rs:here}}").unwrap();
        assert_eq!(check_includes(&dir).unwrap(), 1);
        fs::write(
            dir.join("bad.md"),
            "{{#include x.rs:there}} {{#include nope.rs}} ![a](gone.svg)",
        )
        .unwrap();
        let err = check_includes(&dir).unwrap_err().to_string();
        assert!(err.contains("no `ANCHOR: there`"), "{err}");
        assert!(err.contains("nope.rs: no such file"), "{err}");
        assert!(err.contains("gone.svg: no such file"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
