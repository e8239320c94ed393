//! Exercises that check themselves, of three kinds:
//!
//! - [`predict`]: the learner writes a count down before a run; the check
//!   says whether the run agreed, and why.
//! - [`configure`]: the learner writes client settings; the lab runs its real
//!   fault scenario with them and says what they did.
//! - [`code`]: the learner writes a consumer or a read-process-write loop in
//!   `crates/exercises/src/`; the grader runs it as a child process against
//!   Kafka, kills it with SIGKILL at seeded steps ([`kit`] wraps them), starts
//!   its replacement, and audits by id. [`catalog`] lists these exercises.

pub mod catalog;
pub mod code;
pub mod configure;
mod db_grade;
pub mod kit;
pub mod predict;
mod txn_grade;

pub use code::{grade, CodeGrade, Program};
pub use configure::{try_settings, ConfigureVerdict};
pub use predict::{check, Verdict};

/// What a notebook shows for a verdict that ends a cell: its text, as
/// printed (evcxr calls `evcxr_display` on the last value of a cell).
fn show_in_notebook(text: &impl std::fmt::Display) {
    println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
}

impl CodeGrade {
    pub fn evcxr_display(&self) {
        show_in_notebook(self);
    }

    /// The timeline of the learner's own runs: a panel per seeded run, each
    /// record id at the number of times the program's output holds it, so
    /// the ids the verdict names can be seen where they fell.
    pub fn timeline(&self) -> crate::charts::Chart {
        let headings: Vec<String> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let fault = match (&run.crash, &run.errors) {
                    (_, Some(errors)) => errors.plan.to_string(),
                    (Some(crash), None) => format!("SIGKILL {crash}"),
                    (None, None) if run.rebalance.is_some() => {
                        "two instances at once and a rebalance".into()
                    }
                    (None, None) => "nothing injected".into(),
                };
                format!(
                    "run {}: {fault}: {} lost, {} duplicated",
                    i + 1,
                    run.lost.len(),
                    run.duplicated.len()
                )
            })
            .collect();
        let runs: Vec<crate::charts::IdsRun> = self
            .runs
            .iter()
            .zip(headings)
            .map(|(run, heading)| crate::charts::IdsRun {
                heading,
                records: catalog::RECORDS,
                lost: &run.lost,
                duplicated: &run.duplicated,
            })
            .collect();
        let mark = if self.passed() { "passed" } else { "not yet" };
        crate::charts::ids_timeline(
            format!("{}: your program's runs ({mark})", self.exercise.name),
            format!("{} ({})", self.exercise.title, self.exercise.rule.phrase()),
            &runs,
        )
    }
}

impl ConfigureVerdict {
    pub fn evcxr_display(&self) {
        show_in_notebook(self);
    }
}

impl Verdict {
    pub fn evcxr_display(&self) {
        show_in_notebook(self);
    }
}
