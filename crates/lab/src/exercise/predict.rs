//! Predictions: a learner writes down a count, runs the experiment, and the
//! check says whether the run agreed, and why.

use std::fmt;

/// What a check concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The prediction is still `None`.
    NotAttempted { what: String },
    Right {
        what: String,
        actual: u64,
        why: String,
    },
    Wrong {
        what: String,
        predicted: u64,
        actual: u64,
        why: String,
    },
}

impl Verdict {
    pub fn is_right(&self) -> bool {
        matches!(self, Verdict::Right { .. })
    }
}

/// Compares a prediction with what a run counted.
pub fn check(what: &str, predicted: Option<u64>, actual: u64, why: &str) -> Verdict {
    match predicted {
        None => Verdict::NotAttempted { what: what.into() },
        Some(p) if p == actual => Verdict::Right {
            what: what.into(),
            actual,
            why: why.into(),
        },
        Some(p) => Verdict::Wrong {
            what: what.into(),
            predicted: p,
            actual,
            why: why.into(),
        },
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::NotAttempted { what } => write!(
                f,
                "… {what}: write your prediction as Some(n) in the cell above, then run both cells again"
            ),
            Verdict::Right { what, actual, why } => write!(f, "✔ {what}: {actual}, as you predicted. {why}"),
            Verdict::Wrong { what, predicted, actual, why } => write!(
                f,
                "✘ {what}: you predicted {predicted}, the run counted {actual}. {why}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_says_right_wrong_or_not_yet() {
        assert!(check("lost", Some(0), 0, "because").is_right());
        let wrong = check("lost", Some(3), 0, "nothing failed");
        assert!(!wrong.is_right());
        assert_eq!(
            wrong.to_string(),
            "✘ lost: you predicted 3, the run counted 0. nothing failed"
        );
        assert!(check("lost", None, 0, "").to_string().contains("Some(n)"));
    }
}
