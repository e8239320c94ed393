//! Warm Rust kernels for JupyterLab.
//!
//! evcxr compiles a notebook's `:dep` crates (the lab, and librdkafka under it)
//! in its build directory. A kernel that JupyterLab starts gets a fresh
//! temporary one, so every new or restarted kernel compiled all of it again
//! (2-4 minutes on two cores). Instead, the `rust` kernel spec starts evcxr
//! through `xtask/kernel_launcher.py`, which gives each kernel one of a few
//! lasting build directories (the pool, `evcxr/pool/1..=SLOTS` in the cache),
//! locked so that two kernels never share one; and `cargo xtask course` warms
//! those directories once, by running the notebooks' `:dep` line in a real
//! kernel in each, so a learner's first `:dep` finds everything compiled.

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lab::local::cache_dir;
use serde_json::{json, Value};

use crate::{notebooks, repo_root, tools};

/// How many kernels at once get a warm build directory: a few notebooks open
/// side by side. Each directory holds about 500 MB of compiled crates.
pub const SLOTS: usize = 3;

/// The launcher's name beside kernel.json.
const LAUNCHER: &str = "kernel_launcher.py";

pub fn pool_dir() -> PathBuf {
    cache_dir().join("evcxr").join("pool")
}

/// Copies the launcher into the kernel spec's folder (the spec then works on
/// its own) and makes the spec start evcxr through it.
pub fn use_launcher(spec_dir: &Path, spec: &mut Value) -> Result<()> {
    let launcher = spec_dir.join(LAUNCHER);
    fs::copy(repo_root().join("xtask").join(LAUNCHER), &launcher).with_context(
        || format!("copying the kernel launcher to {}", launcher.display()),
    )?;
    let argv = spec["argv"]
        .as_array()
        .context("the rust kernel's kernel.json has no argv")?;
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    let prefix = [tools::venv_bin("python"), launcher, pool_dir()]
        .map(|p| p.to_string_lossy().into_owned());
    spec["argv"] = json!(launcher_argv(&argv, &prefix));
    Ok(())
}

/// `PYTHON LAUNCHER POOL SLOTS -- KERNEL...`, from evcxr's own argv (or from
/// an argv that already goes through the launcher: installing twice is fine).
fn launcher_argv(argv: &[String], prefix: &[String; 3]) -> Vec<String> {
    let kernel = match argv.iter().position(|a| a == "--") {
        Some(i) => &argv[i + 1..],
        None => argv,
    };
    let mut out = prefix.to_vec();
    out.push(SLOTS.to_string());
    out.push("--".into());
    out.extend(kernel.iter().cloned());
    out
}

/// Builds the lab in every build directory of the pool that is not warm for
/// the current sources, toolchain and kernel. A failure only warns: JupyterLab
/// still works, its first `:dep` is just slow again.
pub fn warm() -> Result<()> {
    let deps = notebook_deps()?;
    if deps.is_empty() {
        return Ok(());
    }
    let key = warm_key(&deps)?;
    let pool = pool_dir();
    fs::create_dir_all(&pool)?;
    let stamp = |n: usize| pool.join(format!("{n}.warm"));
    let is_warm =
        |n: usize| fs::read_to_string(stamp(n)).ok().as_deref() == Some(key.as_str());
    let cold: Vec<usize> = (1..=SLOTS).filter(|&n| !is_warm(n)).collect();
    if cold.is_empty() {
        return Ok(());
    }
    // Hold every lock while warming: no kernel may start in a directory that
    // is being copied or built, nor be copied from while it builds.
    let mut locks = Vec::new();
    for n in 1..=SLOTS {
        if let Some(lock) = try_lock(&pool, n)? {
            locks.push((n, lock));
        } else if cold.contains(&n) {
            println!("(Rust kernel build directory {n} is in use by a running kernel: left as it is)");
        }
    }
    if !locks.iter().any(|l| cold.contains(&l.0)) {
        return Ok(());
    }
    let mut source = locks.iter().map(|l| l.0).find(|&n| is_warm(n));
    println!(
        "warming the Rust kernel: building the lab crate once, about {} \
         (then the first `:dep` of a new or restarted kernel takes seconds)",
        if source.is_some() {
            "a minute"
        } else {
            "5 minutes the first time on two cores"
        }
    );
    for &(n, _) in locks.iter().filter(|l| cold.contains(&l.0)) {
        let slot = pool.join(n.to_string());
        let started = Instant::now();
        let _ = fs::remove_file(stamp(n));
        if let Some(from) = source {
            // cargo reuses a copied build (measured: 18-21 s for a copy and
            // a kernel's `:dep` in it, against minutes to build).
            copy_dir(&pool.join(from.to_string()), &slot)?;
        }
        if let Err(e) = run_warm_up(&slot, &deps) {
            println!(
                "warning: warming the Rust kernel failed: {e:#}\n\
                 JupyterLab still starts, but a new kernel's first `:dep` cell compiles the lab \
                 (minutes) and may show the same error."
            );
            return Ok(());
        }
        fs::write(stamp(n), &key)?;
        println!(
            "  build directory {n} of {SLOTS} warm ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        source = Some(n);
    }
    Ok(())
}

/// The distinct `:dep` lines of the course's notebooks, in order.
fn notebook_deps() -> Result<Vec<String>> {
    let mut deps: Vec<String> = Vec::new();
    for nb in notebooks::notebooks()? {
        let text = fs::read_to_string(&nb)?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", nb.display()))?;
        for line in dep_lines(&json) {
            if !deps.contains(&line) {
                deps.push(line);
            }
        }
    }
    Ok(deps)
}

/// The `:dep` lines of a notebook's code cells, in order.
fn dep_lines(notebook: &Value) -> Vec<String> {
    let cells = notebook["cells"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::new();
    for cell in cells.iter().filter(|c| c["cell_type"] == "code") {
        let source = match &cell["source"] {
            Value::String(s) => s.clone(),
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
            _ => String::new(),
        };
        out.extend(
            source
                .lines()
                .filter(|l| l.trim_start().starts_with(":dep "))
                .map(|l| l.trim().to_string()),
        );
    }
    out
}

/// What a warm build directory depends on: the kernel, the compiler, the
/// `:dep` lines, and the lab's sources with the versions of its dependencies.
fn warm_key(deps: &[String]) -> Result<String> {
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let root = repo_root();
    let mut hasher = DefaultHasher::new();
    for file in ["Cargo.toml", "Cargo.lock"] {
        hash_file(&mut hasher, &root, &root.join(file))?;
    }
    hash_dir(&mut hasher, &root, &root.join("crates").join("lab"))?;
    Ok(format!(
        "evcxr_jupyter {}\n{}{}\nlab sources: {:016x}\n",
        tools::EVCXR_VERSION,
        String::from_utf8_lossy(&rustc.stdout),
        deps.join("\n"),
        hasher.finish()
    ))
}

/// Hashes every file under `dir` that a build of the lab library reads (its
/// tests, examples and benches are not part of it), in a fixed order.
fn hash_dir(hasher: &mut DefaultHasher, root: &Path, dir: &Path) -> Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default();
        if path.is_dir() {
            if !["tests", "examples", "benches", "target"]
                .iter()
                .any(|s| name == *s)
            {
                hash_dir(hasher, root, &path)?;
            }
        } else {
            hash_file(hasher, root, &path)?;
        }
    }
    Ok(())
}

fn hash_file(hasher: &mut DefaultHasher, root: &Path, file: &Path) -> Result<()> {
    let relative = file.strip_prefix(root).unwrap_or(file);
    hasher.write(relative.to_string_lossy().as_bytes());
    hasher
        .write(&fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    Ok(())
}

/// Takes slot `n`'s lock the way the launcher does (flock, without waiting);
/// `None` if a kernel holds it. Released when the file is dropped.
fn try_lock(pool: &Path, n: usize) -> Result<Option<File>> {
    let path = pool.join(format!("{n}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(err).with_context(|| format!("locking {}", path.display()))
    }
}

/// Replaces `to` by a copy of `from`, keeping modification times: cargo
/// decides by them whether a crate must be compiled again.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        fs::remove_dir_all(to).with_context(|| format!("removing {}", to.display()))?;
    }
    fs::create_dir_all(to)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .context("running cp -a")?;
    if !status.success() {
        bail!(
            "copying {} to {} failed ({status})",
            from.display(),
            to.display()
        );
    }
    Ok(())
}

/// Runs the `:dep` lines in a real kernel (the notebook runner, through the
/// kernel spec and its launcher) with `slot` as its build directory, from
/// notebooks/ as a learner's kernel does, so the relative paths are theirs.
fn run_warm_up(slot: &Path, deps: &[String]) -> Result<()> {
    let dir = repo_root().join("target").join("kernel-warm-up");
    fs::create_dir_all(&dir)?;
    fs::create_dir_all(slot)?;
    let notebook = dir.join("warm-up.ipynb");
    let cell = json!({
        "cell_type": "code", "execution_count": null, "metadata": {},
        "outputs": [], "source": deps.join("\n"),
    });
    let nb = json!({
        "cells": [cell],
        "metadata": {"kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"}},
        "nbformat": 4, "nbformat_minor": 5,
    });
    fs::write(&notebook, serde_json::to_string_pretty(&nb)?)?;
    let out = dir.join("warm-up.out.ipynb");
    let output = Command::new(tools::venv_bin("python"))
        .arg(repo_root().join("xtask/run_notebook.py"))
        .arg(&notebook)
        .arg("--out")
        .arg(&out)
        .arg("--cwd")
        .arg(repo_root().join("notebooks"))
        .arg("--timeout")
        .arg("3600")
        .env("EVCXR_TMPDIR", slot)
        .output()
        .context("running the notebook runner")?;
    if !output.status.success() {
        bail!(
            "{}{}(the kernel's own log: {})",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            dir.join("warm-up.out.kernel.log").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, Stdio};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_spec_goes_through_the_launcher_once() {
        let evcxr =
            strings(&["/bin/evcxr_jupyter", "--control_file", "{connection_file}"]);
        let prefix = [
            "/venv/python".to_string(),
            "/spec/l.py".into(),
            "/pool".into(),
        ];
        let once = launcher_argv(&evcxr, &prefix);
        let mut want = strings(&["/venv/python", "/spec/l.py", "/pool"]);
        want.push(SLOTS.to_string());
        want.push("--".into());
        want.extend(evcxr.clone());
        assert_eq!(once, want);
        assert_eq!(launcher_argv(&once, &prefix), want, "installing twice");
    }

    #[test]
    fn dep_lines_are_read_from_code_cells_only() {
        let nb = json!({"cells": [
            {"cell_type": "markdown", "source": [":dep not = \"this\"\n"]},
            {"cell_type": "code", "source": [":dep lab = { path = \"../crates/lab\" }\n", "use lab::X;"]},
            {"cell_type": "code", "source": "let a = 1;\n  :dep b = \"1\""},
        ]});
        assert_eq!(
            dep_lines(&nb),
            strings(&[":dep lab = { path = \"../crates/lab\" }", ":dep b = \"1\""])
        );
        assert!(dep_lines(&json!({})).is_empty());
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("xtask-kernels-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_lab_digest_follows_its_sources_not_its_tests() {
        let root = scratch("digest");
        fs::create_dir_all(root.join("lab/src")).unwrap();
        fs::create_dir_all(root.join("lab/tests")).unwrap();
        fs::write(root.join("lab/src/lib.rs"), "pub fn a() {}").unwrap();
        fs::write(root.join("lab/tests/t.rs"), "#[test] fn t() {}").unwrap();
        let digest = || {
            let mut h = DefaultHasher::new();
            hash_dir(&mut h, &root, &root.join("lab")).unwrap();
            h.finish()
        };
        let before = digest();
        fs::write(root.join("lab/tests/t.rs"), "#[test] fn u() {}").unwrap();
        assert_eq!(digest(), before, "a test file is not part of the build");
        fs::write(root.join("lab/src/lib.rs"), "pub fn b() {}").unwrap();
        assert_ne!(digest(), before, "a source file is");
        let _ = fs::remove_dir_all(&root);
    }

    /// A stand-in kernel, started through the launcher: it prints the build
    /// directory it was given and lives until its stdin closes.
    fn start(pool: &Path, slots: usize, env_dir: Option<&str>) -> (Child, String) {
        let mut cmd = Command::new("python3");
        cmd.arg(repo_root().join("xtask").join(LAUNCHER))
            .arg(pool)
            .arg(slots.to_string())
            .args(["--", "sh", "-c", "echo \"dir=$EVCXR_TMPDIR\"; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("EVCXR_TMPDIR");
        if let Some(d) = env_dir {
            cmd.env("EVCXR_TMPDIR", d);
        }
        let mut child = cmd.spawn().expect("python3 runs the launcher");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (child, line.trim().trim_start_matches("dir=").to_string())
    }

    /// Ends a stand-in kernel; returns what it wrote to stderr.
    fn stop(mut child: Child) -> String {
        child.stdin.take().unwrap().write_all(b"\n").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn each_kernel_gets_its_own_build_directory_until_none_is_free() {
        let pool = scratch("pool");
        let slot = |n: usize| pool.join(n.to_string()).to_string_lossy().into_owned();
        let (first, dir) = start(&pool, 2, None);
        assert_eq!(dir, slot(1));
        let (second, dir) = start(&pool, 2, None);
        assert_eq!(dir, slot(2), "slot 1 is taken while the first kernel lives");
        let (third, dir) = start(&pool, 2, None);
        assert_eq!(
            dir, "",
            "no slot free: evcxr makes its own temporary directory"
        );
        let warning = stop(third);
        assert!(
            warning.contains("all 2 warm Rust build directories"),
            "{warning}"
        );
        let (given, dir) = start(&pool, 2, Some("/somewhere/else"));
        assert_eq!(dir, "/somewhere/else", "a set EVCXR_TMPDIR is respected");
        assert_eq!(stop(given), "");
        stop(first);
        let (again, dir) = start(&pool, 2, None);
        assert_eq!(dir, slot(1), "the lock goes with the kernel that held it");
        assert!(
            try_lock(&pool, 1).unwrap().is_none(),
            "xtask sees the launcher's lock"
        );
        assert!(try_lock(&pool, 2).unwrap().is_none());
        stop(again);
        stop(second);
        assert!(try_lock(&pool, 1).unwrap().is_some());
        let _ = fs::remove_dir_all(&pool);
    }
}
