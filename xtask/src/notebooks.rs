//! Executes the notebooks headlessly on the evcxr kernel, and proves the runner
//! catches failures that nbconvert alone would let pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use lab::local::cache_dir;

use crate::{repo_root, tools};

/// The course's notebooks, in order.
pub fn notebooks() -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(repo_root().join("notebooks"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    out.sort();
    Ok(out)
}

/// How many notebooks run at once: most of a notebook's time is spent
/// waiting (on Kafka, on a killed process's session), so two kernels on two
/// cores finish sooner than one after the other.
const LANES: usize = 2;

/// The build directory of a lane. Each lane keeps its own: a `:dep` cell
/// then reuses the crates its previous notebook compiled (minutes cold,
/// seconds warm), and two kernels never share one at once.
fn lane_dir(lane: usize) -> PathBuf {
    let name = if lane == 0 {
        "runner".to_string()
    } else {
        format!("runner-{}", lane + 1)
    };
    cache_dir().join("evcxr").join(name)
}

/// Runs one notebook in `lane` and returns the runner's exit code (0 every
/// cell ran cleanly, 1 a cell failed, 2 it could not run) with what the
/// runner printed.
pub fn execute(notebook: &Path, lane: usize) -> Result<(i32, String)> {
    let out_dir = repo_root().join("target/notebooks");
    fs::create_dir_all(&out_dir)?;
    let evcxr_tmp = lane_dir(lane);
    fs::create_dir_all(&evcxr_tmp)?;
    let out = Command::new(tools::venv_bin("python"))
        .arg(repo_root().join("xtask/run_notebook.py"))
        .arg(notebook)
        .arg("--out")
        .arg(out_dir.join(notebook.file_name().unwrap_or_default()))
        // Every exercise as its solution fills it in: each must then pass.
        .arg("--solutions")
        .env("EVCXR_TMPDIR", &evcxr_tmp)
        .output()
        .context("running the notebook runner: set it up with `cargo xtask setup`")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string()
        + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(2), text))
}

/// Committed notebooks carry no outputs: a learner's first run is their own.
pub fn check_clean(notebook: &Path) -> Result<()> {
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(notebook)?)
        .with_context(|| format!("{} is not valid JSON", notebook.display()))?;
    let cells = json["cells"].as_array().context("a notebook has cells")?;
    for (i, cell) in cells.iter().enumerate() {
        let has_outputs = cell["outputs"].as_array().is_some_and(|o| !o.is_empty());
        let counted =
            !cell["execution_count"].is_null() && cell.get("execution_count").is_some();
        if has_outputs || counted {
            bail!("{} cell {} has outputs: clear them before committing (Jupyter: Edit > Clear All Outputs)", notebook.display(), i + 1);
        }
    }
    if json["metadata"]["kernelspec"]["name"] != "rust" {
        bail!(
            "{} does not use the `rust` (evcxr) kernel",
            notebook.display()
        );
    }
    Ok(())
}

/// The runner must pass the passing fixture and fail every failing one with
/// exit code 1 (a failed cell), not 2 (could not run at all).
pub fn check_runner() -> Result<()> {
    let fixtures = repo_root().join("xtask/fixtures");
    let mut wrong = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(&fixtures)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    names.sort();
    for fixture in &names {
        let name = fixture
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let should_pass = name.starts_with("passes");
        println!(
            "fixture {name}: expected to {}",
            if should_pass { "pass" } else { "fail" }
        );
        let (code, text) = execute(fixture, 0)?;
        print!("{text}");
        if code != if should_pass { 0 } else { 1 } {
            wrong.push(format!("{name} (exit code {code})"));
        }
    }
    if names.len() < 2 {
        bail!(
            "expected passing and failing fixtures in {}",
            fixtures.display()
        );
    }
    if !wrong.is_empty() {
        bail!(
            "the notebook runner judged these fixtures wrongly: {}",
            wrong.join(", ")
        );
    }
    println!("notebook runner: {} fixtures judged correctly", names.len());
    Ok(())
}

/// The notebooks `book/src/running.md` lists (`NN-name.ipynb`) must be
/// exactly the ones in `notebooks/`.
pub fn check_listed() -> Result<()> {
    let page = fs::read_to_string(repo_root().join("book/src/running.md"))?;
    let listed = listed_notebooks(&page);
    let present: Vec<String> = notebooks()?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    let missing: Vec<&String> =
        present.iter().filter(|n| !listed.contains(n)).collect();
    let absent: Vec<&String> = listed.iter().filter(|n| !present.contains(n)).collect();
    if !missing.is_empty() || !absent.is_empty() {
        bail!(
            "book/src/running.md and notebooks/ disagree: not listed {missing:?}, listed but \
             not there {absent:?}"
        );
    }
    Ok(())
}

/// Every `NN-name.ipynb` a page mentions, once each.
fn listed_notebooks(page: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in
        page.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        let numbered =
            word.len() > 3 && word.as_bytes()[..2].iter().all(u8::is_ascii_digit);
        if numbered && word.ends_with(".ipynb") && !out.iter().any(|w| w == word) {
            out.push(word.to_string());
        }
    }
    out
}

/// Runs every notebook of the course, two at a time; fails if any cell fails.
pub fn run_all() -> Result<()> {
    check_listed()?;
    let all = notebooks()?;
    for nb in &all {
        check_clean(nb)?;
    }
    let failed = std::sync::Mutex::new(Vec::new());
    let run = |nb: &Path, lane: usize| -> Result<()> {
        let (code, text) = execute(nb, lane)?;
        // Printed whole, so that two notebooks' reports never interleave.
        print!("{text}");
        if code != 0 {
            let name = nb
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            failed.lock().expect("no panics while held").push(name);
        }
        Ok(())
    };
    let Some((first, rest)) = all.split_first() else {
        bail!("no notebooks in notebooks/");
    };
    // The first runs alone, warming lane 0; the other lanes start as fresh
    // copies of it (a few seconds), not from their own last build, which is
    // stale whenever the lab changed and would spend minutes rebuilding it.
    run(first, 0)?;
    for lane in 1..LANES {
        let dir = lane_dir(lane);
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the stale {}", dir.display()))?;
        }
        crate::run_loud(
            Command::new("cp").arg("-a").arg(lane_dir(0)).arg(&dir),
            "copying the notebook runner's warm build directory",
        )?;
    }
    let queue =
        std::sync::Mutex::new(rest.iter().collect::<std::collections::VecDeque<_>>());
    std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..LANES)
            .map(|lane| {
                let (queue, run) = (&queue, &run);
                scope.spawn(move || -> Result<()> {
                    loop {
                        // Taken in its own statement: a guard in a `while let`
                        // would be held through the run, one lane at a time.
                        let next =
                            queue.lock().expect("no panics while held").pop_front();
                        let Some(nb) = next else { return Ok(()) };
                        run(nb, lane)?;
                    }
                })
            })
            .collect();
        lanes
            .into_iter()
            .try_for_each(|l| l.join().expect("a lane does not panic"))
    })?;
    let mut failed = failed.into_inner().expect("no panics while held");
    if !failed.is_empty() {
        failed.sort();
        bail!(
            "notebooks failed: {} (executed copies in target/notebooks/)",
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_notebooks_are_read_from_a_page() {
        let page = "| `01-first-run.ipynb` | x |\nsee notebooks/08-crashes.ipynb, and `01-first-run.ipynb` again; not-a-notebook.ipynb";
        assert_eq!(
            listed_notebooks(page),
            ["01-first-run.ipynb", "08-crashes.ipynb"]
        );
    }
}
