//! How the lab reaches a cluster beyond its address: a client-settings file
//! in librdkafka's property format (`key=value` lines, `#` comments), named
//! by `KAFKA_CLIENT_CONFIG` (the `lab` command's `--client-config` sets it).
//! Every client the lab makes applies it, the SIGKILLed workers too (they
//! inherit the variable): `security.protocol`, `sasl.*`, `ssl.*` and any other
//! client setting. A semantic's own settings still win: a file that changes
//! one of them is refused, with the reason the semantic needs it.
//!
//! Secrets (passwords, keys, tokens) from the file never reach an output:
//! the settings shown are redacted, and [`redact`] masks their values in any
//! text the lab prints.

use std::path::{Path, PathBuf};

use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// The variable that names the client-settings file.
pub const ENV: &str = "KAFKA_CLIENT_CONFIG";

/// What a redacted value shows instead.
pub const REDACTED: &str = "[redacted]";

/// Whether `key` holds a secret: its value is never shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "certificate.pem",
        "credential",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// The file `KAFKA_CLIENT_CONFIG` names, if it is set.
pub fn file() -> Option<PathBuf> {
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads a client-settings file: `key=value` per line; blank lines and lines
/// starting with `#` or `!` are skipped.
pub fn read_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::BadConfig(format!(
            "cannot read the client-settings file {} ({ENV}): {e}. Point {ENV} \
             (or --client-config) at a readable file of key=value lines.",
            path.display()
        ))
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Vec<(String, String)>> {
    let mut settings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::BadConfig(format!(
                "{}:{}: not a key=value line (a client setting per line, in librdkafka's \
                 names, e.g. security.protocol=SASL_SSL)",
                path.display(),
                n + 1
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "bootstrap.servers" || key == "metadata.broker.list" {
            return Err(Error::BadConfig(format!(
                "{}:{}: the address does not go in the client-settings file: set \
                 KAFKA_BOOTSTRAP_SERVERS (or --bootstrap) to {value}, and remove this line",
                path.display(),
                n + 1
            )));
        }
        settings.push((key.to_string(), value.to_string()));
    }
    Ok(settings)
}

/// The settings of the file `KAFKA_CLIENT_CONFIG` names (none if unset).
pub fn settings() -> Result<Vec<(String, String)>> {
    match file() {
        Some(path) => read_file(&path),
        None => Ok(Vec::new()),
    }
}

/// Applies the client-settings file to `config`. A file that cannot be read
/// adds nothing here: [`crate::Cluster::connect`] has already refused it with
/// the reason.
pub fn apply(config: &mut ClientConfig) {
    for (k, v) in settings().unwrap_or_default() {
        config.set(k, v);
    }
}

/// Refuses a client-settings file that changes one of the settings a
/// semantic defines its guarantee by; `defined` is (key, value, why).
pub fn refuse_conflicts(
    semantic: &str,
    defined: &[(&str, &str, &str)],
    file_settings: &[(String, String)],
) -> Result<()> {
    for (key, value) in file_settings {
        if let Some((_, wanted, why)) = defined.iter().find(|(k, _, _)| k == key) {
            if !value.eq_ignore_ascii_case(wanted) {
                return Err(Error::BadConfig(format!(
                    "the client-settings file {} sets {key}={value}, but {semantic} needs \
                     {key}={wanted}: {}. Remove that line: the semantic's own settings \
                     define the guarantee the run shows.",
                    file().map(|f| f.display().to_string()).unwrap_or_default(),
                    why.trim_end_matches('.')
                )));
            }
        }
    }
    Ok(())
}

/// `text` with the value of every secret setting of the client-settings file
/// replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (key, value) in settings().unwrap_or_default() {
        if is_secret(&key) && !value.is_empty() {
            out = out.replace(&value, REDACTED);
        }
    }
    out
}

/// The file's settings as they may be shown: secrets redacted.
pub fn shown() -> Vec<(String, String)> {
    settings()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = if is_secret(&k) {
                REDACTED.to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

/// The user a SASL login names, if the file sets one.
pub fn sasl_user() -> Option<String> {
    settings()
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "sasl.username")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_line_by_line_and_a_bad_line_is_named() {
        let path = Path::new("client.properties");
        let settings = parse(
            "# team cluster\n\nsecurity.protocol = SASL_SSL\nsasl.password=a=b\n",
            path,
        )
        .unwrap();
        assert_eq!(
            settings,
            vec![
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.password".into(), "a=b".into())
            ]
        );
        let e = parse("security.protocol\n", path).unwrap_err().to_string();
        assert!(
            e.contains("client.properties:1: not a key=value line"),
            "{e}"
        );
        let e = parse("bootstrap.servers=x:9092\n", path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("set KAFKA_BOOTSTRAP_SERVERS"), "{e}");
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "sasl.jaas.config",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.username", "security.protocol", "ssl.ca.location"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn a_file_that_changes_a_guarantee_setting_is_refused_with_the_reason() {
        let defined = [("enable.idempotence", "true", "retries must not duplicate.")];
        let file = vec![("enable.idempotence".to_string(), "false".to_string())];
        let e = refuse_conflicts("exactly-once", &defined, &file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sets enable.idempotence=false, but exactly-once needs enable.idempotence=true: retries must not duplicate."), "{e}");
        let same = vec![("enable.idempotence".to_string(), "TRUE".to_string())];
        assert!(refuse_conflicts("exactly-once", &defined, &same).is_ok());
    }
}
