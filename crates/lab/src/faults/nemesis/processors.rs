//! The nemesis's processors: `lab worker` child processes running the
//! read-process-write loop, started, SIGKILLed, SIGSTOPped and SIGCONTed by
//! the executor. Each reports, after every commit, how many records it has
//! committed since it started; the run's progress is the sum over every
//! processor that ever ran (for exactly-once their commits never overlap).
//! Dropping the set SIGCONTs and SIGKILLs every processor still running.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Doing, Result};
use crate::faults::crash::protocol::{ConsumeSpec, Event, WorkerSpec};
use crate::faults::crash::worker_binary;
use crate::support::lock;

/// What a processor is to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// The one that runs the pipeline to its end.
    Main,
    /// A second instance in the group, for a while (a rebalance).
    Second,
    /// A paused processor whose group has moved on.
    Zombie,
}

/// One processor process.
pub(super) struct Processor {
    pub role: Role,
    /// Exactly-once: its `transactional.id`.
    pub transactional_id: Option<String>,
    pub pid: u32,
    child: Child,
    committed: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Killed by the executor on purpose (not a failure).
    pub meant: bool,
}

/// A processor that has exited.
pub(super) struct Exit {
    pub role: Role,
    pub transactional_id: Option<String>,
    /// It said it had finished its work and exited with success.
    pub finished: bool,
    /// The executor killed it on purpose.
    pub meant: bool,
    /// Its exit status and the last lines it wrote to stderr.
    pub detail: String,
}

/// The processors of one run.
pub(super) struct Processors {
    spec: ConsumeSpec,
    pub live: Vec<Processor>,
    /// Records committed by processors that have exited.
    gone_committed: u64,
}

impl Processors {
    pub(super) fn new(spec: ConsumeSpec) -> Processors {
        Processors {
            spec,
            live: Vec::new(),
            gone_committed: 0,
        }
    }

    /// Starts a processor; its pid. Called from the executor's own thread:
    /// a worker dies with the thread that started it.
    pub(super) fn start(
        &mut self,
        role: Role,
        transactional_id: Option<String>,
    ) -> Result<u32> {
        let spec = WorkerSpec::Consume(ConsumeSpec {
            transactional_id: transactional_id.clone(),
            ..self.spec.clone()
        });
        let mut child =
            crate::local::dies_with_parent(&mut Command::new(worker_binary()?))
                .arg("worker")
                .arg(spec.to_json())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .doing("cannot start a nemesis processor (lab worker)")?;
        let committed = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout is piped");
        let (c, d) = (committed.clone(), done.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                match Event::parse(&line) {
                    Ok(Event::Progress { records }) => {
                        c.store(records, Ordering::SeqCst)
                    }
                    Ok(Event::Done) => d.store(true, Ordering::SeqCst),
                    _ => {}
                }
            }
        });
        let err = child.stderr.take().expect("stderr is piped");
        let tail = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                let mut t = lock(&tail);
                t.push_str(&line);
                t.push('\n');
                if t.len() > 4000 {
                    let cut = t.len() - 2000;
                    let cut =
                        (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
                    t.drain(..cut);
                }
            }
        });
        let pid = child.id();
        self.live.push(Processor {
            role,
            transactional_id,
            pid,
            child,
            committed,
            done,
            stderr,
            reader: Some(reader),
            meant: false,
        });
        Ok(pid)
    }

    /// Records committed so far by every processor of the run.
    pub(super) fn committed(&self) -> u64 {
        self.gone_committed
            + self
                .live
                .iter()
                .map(|p| p.committed.load(Ordering::SeqCst))
                .sum::<u64>()
    }

    pub(super) fn of_role(&self, role: Role) -> Option<&Processor> {
        self.live.iter().find(|p| p.role == role)
    }

    pub(super) fn of_role_mut(&mut self, role: Role) -> Option<&mut Processor> {
        self.live.iter_mut().find(|p| p.role == role)
    }

    /// Sends `signal` to the processor of `pid`.
    pub(super) fn signal(&self, pid: u32, signal: i32) {
        if self.live.iter().any(|p| p.pid == pid) {
            // SAFETY: kill(2) on a child of ours that has not been reaped.
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }

    /// SIGKILLs the processor of `pid` on purpose (it is not replaced as a
    /// failure) and reaps it.
    pub(super) fn kill(&mut self, pid: u32) {
        if let Some(p) = self.live.iter_mut().find(|p| p.pid == pid) {
            p.meant = true;
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// The processors that have exited since the last call.
    pub(super) fn reap(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        let mut i = 0;
        while i < self.live.len() {
            let status = match self.live[i].child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => {
                    i += 1;
                    continue;
                }
                Err(e) => {
                    let _ = self.live[i].child.kill();
                    let _ = e;
                    i += 1;
                    continue;
                }
            };
            let mut p = self.live.remove(i);
            // Its last Progress line may still be in the pipe: read it all.
            if let Some(reader) = p.reader.take() {
                let _ = reader.join();
            }
            self.gone_committed += p.committed.load(Ordering::SeqCst);
            let finished = status.success() && p.done.load(Ordering::SeqCst);
            let how = match status.signal() {
                Some(s) => format!("killed by signal {s}"),
                None => status.to_string(),
            };
            let tail: Vec<String> = lock(&p.stderr)
                .lines()
                .rev()
                .take(3)
                .map(String::from)
                .collect();
            let tail: Vec<String> = tail.into_iter().rev().collect();
            exits.push(Exit {
                role: p.role,
                transactional_id: p.transactional_id.clone(),
                finished,
                meant: p.meant,
                detail: format!("{how}: {}", tail.join(" | ")),
            });
        }
        exits
    }
}

impl Drop for Processors {
    fn drop(&mut self) {
        for p in &mut self.live {
            // SAFETY: kill(2) on a child of ours that has not been reaped.
            unsafe {
                libc::kill(p.pid as i32, libc::SIGCONT);
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
