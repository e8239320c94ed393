//! Where the course keeps its downloads and what it knows about the Apache Kafka
//! brokers that `cargo xtask kafka up` started on this machine.
//!
//! The xtask writes one `cluster.json` per running local cluster; the lab reads
//! it to name the Kafka version behind a result.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// The course's cache: Kafka's jars, the Python venv, notebook build dirs, and
/// the running brokers' data. `KAFKA_COURSE_CACHE` overrides it.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KAFKA_COURSE_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kafka-delivery-course")
}

/// Where the running local clusters keep their state, one folder each.
pub fn run_dir() -> PathBuf {
    cache_dir().join("run")
}

/// A local Apache Kafka cluster started by the xtask.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalCluster {
    /// `single` or `three`.
    pub name: String,
    pub bootstrap: String,
    pub kafka_version: String,
    pub brokers: Vec<LocalBroker>,
}

/// One broker process of a local cluster (combined broker and KRaft controller).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalBroker {
    pub node_id: u32,
    pub port: u16,
    pub controller_port: u16,
    pub pid: u32,
    /// The command line that started it, so a scenario can restart a broker
    /// it killed.
    #[serde(default)]
    pub command: Vec<String>,
    /// Where its output goes.
    #[serde(default)]
    pub log: PathBuf,
}

impl LocalBroker {
    /// Starts a broker's JVM from `command`, appending its output to `log`,
    /// in a process group of its own (so Ctrl-C in the shell that started it,
    /// or closing that terminal, does not take the broker down).
    pub fn spawn(command: &[String], log: &Path) -> std::io::Result<u32> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty broker command"))?;
        let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()?;
        Ok(child.id())
    }

    pub fn alive(&self) -> bool {
        alive(self.pid)
    }

    /// Sends `signal` (libc::SIGSTOP, SIGCONT, SIGKILL, ...) to the broker.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
    }
}

/// Makes the child `command` starts die (SIGKILL) when the thread that
/// starts it ends, on Linux. A notebook cell interrupted while a worker or an
/// exercise program runs has its process SIGKILLed by the kernel; without
/// this, the child would go on writing to Kafka with nobody waiting for it.
/// The caller must wait for the child on the thread that spawned it (the
/// signal follows that thread, not the process).
pub fn dies_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure calls only prctl, getppid
        // and _exit, which are async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    command
}

/// Whether process `pid` is running (a zombie is not).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

impl LocalCluster {
    pub fn state_file(name: &str) -> PathBuf {
        run_dir().join(name).join("cluster.json")
    }

    /// The local clusters whose state files exist (they may have died since).
    pub fn recorded() -> Vec<LocalCluster> {
        let Ok(entries) = std::fs::read_dir(run_dir()) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cluster.json")).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }

    /// Writes this cluster's state file.
    pub fn save(&self) -> std::io::Result<()> {
        let path = Self::state_file(&self.name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(
            path,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )
    }

    /// Starts broker `node_id` again (after a scenario killed it) and records
    /// its new pid.
    pub fn restart(&mut self, node_id: u32) -> std::io::Result<()> {
        let broker = self
            .brokers
            .iter_mut()
            .find(|b| b.node_id == node_id)
            .ok_or_else(|| std::io::Error::other(format!("no broker {node_id}")))?;
        if !broker.alive() {
            broker.pid = LocalBroker::spawn(&broker.command, &broker.log)?;
        }
        self.save()
    }

    /// The recorded local cluster that serves `bootstrap`, if any.
    pub fn serving(bootstrap: &str) -> Option<LocalCluster> {
        let wanted: Vec<&str> = bootstrap.split(',').map(str::trim).collect();
        Self::recorded()
            .into_iter()
            .find(|c| c.bootstrap.split(',').any(|addr| wanted.contains(&addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_that_dies_with_its_parent_is_killed_when_the_spawning_thread_ends() {
        // The thread stands in for a notebook cell's process: it starts a
        // long child and ends without waiting for it.
        let child = std::thread::spawn(|| {
            dies_with_parent(Command::new("sleep").arg("30"))
                .spawn()
                .expect("sleep starts")
        })
        .join()
        .unwrap();
        let mut child = child;
        let started = std::time::Instant::now();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_child_whose_parent_waits_runs_to_its_end() {
        let status = dies_with_parent(&mut Command::new("true"))
            .status()
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}
