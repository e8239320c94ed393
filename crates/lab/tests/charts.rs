//! The charts, drawn from the recorded results in `book/src/generated/` (and
//! from small hand-made benchmark numbers) to SVG and PNG. No broker needed:
//!
//!     cargo test -p lab --test charts
//!
//! Set `LAB_CHARTS_KEEP=DIR` to keep a copy of every file drawn.
//!
//! Each file is checked for what a reader relies on: it is a whole SVG or PNG
//! of the promised size, and it names its series, its title and its source.

use std::path::{Path, PathBuf};

use lab::charts::{self, Chart};
use lab::experiments::bench::{BenchReport, Case};
use lab::experiments::matrix::{Cell, DbCell, DbCounts, DbVariant, Matrix};
use lab::Outcome;

fn generated(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../book/src/generated")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (recorded by `cargo xtask regen`, committed with the book)",
            path.display()
        )
    })
}

fn outcomes() -> Vec<Outcome> {
    serde_json::from_str(&generated("first-run.json"))
        .expect("first-run.json is a list of outcomes")
}

fn cells() -> Vec<Cell> {
    matrix().cells
}

/// The recorded matrix, with its database rows if it has them.
fn matrix() -> Matrix {
    serde_json::from_str(&generated("matrix.json"))
        .expect("matrix.json is a recorded matrix")
}

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "lab-charts-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small well-formedness check without an XML parser: one root `<svg>`
/// element, every tag closed in order, nothing after the root.
fn assert_svg(text: &str) {
    let text = text.trim();
    let body = match text.strip_prefix("<?xml") {
        Some(rest) => {
            rest[rest.find("?>").expect("XML declaration ends") + 2..].trim_start()
        }
        None => text,
    };
    assert!(
        body.starts_with("<svg"),
        "root element is <svg>: {}",
        &body[..40.min(body.len())]
    );
    assert!(body.ends_with("</svg>"), "ends with </svg>");
    let mut open: Vec<&str> = Vec::new();
    let mut rest = body;
    let mut roots = 0;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>').expect("every tag ends with >");
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if open.is_empty() {
            roots += 1;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let expected = open
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(expected, name.trim(), "tags close in order");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("a tag has a name");
            open.push(name);
        }
    }
    assert!(open.is_empty(), "unclosed tags: {open:?}");
    assert_eq!(roots, 1, "exactly one root element");
}

/// The PNG signature, then the IHDR chunk's width and height.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 33, "a PNG is longer than its header");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk is IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Text as the SVG backend escapes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// Renders `chart` to SVG and PNG in a temp dir, checks both files and that
/// the SVG holds every expected piece of text.
fn check(chart: &Chart, name: &str, expected: &[&str]) {
    let dir = TempDir::new(name);
    let svg_path = dir.0.join(format!("{name}.svg"));
    let png_path = dir.0.join(format!("{name}.png"));
    chart.save_svg(&svg_path).expect("SVG written");
    chart.save_png(&png_path).expect("PNG written");

    let svg = std::fs::read_to_string(&svg_path).expect("SVG is text");
    assert_svg(&svg);
    assert_eq!(svg, chart.to_svg_string(), "the same drawing every time");
    let (width, height) = chart.size();
    // Wider, and the book's column would shrink it and its text with it.
    assert!(
        width <= charts::BOOK_WIDTH,
        "{name} is {width} px wide, the book's column {}",
        charts::BOOK_WIDTH
    );
    assert!(svg.contains(&format!("width=\"{width}\"")), "SVG width");
    assert!(svg.contains(&format!("height=\"{height}\"")), "SVG height");
    for text in expected.iter().chain([&chart.title()]) {
        assert!(svg.contains(&escaped(text)), "{name}.svg shows {text:?}");
    }

    let png = std::fs::read(&png_path).expect("PNG readable");
    assert_eq!(png_size(&png), chart.size(), "PNG dimensions");

    // LAB_CHARTS_KEEP=DIR keeps a copy of every file, to look at them.
    if let Some(keep) = std::env::var_os("LAB_CHARTS_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("LAB_CHARTS_KEEP is a directory");
        std::fs::copy(&svg_path, keep.join(format!("{name}.svg"))).expect("copied");
        std::fs::copy(&png_path, keep.join(format!("{name}.png"))).expect("copied");
    }
}

#[test]
fn outcomes_chart_from_the_first_run() {
    let outcomes = outcomes();
    assert!(!outcomes.is_empty());
    let chart = charts::outcomes_chart(&outcomes);
    let mut expected = vec![
        "delivered",
        "lost",
        "duplicated",
        "records",
        "delivery semantic",
    ];
    for o in &outcomes {
        expected.push(o.semantic.name());
        expected.push(&o.backend_description);
        expected.push(&o.kafka_version);
    }
    assert!(chart.caption().contains(&outcomes[0].backend_description));
    check(&chart, "outcomes", &expected);
}

#[test]
fn matrix_chart_from_the_recorded_matrix() {
    let cells = cells();
    assert!(!cells.is_empty());
    let chart = charts::matrix_chart(&cells);
    let labels: Vec<String> = cells.iter().map(|c| c.case.label()).collect();
    let mut expected: Vec<&str> = vec![
        "lost records",
        "duplicated records",
        "one run",
        "failure scenario",
    ];
    expected.extend(labels.iter().map(String::as_str));
    for c in &cells {
        // Long scenario labels wrap onto two lines under their group: each
        // word must be there.
        expected.extend(c.scenario.letter().split_whitespace());
        expected.extend(c.scenario.title().split_whitespace());
        if c.result.is_ok() {
            expected.push(&c.backend);
        }
    }
    if cells.iter().any(|c| c.result.is_err()) {
        expected.push("refused: not run");
    }
    check(&chart, "matrix", &expected);
}

/// The matrix with its database rows: one more group, a bar per consumer in
/// a colour of its own, and a note saying what those bars count.
#[test]
fn matrix_chart_with_database_rows() {
    let mut matrix = matrix();
    let backend = "Apache Kafka 4.4.0, 1 broker at 127.0.0.1:9092";
    matrix.database = DbVariant::ALL
        .into_iter()
        .enumerate()
        .flat_map(|(i, variant)| {
            (1..=3).map(move |seed| DbCell {
                variant,
                repetition: seed as u32 - 1,
                seed,
                result: Ok(DbCounts {
                    source: 2000,
                    rows_lost: if i == 1 { 100 } else { 0 },
                    rows_duplicated: if i == 0 { 200 } else { 0 },
                    notifications_lost: 0,
                    notifications_duplicated: 0,
                }),
                backend: backend.into(),
                seconds: 15.0,
            })
        })
        .collect();
    let chart = charts::matrix_chart_of(&matrix);
    let mut expected: Vec<&str> = DbVariant::ALL.map(DbVariant::label).to_vec();
    expected.extend(["F", "database", "sink", "its bars count the table's rows"]);
    check(&chart, "matrix-database", &expected);
    // Without database rows, the chart is the semantics' alone.
    matrix.database.clear();
    let svg = charts::matrix_chart_of(&matrix).to_svg_string();
    assert!(!svg.contains("database sink"));
}

#[test]
fn benchmark_charts_from_plain_numbers() {
    let source = "Apache Kafka 4.1.1, 1 broker at 127.0.0.1:9092";
    let throughput = charts::throughput_chart(
        source,
        &[
            ("acks=0", 1_020_000.0),
            ("acks=all", 310_500.0),
            ("transactions, 100 ms", 142_000.0),
        ],
    );
    check(
        &throughput,
        "throughput",
        &[
            "Throughput",
            "records per second",
            "acks=0",
            "acks=all",
            "1.02 M",
            "310.5 k",
            source,
        ],
    );

    let rows = vec![
        ("at-most-once".to_string(), 0.4, 2.5, 9.0),
        ("at-least-once".to_string(), 1.2, 6.0, 31.0),
        ("exactly-once".to_string(), 3.1, 120.0, 240.5),
    ];
    let latency = charts::latency_chart(source, &rows)
        .with_title("Latency, acks to delivery report");
    check(
        &latency,
        "latency",
        &[
            "p50",
            "p99",
            "p99.9",
            "latency (ms)",
            "exactly-once",
            "240",
            source,
        ],
    );
}

fn bench_report() -> BenchReport {
    serde_json::from_str(&generated("bench.json"))
        .expect("bench.json is a lab bench report")
}

/// Thick lines drawn: every line series is one polyline of width 3, and so
/// is its swatch in the legend (grid lines are thin).
fn thick_lines(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|p| p[..p.find('>').unwrap_or(p.len())].contains("stroke-width=\"3\""))
        .count()
}

#[test]
fn bench_charts_from_the_recorded_benchmark() {
    let report = bench_report();
    assert!(report.backend_description.starts_with("Apache Kafka"));
    let charts = charts::bench_charts(&report);
    let names: Vec<&str> = charts.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["bench-throughput", "bench-latency", "bench-eos-cost"]
    );
    for (name, chart) in &charts {
        assert!(
            chart.caption().contains(&report.backend_description),
            "{name} names its source"
        );
    }
    let chart = |name: &str| &charts.iter().find(|(n, _)| *n == name).unwrap().1;

    // Throughput: every case (long labels wrap: each word is there), both
    // clients; the transactional cases in a panel of their own, by interval.
    let mut expected = vec![
        "lab (librdkafka)",
        "ProducerPerformance (Java client)",
        "records per second",
        "Without transactions",
        "Transactional, by commit interval",
        report.librdkafka_version.as_str(),
    ];
    let mut intervals = Vec::new();
    for f in &report.figures {
        match f.case {
            Case::Transactional { commit_interval_ms } => {
                intervals.push(commit_interval_ms.to_string())
            }
            _ => expected.extend(f.label.split_whitespace()),
        }
    }
    assert!(
        !intervals.is_empty(),
        "the recorded benchmark has transactional cases"
    );
    expected.extend(intervals.iter().map(String::as_str));
    expected.push("every");
    check(chart("bench-throughput"), "bench-throughput", &expected);

    // Latency: a curve per guarantee's typical setting, in both panels.
    let shown: Vec<&str> = report
        .figures
        .iter()
        .filter(|f| match f.case {
            Case::Transactional { commit_interval_ms } => {
                [100, 1000].contains(&commit_interval_ms)
            }
            _ => true,
        })
        .map(|f| f.label.as_str())
        .collect();
    assert!(shown.len() >= 4, "{shown:?}");
    let mut expected = shown.clone();
    expected.extend(["latency (ms)", "50%", "99%", "Send to acknowledgement"]);
    let latency = chart("bench-latency");
    check(latency, "bench-latency", &expected);
    let with_e2e = report
        .figures
        .iter()
        .filter(|f| shown.contains(&f.label.as_str()) && f.end_to_end.is_some())
        .count();
    assert_eq!(
        thick_lines(&latency.to_svg_string()),
        shown.len() + shown.len() + with_e2e,
        "a legend swatch per case, and a line per case and panel"
    );

    // The exactly-once cost: the transactional curve against the two references.
    let intervals: Vec<u64> = report
        .figures
        .iter()
        .filter_map(|f| match f.case {
            Case::Transactional { commit_interval_ms } => Some(commit_interval_ms),
            _ => None,
        })
        .collect();
    assert!(intervals.len() >= 3, "{intervals:?}");
    let cost = chart("bench-eos-cost");
    check(
        cost,
        "bench-eos-cost",
        &[
            "transactional",
            "transactional, one run",
            "idempotent (no transactions)",
            "acks=all (no transactions)",
            "commit interval (ms)",
            "median latency (ms)",
        ],
    );
    // Three line series (the curve and two references) in each panel, and
    // their three legend swatches.
    assert_eq!(thick_lines(&cost.to_svg_string()), 3 + 3 + 3);
}

fn timeline_runs() -> Vec<charts::TimelineRun> {
    serde_json::from_str(&generated("timeline.json"))
        .expect("timeline.json is a list of timeline runs")
}

/// How many filled circles of `color` (`#RRGGBB`) the SVG draws.
fn circles(svg: &str, color: &str) -> usize {
    svg.split("<circle")
        .skip(1)
        .filter(|c| {
            c[..c.find("/>").unwrap_or(c.len())].contains(&format!("fill=\"{color}\""))
        })
        .count()
}

#[test]
fn timeline_charts_from_the_recorded_runs() {
    use lab::experiments::matrix::Scenario;
    let runs = timeline_runs();
    for scenario in [
        Scenario::LostAck,
        Scenario::ProducerCrash,
        Scenario::ConsumerCrash,
        Scenario::LeaderFailure,
    ] {
        let of: Vec<charts::TimelineRun> = runs
            .iter()
            .filter(|r| r.scenario == scenario)
            .cloned()
            .collect();
        assert!(!of.is_empty(), "timeline.json has runs of {scenario:?}");
        let chart = charts::timeline_chart(&of);
        let svg = chart.to_svg_string();
        let mut expected = vec!["record id (in send order)", "times delivered"];
        let (mut lost, mut duplicated) = (0, 0);
        for r in &of {
            match &r.result {
                Ok(o) => {
                    let w = o
                        .window
                        .as_ref()
                        .expect("every scenario records its window");
                    expected.push(&w.label);
                    expected.extend(o.backend_description.split_whitespace());
                    expected.push(&o.kafka_version);
                    if o.fates.lost.len() < o.records {
                        expected.push(charts::timeline::DELIVERED_ONCE);
                    }
                    lost += o.fates.lost.len() as usize;
                    duplicated += o.fates.duplicated_ids().count();
                    // What the chart draws is what the counts say.
                    assert_eq!(o.fates.lost.len(), o.counts.lost);
                    assert_eq!(o.fates.extra_copies(), o.counts.duplicated);
                }
                // A refusal is said in words, never drawn as a clean run.
                Err(why) => {
                    expected.push("refused");
                    expected.extend(why.split_whitespace());
                }
            }
        }
        let headings: Vec<String> = of
            .iter()
            .filter_map(|r| {
                let c = &r.result.as_ref().ok()?.counts;
                Some(format!(
                    "{}: {} lost, {} duplicated",
                    r.case.label(),
                    c.lost,
                    c.duplicated
                ))
            })
            .collect();
        expected.extend(headings.iter().map(String::as_str));
        if lost > 0 {
            expected.push(charts::timeline::LOST);
        }
        if duplicated > 0 {
            expected.push(charts::timeline::DUPLICATED);
        }
        // One point per lost id (vermillion) and per duplicated id (blue),
        // plus at most one legend marker each.
        let (red, blue) = (circles(&svg, "#D55E00"), circles(&svg, "#0072B2"));
        assert!(
            red == lost || red == lost + 1,
            "{red} vermillion points for {lost} lost"
        );
        assert!(
            blue == duplicated || blue == duplicated + 1,
            "{blue} blue points for {duplicated} duplicated"
        );
        check(&chart, &format!("timeline-{scenario:?}"), &expected);
    }
}

#[test]
fn a_timeline_marks_lost_and_repeated_records_and_shades_an_empty_window() {
    // A recorded outcome with its fates replaced: 3 lost, 2 twice, 1 three times.
    let mut o = timeline_runs()
        .into_iter()
        .find_map(|r| r.result.ok())
        .expect("a recorded outcome");
    o.records = 100;
    o.counts.lost = 3;
    o.counts.duplicated = 4;
    o.fates = serde_json::from_str(
        r#"{"lost": [[40, 42]], "duplicated": [{"times": 2, "ids": [[50, 51]]},
            {"times": 3, "ids": [[60, 60]]}]}"#,
    )
    .unwrap();
    o.window = Some(lab::outcome::FaultWindow::span("nothing reached", 30..30));
    let chart = charts::outcome_timeline(&o);
    let svg = chart.to_svg_string();
    assert!(circles(&svg, "#D55E00") >= 3 && circles(&svg, "#D55E00") <= 4);
    assert!(circles(&svg, "#0072B2") >= 3 && circles(&svg, "#0072B2") <= 4);
    check(
        &chart,
        "timeline-one",
        &[
            "nothing reached",
            "3 lost, 4 duplicated",
            charts::timeline::LOST,
        ],
    );
}

#[test]
fn empty_inputs_still_draw() {
    check(&charts::outcomes_chart(&[]), "empty-outcomes", &["no runs"]);
    check(
        &charts::throughput_chart("nothing", &[] as &[(&str, f64)]),
        "empty-rate",
        &["nothing"],
    );
}

#[test]
fn the_cli_writes_every_file() {
    let dir = TempDir::new("cli");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src/generated");
    let written = charts::write_charts(
        Some(&root.join("matrix.json")),
        Some(&root.join("first-run.json")),
        &dir.0.join("out"),
    )
    .expect("charts written");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["matrix.svg", "matrix.png", "outcomes.svg", "outcomes.png"]
    );
    for path in written {
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1000,
            "{}",
            path.display()
        );
    }
    assert!(
        charts::write_charts(None, None, &dir.0).is_err(),
        "nothing to chart"
    );
}

fn monitoring() -> lab::experiments::monitored::MonitoringRecord {
    serde_json::from_str(&generated("monitoring.json"))
        .expect("monitoring.json is a monitoring record")
}

#[test]
fn monitoring_charts_from_the_recorded_statistics() {
    use lab::charts::{monitoring_chart, open_transaction_chart};
    let record = monitoring();
    // The chart names the Kafka the statistics were recorded on.
    let recorded_on =
        |description: &str| description.split(',').next().unwrap().to_string();
    let runs_on = recorded_on(&record.runs[0].backend_description);
    let open_on = recorded_on(&record.open_transaction.backend_description);
    assert!(runs_on.starts_with("Apache Kafka 4."), "{runs_on}");
    check(
        &monitoring_chart(&record),
        "monitoring",
        &[
            "records sent again (txmsgs beyond msgs)",
            "duplicated (audit)",
            "lost (audit)",
            "request timeouts (req_timeouts)",
            "producer id assignments (epoch_cnt)",
            "transactions aborted (lab events)",
            "A, ALO",
            "E3, EOS",
            &runs_on,
        ],
    );
    let open = &record.open_transaction;
    check(
        &open_transaction_chart(open),
        "monitoring-open-transaction",
        &[
            "high watermark (hi_offset)",
            "last stable offset (ls_offset)",
            "committed offset of the reader",
            "reader behind the high watermark",
            "librdkafka consumer_lag (against the LSO)",
            "transaction open",
            &open_on,
        ],
    );
    // What the lines are drawn from: the reader held at the LSO while open.
    assert!(
        open.reader_while_open()
            .iter()
            .any(|p| p.behind_high_watermark() > Some(0)),
        "the recorded reader was never behind while the transaction was open"
    );
}

#[test]
fn a_notebook_gets_a_png_beside_the_svg() {
    // An untrusted notebook drops the HTML (the SVG); the PNG still renders.
    let chart = charts::outcomes_chart(&outcomes());
    let bundle = chart.display_bundle();
    let blocks: Vec<&str> = bundle.split("EVCXR_END_CONTENT").collect();
    let html = blocks[0]
        .trim_start()
        .strip_prefix("EVCXR_BEGIN_CONTENT text/html\n")
        .unwrap();
    assert_svg(html);
    let png = blocks[1]
        .trim_start()
        .strip_prefix("EVCXR_BEGIN_CONTENT image/png\n")
        .unwrap();
    // The PNG signature, base64-encoded; the rest decodes to the chart's size.
    assert!(
        png.starts_with("iVBORw0KGgo"),
        "{}",
        &png[..40.min(png.len())]
    );
    assert_eq!(png_size(&chart.to_png_bytes()), chart.size());
    assert!(png.trim_end().len() > 1000);
}

#[test]
fn a_graded_exercise_draws_its_runs_lost_and_duplicated_ids_where_they_fell() {
    use lab::audit::IdRanges;
    use lab::exercise::code::SeedRun;
    use lab::exercise::{catalog, CodeGrade, Program};
    let run = |lost: std::ops::Range<u64>, duplicated: std::ops::Range<u64>| SeedRun {
        crash: None,
        crashed: true,
        errors: None,
        rebalance: None,
        lost: IdRanges::from_ids(lost),
        duplicated: IdRanges::from_ids(duplicated),
        problems: Vec::new(),
    };
    let grade = CodeGrade {
        exercise: catalog::find("at-least-once-consumer").unwrap(),
        program: Program::Learner,
        runs: vec![run(10..17, 0..0), run(0..0, 100..105)],
    };
    let svg = grade.timeline().to_svg_string();
    // One point per id (7 lost in the first run, 5 repeated in the second),
    // plus each series' legend marker.
    assert_eq!(circles(&svg, "#D55E00"), 7 + 1);
    assert_eq!(circles(&svg, "#0072B2"), 5 + 1);
    for heading in [
        "run 1: nothing injected: 7 lost",
        "run 2: nothing injected: 0 lost, 5 duplicated",
    ] {
        assert!(svg.contains(heading), "{heading:?} in the chart");
    }
}

#[test]
fn side_effects_timeline_from_the_recorded_runs() {
    use lab::charts::timeline::{MISSING, ONCE_EXACTLY, REPEATED};
    use lab::faults::crash::db::{DbOutcome, DbVariant};
    let runs: Vec<DbOutcome> = serde_json::from_str(&generated("side-effects.json"))
        .expect("side-effects.json is a list of database-sink runs");
    let first = |v: DbVariant| {
        runs.iter()
            .filter(|r| r.variant == v && !r.rebalance)
            .min_by_key(|r| r.seed)
            .expect("a crash run of variants 1 and 4")
    };
    let (naive, in_db) = (
        first(DbVariant::RowThenCommit),
        first(DbVariant::OffsetsInDb),
    );
    for run in [naive, in_db] {
        // The recorded ids agree with the recorded counts.
        let f = &run.fates;
        assert_eq!(f.rows_missing.len(), run.rows.missing, "{run}");
        assert_eq!(
            f.notifications_missing.len(),
            run.notifications.missing,
            "{run}"
        );
        assert!(f.rows_duplicated.len() <= run.rows.duplicated, "{run}");
        assert_eq!(f.held_when_killed.len(), 2, "two workers killed:\n{run}");
    }
    let chart = charts::side_effects_timeline(&runs);
    let svg = chart.to_svg_string();
    // One point per repeated or missing id, and one legend marker per series.
    let (n, d) = (&naive.fates, &in_db.fates);
    let repeated = n.rows_duplicated.len()
        + n.notifications_duplicated.len()
        + d.rows_duplicated.len()
        + d.notifications_duplicated.len();
    let missing = n.rows_missing.len()
        + n.notifications_missing.len()
        + d.rows_missing.len()
        + d.notifications_missing.len();
    assert!(repeated > 0 && missing > 0, "the runs show both");
    assert_eq!(circles(&svg, "#0072B2") as u64, repeated + 1);
    assert_eq!(circles(&svg, "#D55E00") as u64, missing + 1);
    check(
        &chart,
        "side-effects-timeline",
        &[
            MISSING,
            REPEATED,
            ONCE_EXACTLY,
            "batches of the 2 killed workers",
            &format!(
                "1. row, then Kafka commit: table rows: {} ids repeated",
                n.rows_duplicated.len()
            ),
            &format!(
                "4. offsets in the database: notifications: 0 ids repeated, {} missing",
                d.notifications_missing.len()
            ),
        ],
    );
}

fn nemesis_record() -> lab::faults::nemesis::NemesisRecord {
    serde_json::from_str(&generated("nemesis.json"))
        .expect("nemesis.json is a recorded nemesis run")
}

/// `#RRGGBB`, as the SVG backend writes a colour.
fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// How many filled rectangles of `color` (`#RRGGBB`) the SVG draws.
fn rects(svg: &str, color: &str) -> usize {
    svg.split("<rect")
        .skip(1)
        .filter(|r| {
            r[..r.find("/>").unwrap_or(r.len())].contains(&format!("fill=\"{color}\""))
        })
        .count()
}

/// A recorded run cut down by hand: exactly-once met a broker kill, a lost
/// EndTxn response and a skipped zombie, and had one hung processor
/// replaced; at-least-once met the broker kill only and duplicated 5
/// records, one of them shown at 25 s on the checker's clock.
fn small_nemesis_run() -> lab::faults::nemesis::NemesisRun {
    use lab::faults::nemesis::{FaultKind, Replacement};
    let mut run = nemesis_record().runs.remove(0);
    let template = run.exactly_once.executed.injected[0].clone();
    let fault =
        |step, kind, from: f64, to: f64, detail: &str| lab::faults::nemesis::Injected {
            step,
            kind,
            detail: detail.into(),
            at_records: 1000 * (step as u64 + 1),
            started_s: from,
            ended_s: to,
            ..template.clone()
        };
    let e = &mut run.exactly_once.executed;
    e.injected = vec![
        fault(0, FaultKind::BrokerKill, 10.0, 20.0, "broker 1: SIGKILL"),
        fault(0, FaultKind::LostEndTxnResponse, 10.0, 14.0, "used"),
        fault(
            1,
            FaultKind::ZombiePause,
            40.0,
            40.0,
            "skipped: no processor running",
        ),
    ];
    e.replacements = vec![Replacement {
        at_s: 30.0,
        after_step: Some(0),
        hung: true,
        reason: "committed nothing".into(),
    }];
    assert!(
        run.exactly_once.verdict.clean(),
        "the recorded first run is clean"
    );
    let alo = run.at_least_once.as_mut().expect("at-least-once ran");
    alo.executed.injected = vec![fault(
        0,
        FaultKind::BrokerKill,
        11.0,
        19.0,
        "broker 1: SIGKILL",
    )];
    alo.executed.replacements.clear();
    let d = &mut alo.verdict.duplicated;
    d.count = 5;
    d.shown = vec![lab::audit::checker::Finding {
        id: 7,
        at_ms: 25_000,
        faults: Vec::new(),
    }];
    alo.verdict.lost.count = 0;
    run
}

#[test]
fn a_nemesis_timeline_draws_each_fault_kind_replacement_and_verdict() {
    use charts::nemesis::{ANOMALY, HUNG, PROGRESS};
    use lab::faults::nemesis::FaultKind;
    let run = small_nemesis_run();
    let chart = charts::nemesis_timeline(&run);
    let svg = chart.to_svg_string();
    // A bar per fault that struck, in its kind's colour (one per panel for
    // the broker kill), plus the kind's legend swatch; the skipped zombie
    // and the kinds that never struck have no bar, no row, no legend entry.
    assert_eq!(
        rects(&svg, &hex(charts::kind_color(FaultKind::BrokerKill))),
        2 + 1
    );
    assert_eq!(
        rects(
            &svg,
            &hex(charts::kind_color(FaultKind::LostEndTxnResponse))
        ),
        1 + 1
    );
    for kind in FaultKind::ALL {
        let present =
            matches!(kind, FaultKind::BrokerKill | FaultKind::LostEndTxnResponse);
        if !present {
            assert_eq!(rects(&svg, &hex(charts::kind_color(kind))), 0, "{kind:?}");
        }
        // Named on its row and in the legend; the skipped one in a note only.
        let named = svg.matches(&escaped(kind.label())).count();
        let want = match kind {
            _ if present => 2,
            FaultKind::ZombiePause => 1,
            _ => 0,
        };
        assert!(
            named >= want && (present || named == want),
            "{kind:?}: {named}"
        );
    }
    // The hung processor's replacement: a point and its legend marker.
    assert_eq!(circles(&svg, "#5A5A5A"), 1 + 1);
    // The anomaly, red, on its own row, labelled with its kind.
    assert_eq!(circles(&svg, "#C80000"), 1 + 1);
    // Each panel's heading is its verdict, in words, from the counts.
    let eos =
        charts::verdict_words(run.exactly_once.semantic, &run.exactly_once.verdict);
    assert!(
        eos.starts_with("exactly-once: clean (0 lost, 0 duplicated"),
        "{eos}"
    );
    let alo = run.at_least_once.as_ref().unwrap();
    assert_eq!(
        charts::verdict_words(alo.semantic, &alo.verdict),
        "at-least-once: 0 lost, 5 duplicated"
    );
    let mut expected =
        vec![HUNG, PROGRESS, ANOMALY, "duplicated", "not struck", "1,000"];
    expected.extend(eos.split_whitespace());
    expected.push("at-least-once: 0 lost, 5 duplicated");
    check(&chart, "nemesis-timeline", &expected);

    // No replacement: no point and no legend entry for one.
    let mut quiet = run.clone();
    quiet.exactly_once.executed.replacements.clear();
    let svg = charts::nemesis_timeline(&quiet).to_svg_string();
    assert_eq!(circles(&svg, "#5A5A5A"), 0);
    assert!(!svg.contains(HUNG));

    // A history that is not clean says so in its heading.
    let mut broken = run;
    broken.exactly_once.verdict.lost.count = 3;
    let words = charts::verdict_words(
        broken.exactly_once.semantic,
        &broken.exactly_once.verdict,
    );
    assert!(
        words.starts_with("exactly-once: NOT clean (3 lost, 0 duplicated"),
        "{words}"
    );
    let svg = charts::nemesis_timeline(&broken).to_svg_string();
    assert!(
        svg.contains("NOT") && !svg.contains(">clean"),
        "the heading says NOT clean"
    );
}

#[test]
fn the_nemesis_summary_has_one_position_per_schedule() {
    let mut record = nemesis_record();
    let first = record.runs[0].clone();
    // Fifty schedules: the recorded first one under fifty seeds, one of them
    // not clean.
    record.runs = (1..=50)
        .map(|seed| {
            let mut r = first.clone();
            r.seed = seed;
            r
        })
        .collect();
    record.runs[9].exactly_once.verdict.duplicated.count = 4;
    let chart = charts::nemesis_summary_chart(&record);
    let svg = chart.to_svg_string();
    // Each series a point per schedule, and a legend marker.
    for color in ["#0072B2", "#D55E00", "#009E73", "#5A5A5A"] {
        assert_eq!(circles(&svg, color), 50 + 1, "{color}");
    }
    check(
        &chart,
        "nemesis-summary",
        &[
            "at-least-once: duplicated",
            "exactly-once: anomalies",
            "50 schedules",
            &record.cluster,
        ],
    );
    // The book's charts: the summary, the first schedule, and the one that
    // is not clean.
    let stems: Vec<String> = charts::nemesis_charts(&record)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        stems,
        [
            "nemesis-summary",
            "nemesis-timeline-seed-1",
            "nemesis-timeline-seed-10"
        ]
    );
}
