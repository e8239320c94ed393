//! The brokers a nemesis run freezes and kills: every one is woken and
//! started again when the run ends, whatever happened.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::local::LocalCluster;
use crate::support::wait_until;

/// Brokers this run stopped or killed: continued and started again when
/// dropped, whatever happened.
pub(super) struct Brokers<'a> {
    pub local: &'a mut LocalCluster,
    pub stopped: Vec<u32>,
    pub killed: Vec<u32>,
}

impl Brokers<'_> {
    pub(super) fn signal(&self, node: u32, signal: i32) -> Result<()> {
        let broker = self
            .local
            .brokers
            .iter()
            .find(|b| b.node_id == node)
            .ok_or_else(|| Error::BadConfig(format!("no local broker {node}")))?;
        broker.signal(signal);
        Ok(())
    }

    pub(super) fn kill(&mut self, node: u32) -> Result<()> {
        self.signal(node, libc::SIGKILL)?;
        self.killed.push(node);
        let broker = self
            .local
            .brokers
            .iter()
            .find(|b| b.node_id == node)
            .cloned();
        wait_until(
            "a broker's SIGKILL",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                Ok(broker
                    .as_ref()
                    .filter(|b| b.alive())
                    .map(|b| format!("broker {node} (pid {}) still runs", b.pid)))
            },
        )
    }

    pub(super) fn restart(&mut self, node: u32) -> Result<()> {
        self.killed.retain(|&n| n != node);
        self.local.restart(node).map_err(|e| Error::Process {
            what: format!("restarting broker {node}"),
            detail: e.to_string(),
        })
    }

    pub(super) fn stop(&mut self, node: u32) -> Result<()> {
        self.signal(node, libc::SIGSTOP)?;
        self.stopped.push(node);
        Ok(())
    }

    pub(super) fn resume(&mut self, node: u32) -> Result<()> {
        self.stopped.retain(|&n| n != node);
        self.signal(node, libc::SIGCONT)
    }
}

impl Drop for Brokers<'_> {
    fn drop(&mut self) {
        for &node in &self.stopped {
            let _ = self.signal(node, libc::SIGCONT);
        }
        for node in std::mem::take(&mut self.killed) {
            let _ = self.local.restart(node);
        }
    }
}
