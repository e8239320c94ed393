//! Which Apache Kafka release a broker runs, read from the broker itself.
//!
//! No request returns a broker's version string, but every release raises the
//! newest version of some requests, and a broker lists the versions it speaks
//! in its answer to `ApiVersions` (the first request any client sends; it is
//! allowed before authentication). Matching that list against each release's
//! request schemas names the minor release; the patch release does not show.
//! Over TLS this plain-TCP probe cannot talk, and the answer is "unknown".

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// API keys whose newest version differs between the releases below.
const API_KEYS: [i16; 47] = [
    0, 1, 2, 3, 8, 9, 10, 15, 16, 18, 22, 24, 25, 26, 27, 28, 35, 42, 45, 55, 57, 60,
    66, 68, 69, 71, 72, 74, 75, 76, 77, 78, 79, 80, 81, 83, 84, 85, 86, 87, 88, 89, 90,
    91, 92, 93, 94,
];
/// Per minor release, the newest stable version of each of [`API_KEYS`]
/// (-1: no such API), from the request schemas in that release's
/// kafka-clients jar (latest patch release).
const RELEASES: [(&str, [i8; 47]); 9] = [
    (
        "3.6",
        [
            9, 15, 8, 12, 8, 8, 4, 5, 4, 3, 4, 4, 3, 3, 1, 3, 4, 2, 0, 1, 1, 0, 0, -1,
            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1,
        ],
    ),
    (
        "3.7",
        [
            10, 16, 8, 12, 9, 9, 4, 5, 4, 3, 4, 4, 3, 3, 1, 3, 4, 2, 0, 1, 1, 1, 0, 0,
            -1, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1,
        ],
    ),
    (
        "3.8",
        [
            11, 16, 8, 12, 9, 9, 5, 5, 5, 3, 5, 5, 4, 4, 1, 4, 4, 2, 0, 1, 1, 1, 1, 0,
            0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1,
        ],
    ),
    (
        "3.9",
        [
            11, 17, 9, 12, 9, 9, 6, 5, 5, 4, 5, 5, 4, 4, 1, 4, 4, 2, 0, 2, 1, 1, 1, 0,
            0, 0, 0, 0, 0, -1, -1, -1, -1, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1,
        ],
    ),
    (
        "4.0",
        [
            12, 17, 10, 13, 9, 9, 6, 6, 5, 4, 5, 5, 4, 5, 1, 5, 4, 2, 0, 2, 2, 2, 1, 1,
            1, 0, 0, 0, 0, -1, -1, -1, -1, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1,
        ],
    ),
    (
        "4.1",
        [
            13, 18, 10, 13, 9, 9, 6, 6, 5, 4, 5, 5, 4, 5, 1, 5, 4, 2, 1, 2, 2, 2, 2, 1,
            1, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, -1, -1,
        ],
    ),
    (
        "4.2",
        [
            13, 18, 11, 13, 10, 10, 6, 6, 5, 4, 5, 5, 4, 5, 2, 5, 4, 2, 1, 2, 2, 2, 2,
            1, 1, 0, 0, 1, 0, 1, 1, 2, 2, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, -1, -1,
        ],
    ),
    (
        "4.3",
        [
            13, 18, 11, 13, 10, 10, 6, 6, 5, 4, 5, 5, 4, 5, 2, 5, 5, 2, 1, 2, 2, 2, 2,
            1, 1, 0, 0, 1, 0, 1, 1, 2, 2, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, -1, -1,
        ],
    ),
    (
        "4.4",
        [
            13, 18, 11, 13, 10, 10, 6, 6, 5, 5, 5, 5, 4, 5, 2, 6, 5, 3, 1, 2, 2, 2, 2,
            1, 1, 0, 0, 1, 0, 1, 1, 2, 2, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0,
        ],
    ),
];

/// What a broker's `ApiVersions` answer says about its release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// Every listed version matches this minor release's, e.g. `4.4`.
    Exactly(&'static str),
    /// Closest to this release, with `mismatches` requests that differ.
    Nearest {
        release: &'static str,
        mismatches: usize,
    },
    /// Speaks newer versions than the newest release known here.
    NewerThan(&'static str),
}

impl Release {
    /// As the lab names a version: `4.4.x`, `4.4.x (nearest)`, `newer than 4.4`.
    pub fn label(&self) -> String {
        match self {
            Release::Exactly(r) => format!("{r}.x"),
            Release::Nearest { release, .. } => format!("{release}.x (nearest match)"),
            Release::NewerThan(r) => format!("newer than {r}"),
        }
    }

    /// The minor release, e.g. `4.4` (none when newer than every known one).
    pub fn minor(&self) -> Option<&'static str> {
        match self {
            Release::Exactly(r) | Release::Nearest { release: r, .. } => Some(r),
            Release::NewerThan(_) => None,
        }
    }
}

/// The release whose request versions match `newest` (API key to the newest
/// version the broker speaks). An API the broker does not list is ignored:
/// brokers leave out requests of features that are off (share groups, say).
pub fn release_of(newest: &BTreeMap<i16, i16>) -> Release {
    let (latest, latest_versions) = RELEASES[RELEASES.len() - 1];
    let beyond = API_KEYS
        .iter()
        .zip(latest_versions)
        .any(|(key, known)| newest.get(key).is_some_and(|&v| v > i16::from(known)))
        || newest
            .keys()
            .any(|k| k > API_KEYS.iter().max().unwrap_or(&0));
    if beyond {
        return Release::NewerThan(latest);
    }
    let mismatches = |versions: &[i8]| {
        API_KEYS
            .iter()
            .zip(versions)
            .filter(|(key, &known)| {
                newest.get(key).is_some_and(|&v| v != i16::from(known))
            })
            .count()
    };
    // The newest release among the best matches: a later release that only
    // added requests the broker left out matches as well as its predecessor.
    let (release, best) = RELEASES
        .iter()
        .map(|(r, versions)| (*r, mismatches(versions)))
        .rev()
        .min_by_key(|(_, m)| *m)
        .unwrap_or((latest, usize::MAX));
    if best == 0 {
        Release::Exactly(release)
    } else {
        Release::Nearest {
            release,
            mismatches: best,
        }
    }
}

/// Asks the broker at `address` (`host:port`) which request versions it
/// speaks: `ApiVersions` v0 over plain TCP. The key is the API key, the value
/// the newest version.
pub fn api_versions(
    address: &str,
    timeout: Duration,
) -> std::io::Result<BTreeMap<i16, i16>> {
    let target = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::other(format!("{address} resolves to nothing"))
    })?;
    let mut socket = TcpStream::connect_timeout(&target, timeout)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    let client_id = b"lab-version-probe";
    // Request header v1: api key 18, version 0, correlation id, client id.
    let mut request = Vec::new();
    request.extend_from_slice(&18i16.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    socket.write_all(&(request.len() as i32).to_be_bytes())?;
    socket.write_all(&request)?;
    let mut size = [0u8; 4];
    socket.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(10..=1 << 20).contains(&size) {
        return Err(std::io::Error::other(format!(
            "{address} answered ApiVersions with a {size}-byte frame: not a Kafka broker, or TLS"
        )));
    }
    let mut answer = vec![0u8; size as usize];
    socket.read_exact(&mut answer)?;
    parse_api_versions_v0(&answer)
}

/// The body of an `ApiVersions` v0 answer (after the size): correlation id,
/// error code, then (api key, min, max) per request.
fn parse_api_versions_v0(answer: &[u8]) -> std::io::Result<BTreeMap<i16, i16>> {
    let bad = |why: &str| std::io::Error::other(format!("ApiVersions answer: {why}"));
    let i16_at = |at: usize| i16::from_be_bytes([answer[at], answer[at + 1]]);
    if answer.len() < 10 {
        return Err(bad("too short"));
    }
    let error = i16_at(4);
    if error != 0 {
        return Err(bad(&format!("error code {error}")));
    }
    let count = i32::from_be_bytes([answer[6], answer[7], answer[8], answer[9]]);
    if count < 0 || answer.len() < 10 + 6 * count as usize {
        return Err(bad("truncated"));
    }
    Ok((0..count as usize)
        .map(|i| (i16_at(10 + 6 * i), i16_at(14 + 6 * i)))
        .collect())
}

/// The broker's release, read from the first of `bootstrap`'s addresses, or
/// `None` if it does not answer in plain Kafka protocol within `timeout`.
pub fn probe(bootstrap: &str, timeout: Duration) -> Option<Release> {
    let first = bootstrap.split(',').next()?.trim();
    let first = first.rsplit_once("://").map_or(first, |(_, a)| a);
    api_versions(first, timeout).ok().map(|v| release_of(&v))
}

/// Whether a version someone stated (`KAFKA_VERSION=4.1.1`) is the minor
/// release the broker answers like.
pub fn agrees(stated: &str, release: &Release) -> bool {
    match release.minor() {
        Some(minor) => stated == minor || stated.starts_with(&format!("{minor}.")),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_of(release: &str) -> BTreeMap<i16, i16> {
        let (_, versions) = RELEASES.iter().find(|(r, _)| *r == release).unwrap();
        API_KEYS
            .iter()
            .zip(versions)
            .filter(|(_, &v)| v >= 0)
            .map(|(&k, &v)| (k, i16::from(v)))
            .collect()
    }

    #[test]
    fn every_known_release_is_told_apart_by_its_request_versions() {
        for (release, _) in RELEASES {
            assert_eq!(release_of(&answer_of(release)), Release::Exactly(release));
        }
    }

    #[test]
    fn a_broker_that_leaves_out_optional_requests_is_still_recognised() {
        let mut answer = answer_of("4.4");
        for share_group_api in [76, 77, 78, 79, 83, 84, 85, 86, 87, 90, 91, 92] {
            answer.remove(&share_group_api);
        }
        assert_eq!(release_of(&answer), Release::Exactly("4.4"));
    }

    #[test]
    fn newer_versions_than_any_known_release_say_so() {
        let mut answer = answer_of("4.4");
        *answer.get_mut(&0).unwrap() += 1; // Produce
        assert_eq!(release_of(&answer), Release::NewerThan("4.4"));
        assert_eq!(release_of(&answer).label(), "newer than 4.4");
        let mut answer = answer_of("4.4");
        answer.insert(120, 0); // a request no known release has
        assert_eq!(release_of(&answer), Release::NewerThan("4.4"));
    }

    #[test]
    fn one_odd_version_gives_the_nearest_release() {
        let mut answer = answer_of("4.1");
        *answer.get_mut(&18).unwrap() = 3; // ApiVersions as in 3.8
        let r = release_of(&answer);
        assert_eq!(
            r,
            Release::Nearest {
                release: "4.1",
                mismatches: 1
            }
        );
        assert!(agrees("4.1.1", &r) && !agrees("4.10.0", &r) && !agrees("4.4.0", &r));
    }

    #[test]
    fn a_short_or_failed_answer_is_an_error_not_a_panic() {
        assert!(parse_api_versions_v0(&[0; 4]).is_err());
        let mut failed = vec![0, 0, 0, 1, 0, 35, 0, 0, 0, 0];
        assert!(parse_api_versions_v0(&failed).is_err());
        failed[5] = 0;
        failed[9] = 3; // says 3 entries, holds none
        assert!(parse_api_versions_v0(&failed).is_err());
    }
}
