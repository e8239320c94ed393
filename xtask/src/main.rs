//! The course's tasks. `cargo xtask --help` lists them; the two that matter:
//!
//!     cargo xtask course   # a fresh clone to a working course: Kafka, book, JupyterLab
//!     cargo xtask test     # every test, against a real Apache Kafka broker

mod book;
mod book_holes;
mod book_holes_leader;
mod book_nemesis;
mod book_pipeline;
mod book_protocols;
mod browser;
mod compose;
mod kafka;
mod kernels;
mod notebooks;
mod tools;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use kafka::Layout;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Tasks of the course Delivery Semantics in Kafka"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Start everything a learner needs: Kafka, the book at http://localhost:3000,
    /// and JupyterLab with the Rust kernel on notebooks/
    Course,
    /// Run every test: unit tests, the semantics on real Kafka, the book, the notebooks
    Test,
    /// Install mdBook, the evcxr Jupyter kernel and Jupyter (pinned, cached)
    Setup,
    /// A local Apache Kafka without Docker
    Kafka {
        #[command(subcommand)]
        action: KafkaAction,
    },
    /// Check the book's includes and build it into book/book
    Book {
        /// Then open every page in headless Chromium at 1280 px: fail on
        /// anything wider than the text column, a missing image, a broken
        /// link or a console error (Debian's `chromium` package)
        #[arg(long)]
        check: bool,
    },
    /// Re-measure the book's tables on Apache Kafka (starts the local clusters
    /// if needed; the scenario matrix takes several minutes)
    Regen {
        /// Only re-render the pages from the recorded JSON (no measuring)
        #[arg(long)]
        render_only: bool,
        /// Only these parts (repeatable or comma-separated): settings,
        /// first-run, matrix, ...; an unknown name lists them all
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Execute the notebooks headlessly, failing on any failed cell
    Notebooks,
    /// Grade a write-code exercise of crates/exercises/src/ on the local
    /// broker: your program, killed with SIGKILL at seeded points, audited
    /// by id (no NAME: list them)
    Exercise {
        name: Option<String>,
        /// Grade the course's solution instead of your code
        #[arg(long)]
        solution: bool,
    },
}

#[derive(Subcommand)]
enum KafkaAction {
    /// Start the broker(s) and wait until they answer
    Up {
        /// Three brokers on 127.0.0.1:19092-19094 (replication 3, min.insync.replicas=2)
        #[arg(long)]
        three: bool,
        /// A second such cluster, on 127.0.0.1:29092-29094 (the nemesis
        /// campaign then runs two schedules at once)
        #[arg(long, conflicts_with_all = ["three", "secured"])]
        three_spare: bool,
        /// One broker on 127.0.0.1:9192 that asks for a password (SASL/PLAIN);
        /// its client settings are written to a file `up` names
        #[arg(long, conflicts_with = "three")]
        secured: bool,
    },
    /// Stop the broker(s) and delete their data
    Down {
        #[arg(long)]
        three: bool,
        #[arg(long, conflicts_with_all = ["three", "secured"])]
        three_spare: bool,
        #[arg(long, conflicts_with = "three")]
        secured: bool,
    },
    /// Show which local clusters are running
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Course => course(),
        Task::Test => test(),
        Task::Setup => tools::setup(tools::Purpose::Course),
        Task::Kafka { action } => match action {
            KafkaAction::Up {
                three,
                three_spare,
                secured,
            } => kafka::up(layout(three, three_spare, secured)).map(|_| ()),
            KafkaAction::Down {
                three,
                three_spare,
                secured,
            } => kafka::down(layout(three, three_spare, secured)),
            KafkaAction::Status => kafka::status(),
        },
        Task::Book { check } => book::build().and_then(|_| {
            if check {
                browser::check_catches_broken_page()?;
                browser::check_book()
            } else {
                Ok(())
            }
        }),
        Task::Regen { render_only, only } => {
            if render_only {
                book::render(&only)
            } else {
                book::regen(&only)
            }
        }
        Task::Notebooks => notebooks::run_all(),
        Task::Exercise { name, solution } => exercise(name.as_deref(), solution),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn layout(three: bool, three_spare: bool, secured: bool) -> Layout {
    match (three, three_spare, secured) {
        (true, _, _) => Layout::Three,
        (_, true, _) => Layout::ThreeSpare,
        (_, _, true) => Layout::Secured,
        _ => Layout::Single,
    }
}

/// The repository's root (xtask lives one level below it). `cargo run` sets
/// CARGO_MANIFEST_DIR at run time too, and that one wins: two clones sharing a
/// target directory can run a binary built in the other clone (cargo judges
/// freshness by file times), whose compiled-in path may no longer exist.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("xtask is inside the repository")
        .to_path_buf()
}

/// Runs a command with its output captured; shows the output only if it fails.
pub fn run_quiet(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs a command with its output shown as it goes.
pub fn run_loud(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn course() -> Result<()> {
    tools::setup(tools::Purpose::Course)?;
    prebuild_programs()?;
    let (bootstrap, whose) = course_kafka()?;
    book::mermaid_js()?;
    let mut book = Command::new("mdbook")
        .args(["serve", "--port", "3000"])
        .arg(repo_root().join("book"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mdbook serve")?;
    println!("\nThe book:      http://localhost:3000");
    println!("Kafka:         {bootstrap} ({whose})");
    println!("JupyterLab:    starting on notebooks/ (its address follows; Ctrl-C stops it and the book)\n");
    let mut jupyter = Command::new(tools::venv_bin("jupyter"));
    jupyter.args(["lab", "--no-browser"]);
    if running_as_root() {
        // JupyterLab refuses root unless told (and then exits 0 without a
        // server); containers often run as root, so say it and allow it.
        println!("(running as root: JupyterLab is started with --allow-root)\n");
        jupyter.arg("--allow-root");
    }
    // Rooted at the repository, so that its file browser and editor reach
    // crates/exercises/src/ (the write-code exercises); it opens on notebooks/.
    jupyter.arg("--LabApp.default_url=/lab/tree/notebooks");
    let lab = jupyter
        .current_dir(repo_root())
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .status();
    let _ = book.kill();
    let status = lab.context("starting JupyterLab")?;
    // Ctrl-C ends JupyterLab with SIGINT's status: that is the normal way out.
    let stopped_by_ctrl_c = matches!(status.code(), None | Some(130));
    if !status.success() && !stopped_by_ctrl_c {
        bail!(
            "JupyterLab exited with {status} (its messages are above), so the book server \
             was stopped too; Kafka is still up (`cargo xtask kafka down` stops it)"
        );
    }
    Ok(())
}

/// The Kafka the course's notebooks use: the broker `KAFKA_BOOTSTRAP_SERVERS`
/// names if it is set (a docker compose broker, a team cluster), checked to
/// answer; otherwise the course's own local broker, started if needed.
/// Returns its address and who looks after it.
fn course_kafka() -> Result<(String, &'static str)> {
    let named = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty());
    match named {
        Some(bootstrap) => {
            let cluster = lab::Cluster::connect(&bootstrap)
                .with_context(|| format!("KAFKA_BOOTSTRAP_SERVERS={bootstrap}"))?;
            Ok((
                cluster.bootstrap().to_string(),
                "from KAFKA_BOOTSTRAP_SERVERS: the course did not start it",
            ))
        }
        None => Ok((
            kafka::up(Layout::Single)?.bootstrap,
            "stop it with `cargo xtask kafka down`",
        )),
    }
}

/// Builds the programs notebook cells start as child processes (the crash
/// scenarios' `lab` worker, the exercises and their solutions), so that the
/// first crash or grade cell does not sit compiling for minutes.
fn prebuild_programs() -> Result<()> {
    println!("building the lab's worker and the exercises (seconds when up to date)");
    // Two builds, as the notebooks' cells ask for them: built together, cargo
    // would give both the lab's command-line features and build it twice.
    for args in [
        ["-p", "lab", "--bin", "lab"],
        ["-p", "exercises", "--bins", ""],
    ] {
        let args = args.into_iter().filter(|a| !a.is_empty());
        run_loud(
            Command::new(env!("CARGO"))
                .args(["build", "--quiet"])
                .args(args),
            "building the lab worker and the exercises",
        )?;
    }
    Ok(())
}

/// Grades one write-code exercise, or lists them.
fn exercise(name: Option<&str>, solution: bool) -> Result<()> {
    use lab::exercise::{catalog, code};
    let Some(name) = name else {
        println!("The write-code exercises (your code in crates/exercises/src/):");
        for e in catalog::EXERCISES {
            println!("  {:<24} {} (book/src/{})", e.name, e.title, e.page);
        }
        println!(
            "Grade one with `cargo xtask exercise NAME` (`--solution`: the course's)."
        );
        return Ok(());
    };
    let exercise = catalog::find(name)?;
    let cluster = lab::Cluster::from_env()?;
    let program = if solution {
        code::Program::Solution
    } else {
        code::Program::Learner
    };
    let how = match exercise.shape {
        catalog::Shape::Transactional => "each run injects a retriable, an abortable and a fatal error into your program",
        catalog::Shape::Database => "two runs kill and replace your program, a third runs two instances of it through a rebalance",
        _ => "each run starts, kills and replaces your program",
    };
    println!(
        "grading {name} on {} (a minute or so: {how})",
        cluster.bootstrap()
    );
    let grade = code::grade_program(&cluster, exercise, program)?;
    print!("{grade}");
    if !grade.passed() {
        bail!("{name}: not yet (see above)");
    }
    Ok(())
}

/// Whether this process runs as root: `/proc/self` belongs to the process's
/// effective user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Every test, in the order a failure is cheapest to find. The local broker is
/// stopped at the end whatever happens.
fn test() -> Result<()> {
    struct StopBrokers;
    impl Drop for StopBrokers {
        fn drop(&mut self) {
            let _ = kafka::down(Layout::Secured);
            let _ = kafka::down(Layout::Three);
            let _ = kafka::down(Layout::Single);
        }
    }
    let _stop = StopBrokers;
    let started = Instant::now();
    type Step = Box<dyn Fn() -> Result<()>>;
    let steps: Vec<(&str, Step)> = vec![
        (
            "install tools",
            Box::new(|| tools::setup(tools::Purpose::Test)),
        ),
        (
            "formatting",
            Box::new(|| {
                run_loud(
                    Command::new("cargo").args(["fmt", "--all", "--check"]),
                    "cargo fmt --check",
                )
            }),
        ),
        (
            "clippy (every target, warnings are errors)",
            Box::new(|| {
                run_loud(
                    Command::new("cargo").args([
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--quiet",
                        "--",
                        "-D",
                        "warnings",
                    ]),
                    "cargo clippy",
                )
            }),
        ),
        (
            "API docs (broken links are errors)",
            Box::new(|| {
                run_loud(
                    Command::new("cargo")
                        .args(["doc", "--workspace", "--no-deps", "--quiet"])
                        .env("RUSTDOCFLAGS", "-D warnings"),
                    "cargo doc",
                )
            }),
        ),
        (
            "start Apache Kafka (one broker, three, and one behind a password)",
            Box::new(|| {
                kafka::up(Layout::Single)?;
                kafka::up(Layout::Three)?;
                kafka::up(Layout::Secured).map(|_| ())
            }),
        ),
        ("cargo test (unit, mock, real Kafka)", Box::new(cargo_test)),
        (
            "book",
            Box::new(|| book::check_generated().and_then(|_| book::build())),
        ),
        (
            "book pages in headless Chromium (and a broken page fails)",
            Box::new(|| {
                browser::check_catches_broken_page()?;
                browser::check_book()
            }),
        ),
        (
            "notebook runner catches failures",
            Box::new(notebooks::check_runner),
        ),
        ("notebooks on real Kafka", Box::new(notebooks::run_all)),
    ];
    let total = steps.len();
    let mut passed = 0;
    for (name, step) in &steps {
        let t = Instant::now();
        println!("\n==> {name}");
        if let Err(e) = step() {
            println!("\nFAILED: {name} after {:.1} s", t.elapsed().as_secs_f64());
            println!(
                "xtask test: {passed} passed, 1 failed, {} skipped",
                total - passed - 1
            );
            return Err(e);
        }
        passed += 1;
        println!("ok: {name} ({:.1} s)", t.elapsed().as_secs_f64());
    }
    println!(
        "\nall steps passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("xtask test: {passed} passed, 0 failed");
    Ok(())
}

// long: one runner for the split; its parts read best together.
fn cargo_test() -> Result<()> {
    let test = |args: &[&str]| {
        let mut cmd = Command::new("cargo");
        cmd.arg("test")
            .args(args)
            .env("KAFKA_BOOTSTRAP_SERVERS", Layout::Single.bootstrap())
            .env("KAFKA_THREE_BOOTSTRAP_SERVERS", Layout::Three.bootstrap())
            .env(
                "KAFKA_SECURED_BOOTSTRAP_SERVERS",
                Layout::Secured.bootstrap(),
            )
            .env(
                "KAFKA_SECURED_CLIENT_CONFIG",
                kafka::secured_client_config(),
            )
            .env_remove("KAFKA_CLIENT_CONFIG")
            .env_remove("LAB_BACKEND");
        cmd
    };
    // Everything compiled first, so the two runs below never wait on
    // cargo's lock or build the same thing twice.
    run_loud(
        test(&["--workspace", "--no-run"]).arg("--quiet"),
        "building the tests",
    )?;
    // The tests that kill brokers of the three-broker cluster (scenario D,
    // the nemesis, hole (b)) spend minutes waiting for brokers to die and
    // come back, and must not strike while another one runs: they run one
    // file after another, beside the rest instead of after it. Their output
    // goes to a file, printed when they end, so the two runs' lines never mix.
    const APART: &[&str] = &["leader_failure", "nemesis", "holes_leader"];
    let log_path = repo_root().join("target").join("leader_failure.log");
    fs::create_dir_all(repo_root().join("target"))?;
    let log = fs::File::create(&log_path)?;
    let mut apart_args = vec!["-p", "lab"];
    for name in APART {
        apart_args.extend(["--test", name]);
    }
    // cargo runs the files one after another; each file makes its own
    // tests take turns.
    apart_args.extend(["--", "--include-ignored"]);
    let mut apart = test(&apart_args)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the tests that kill brokers")?;
    let mut lab_targets = vec![
        "-p".to_string(),
        "lab".into(),
        "--lib".into(),
        "--bins".into(),
    ];
    for entry in fs::read_dir(repo_root().join("crates/lab/tests"))? {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if path.extension().is_some_and(|e| e == "rs")
            && !APART.contains(&stem.as_str())
        {
            lab_targets.extend(["--test".to_string(), stem]);
        }
    }
    // Four at a time on two cores: these tests mostly wait (for a killed
    // member's session, a transaction's timeout, a broker that went away).
    lab_targets.extend([
        "--".to_string(),
        "--include-ignored".into(),
        "--test-threads=4".into(),
    ]);
    let lab_targets: Vec<&str> = lab_targets.iter().map(String::as_str).collect();
    let rest = run_loud(&mut test(&lab_targets), "cargo test (the lab)")
        .and_then(|()| {
            run_loud(
                &mut test(&["-p", "lab", "--doc"]),
                "cargo test (the lab's doc tests)",
            )
        })
        .and_then(|()| {
            run_loud(
                &mut test(&[
                    "--workspace",
                    "--exclude",
                    "lab",
                    "--",
                    "--include-ignored",
                ]),
                "cargo test (xtask, exercises)",
            )
        });
    let status = apart
        .wait()
        .context("waiting for the tests that kill brokers")?;
    print!("{}", fs::read_to_string(&log_path).unwrap_or_default());
    rest?;
    if !status.success() {
        bail!("cargo test (the tests that kill brokers) failed ({status}); its output is above");
    }
    Ok(())
}
