//! Installs what the course needs beyond Rust, each pinned and cached:
//! mdBook, its mermaid preprocessor and the evcxr Jupyter kernel with cargo, Jupyter in a Python venv,
//! and for the tests Debian's `chromium` (the book's browser check).

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use lab::local::cache_dir;

use crate::{kernels, repo_root, run_loud};

pub const MDBOOK_VERSION: &str = "0.5.4";
/// The book's diagrams: 0.17 is the first release built for mdBook 0.5 (on
/// `mdbook-preprocessor` 0.5); 0.17.1 carries mermaid 11.6.0, which
/// `book::mermaid_js` copies into the book's theme.
pub const MDBOOK_MERMAID_VERSION: &str = "0.17.1";
pub const EVCXR_VERSION: &str = "0.22.0";

/// What to install: the test runner needs less than a learner's JupyterLab.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Test,
    Course,
}

pub fn setup(purpose: Purpose) -> Result<()> {
    cargo_install("mdbook", MDBOOK_VERSION)?;
    cargo_install("mdbook-mermaid", MDBOOK_MERMAID_VERSION)?;
    cargo_install("evcxr_jupyter", EVCXR_VERSION)?;
    python_venv("requirements-test.txt")?;
    if purpose == Purpose::Course {
        python_venv("requirements-lab.txt")?;
    }
    install_kernel()?;
    if purpose == Purpose::Test {
        // The book's pages are checked in headless Chromium.
        crate::browser::install_chromium()?;
    }
    if purpose == Purpose::Course {
        // Not for tests: the runner has its own build directory, and CI must
        // not pay for (or depend on) the learner's pool.
        kernels::warm()?;
    }
    Ok(())
}

/// `cargo install --locked NAME --version VERSION`, unless cargo already
/// installed that version. (Asking the program is no check: `evcxr_jupyter`
/// has no `--version`, so every start used to reinstall it.)
fn cargo_install(name: &str, version: &str) -> Result<()> {
    let list = Command::new("cargo")
        .args(["install", "--list"])
        .output()
        .context("running cargo install --list")?;
    if installed(&String::from_utf8_lossy(&list.stdout), name, version) {
        return Ok(());
    }
    println!("installing {name} {version} with cargo (once; several minutes on a small machine)");
    run_loud(
        Command::new("cargo").args(["install", "--locked", name, "--version", version]),
        &format!("installing {name}"),
    )
}

pub fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

pub fn venv_bin(program: &str) -> PathBuf {
    venv_dir().join("bin").join(program)
}

/// Creates the venv once and installs a requirements file into it, again only
/// when the file changes.
fn python_venv(requirements: &str) -> Result<()> {
    let venv = venv_dir();
    if !venv_bin("python").exists() {
        println!("creating a Python venv in {}", venv.display());
        let python = ["python3", "python"]
            .into_iter()
            .find(|p| Command::new(p).arg("--version").output().is_ok())
            .context("Python 3 is needed for Jupyter: install python3 (with venv)")?;
        run_loud(
            Command::new(python).args(["-m", "venv"]).arg(&venv),
            "creating the Python venv",
        )?;
    }
    let file = repo_root().join("xtask").join(requirements);
    let wanted = fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?;
    let stamp = venv.join(format!(".{requirements}.installed"));
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    println!("installing {requirements} into the venv");
    run_loud(
        Command::new(venv_bin("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&file),
        &format!("pip install -r {requirements}"),
    )?;
    fs::write(stamp, wanted)?;
    Ok(())
}

/// Registers evcxr as the Jupyter kernel named `rust`, started through the
/// course's launcher (see `kernels`).
fn install_kernel() -> Result<()> {
    let status = Command::new("evcxr_jupyter")
        .arg("--install")
        .output()
        .context("running evcxr_jupyter --install")?;
    if !status.status.success() {
        bail!(
            "evcxr_jupyter --install failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    adjust_kernel_spec()
}

/// Two changes to the spec evcxr wrote. evcxr 0.22 loads each compiled cell
/// with a library path one folder off; it only works by luck when its build
/// directory is under /tmp. Putting Rust's own library directory on the
/// kernel's LD_LIBRARY_PATH makes it work wherever EVCXR_TMPDIR is (the
/// notebook runner does the same). And the kernel starts through the launcher
/// that gives it a warm build directory.
fn adjust_kernel_spec() -> Result<()> {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir"])
        .output()?;
    let libdir = String::from_utf8_lossy(&libdir.stdout).trim().to_string();
    let find = Command::new(venv_bin("python"))
        .args([
            "-c",
            "from jupyter_client.kernelspec import KernelSpecManager as K; \
             print(K().get_kernel_spec('rust').resource_dir)",
        ])
        .output()
        .context("asking Jupyter where the rust kernel is")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&find.stdout).trim());
    let path = dir.join("kernel.json");
    let mut spec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?,
    )?;
    spec["env"]["LD_LIBRARY_PATH"] = serde_json::Value::String(libdir);
    kernels::use_launcher(&dir, &mut spec)?;
    fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
    Ok(())
}

/// Whether `cargo install --list` names `name` at `version`: its lines read
/// `evcxr_jupyter v0.22.0:`, then the binaries, indented.
fn installed(list: &str, name: &str, version: &str) -> bool {
    list.lines()
        .any(|line| line.trim_end() == format!("{name} v{version}:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_version_is_read_from_cargos_list() {
        let list =
            "evcxr_jupyter v0.22.0:\n    evcxr_jupyter\nmdbook v0.5.4:\n    mdbook\n";
        assert!(installed(list, "evcxr_jupyter", "0.22.0"));
        assert!(installed(list, "mdbook", "0.5.4"));
        assert!(!installed(list, "mdbook", "0.5.3"));
        assert!(!installed(list, "evcxr", "0.22.0"));
        assert!(!installed("", "mdbook", "0.5.4"));
    }
}
