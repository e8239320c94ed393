//! Where a broker fault lands. The plan names a broker or a role (the leader
//! of an input or output partition, a coordinator); leadership moves during a
//! run, so a role is resolved to a broker only when its fault strikes, from
//! what the cluster says then. Kept apart from the executor so that the rule
//! can be tested without a cluster.

use super::plan::Target;
use crate::error::Result;
use crate::faults::leader::exactly_once::{Led, Role};

/// What the pipeline depends on and which broker leads each (-1: nobody),
/// as asked of the cluster just before a strike; or why it is not known.
pub(super) type Leaderships = Result<Vec<(Led, i32)>>;

/// The broker `target` names now, and how it was found (empty for a broker
/// named outright or a role found where it was aimed). `taken`: brokers another fault of the same step already
/// struck; a follower pause moves off them, so that one step does not kill
/// and freeze the same broker (a kill aimed at a role is never moved: the
/// role is the point).
pub(super) fn resolve(
    target: Target,
    now: &Leaderships,
    brokers: &[u32],
    taken: &[u32],
) -> (u32, String) {
    match target {
        Target::Leader { led, fallback } => {
            let leader = now.as_ref().ok().and_then(|all| {
                all.iter()
                    .find(|(l, node)| *l == led && *node > 0)
                    .map(|(_, node)| *node as u32)
            });
            match (leader, now) {
                (Some(node), _) => (node, format!("broker {node}")),
                (None, Err(e)) => (
                    fallback,
                    format!(
                        "who leads it is not known ({e}): broker {fallback} instead"
                    ),
                ),
                (None, Ok(_)) => (
                    fallback,
                    format!("this run has no {led}: broker {fallback} instead"),
                ),
            }
        }
        Target::Broker(node) if taken.contains(&node) => {
            // The next broker after it, in node order, that is still free.
            let mut order: Vec<u32> = brokers.to_vec();
            order.sort();
            let after = order.iter().position(|&b| b == node).unwrap_or(0);
            let free = (1..=order.len())
                .map(|i| order[(after + i) % order.len()])
                .find(|b| !taken.contains(b));
            match free {
                Some(other) => (
                    other,
                    format!("broker {node} was struck by this step already: broker {other} instead"),
                ),
                None => (node, String::new()),
            }
        }
        Target::Broker(node) => (node, String::new()),
        Target::Processor | Target::Proxy => (0, String::new()),
    }
}

/// What broker `node` leads of the pipeline, in words. A pipeline without
/// transactions has no transaction coordinator: `transactions` false leaves
/// it out.
pub(super) fn led_words(now: &Leaderships, node: u32, transactions: bool) -> String {
    match now {
        Ok(all) => {
            let led: Vec<String> = all
                .iter()
                .filter(|(led, leader)| {
                    *leader == node as i32
                        && (transactions || led.role != Role::TransactionCoordinator)
                })
                .map(|(led, _)| led.to_string())
                .collect();
            match led.is_empty() {
                true => "nothing of the pipeline".into(),
                false => led.join(", "),
            }
        }
        Err(e) => format!("(not known: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn led(role: Role, partition: Option<i32>) -> Led {
        Led { role, partition }
    }

    fn snapshot() -> Leaderships {
        Ok(vec![
            (led(Role::Input, Some(0)), 2),
            (led(Role::Input, Some(1)), 3),
            (led(Role::Output, Some(0)), 1),
            (led(Role::GroupCoordinator, None), 3),
            (led(Role::TransactionCoordinator, None), 2),
        ])
    }

    #[test]
    fn a_role_is_struck_where_it_is_led_now_or_at_the_fallback_with_the_reason() {
        let aim = |l: Led| Target::Leader {
            led: l,
            fallback: 1,
        };
        let b = [1, 2, 3];
        let (node, how) =
            resolve(aim(led(Role::GroupCoordinator, None)), &snapshot(), &b, &[]);
        assert_eq!((node, how.as_str()), (3, "broker 3"));
        // A kill aimed at a role is not moved off a broker the step struck.
        assert_eq!(
            resolve(aim(led(Role::Input, Some(1))), &snapshot(), &b, &[3]).0,
            3
        );
        // A partition nobody leads (-1) or that is not listed: the fallback.
        let (node, how) =
            resolve(aim(led(Role::Output, Some(2))), &snapshot(), &b, &[]);
        assert_eq!(node, 1);
        assert_eq!(how, "this run has no output partition 2: broker 1 instead");
        let down: Leaderships = Err(Error::BadData("metadata timed out".into()));
        let (node, how) = resolve(aim(led(Role::Input, Some(0))), &down, &b, &[]);
        assert_eq!(node, 1);
        assert!(how.contains("metadata timed out"), "{how}");
    }

    #[test]
    fn a_broker_named_outright_moves_only_off_a_broker_the_step_struck() {
        let b = [3, 1, 2];
        assert_eq!(
            resolve(Target::Broker(2), &snapshot(), &b, &[]),
            (2, String::new())
        );
        assert_eq!(resolve(Target::Broker(2), &snapshot(), &b, &[2]).0, 3);
        assert_eq!(resolve(Target::Broker(3), &snapshot(), &b, &[3, 1]).0, 2);
        // Nowhere else to go: it stays.
        assert_eq!(resolve(Target::Broker(1), &snapshot(), &b, &[1, 2, 3]).0, 1);
    }

    #[test]
    fn what_a_broker_leads_is_said_without_a_coordinator_the_run_does_not_have() {
        assert_eq!(
            led_words(&snapshot(), 2, true),
            "input partition 0, transaction coordinator"
        );
        assert_eq!(led_words(&snapshot(), 2, false), "input partition 0");
        assert_eq!(led_words(&snapshot(), 4, true), "nothing of the pipeline");
        let down: Leaderships = Err(Error::BadData("no answer".into()));
        assert!(led_words(&down, 1, true).contains("not known"));
    }
}
