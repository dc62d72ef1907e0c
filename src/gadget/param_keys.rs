//! Which names a gadget parameter may take: each becomes a flag of `ig run IMAGE`, beside ig's
//! own flags, so a key that is one of those would take the flag over (or, for clap, be a
//! duplicate definition).

use super::GadgetError;

/// The arguments of `ig run`: its long flags, `--syscall-filters` (which flight-recorder gadgets
/// get) and the positional `image`. `cli::run`'s tests check this list against the command.
pub const RESERVED_KEYS: &[&str] = &[
    "image",
    "output",
    "fields",
    "filter",
    "timeout",
    "max-events",
    "host",
    "containername",
    "runtimes",
    "docker-socketpath",
    "containerd-socketpath",
    "podman-socketpath",
    "remote",
    "tls-cert",
    "tls-key",
    "tls-server-ca",
    "detach",
    "name",
    "tags",
    "output-file",
    "output-max-size",
    "output-max-backups",
    "pull",
    "verify-image",
    "public-key",
    "insecure-registries",
    "allowed-gadgets",
    "help",
    "version",
    "syscall-filters",
    "map-fetch-interval",
    "map-fetch-count",
    "sort",
    "max-entries",
];

/// Longest key accepted; Inspektor Gadget's own keys are a few words at most.
const MAX_KEY_LEN: usize = 64;

/// Checks that every key can be a flag of its own: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64
/// bytes, not one of ig's flags, not given twice.
///
/// Errors: [`GadgetError::ParamKey`] naming the key and the reason.
pub fn check_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), GadgetError> {
    let mut seen: Vec<&str> = Vec::new();
    for key in keys {
        let bad = |reason: &str| GadgetError::ParamKey {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let well_formed = key.len() <= MAX_KEY_LEN
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !well_formed {
            return Err(bad(
                "a parameter key is 1 to 64 letters, digits, `_`, `.` or `-`, starting with a letter or digit",
            ));
        }
        if RESERVED_KEYS.contains(&key) {
            return Err(bad(&format!(
                "`--{key}` is a flag of ig itself; rename the parameter (its `key` in gadget.yaml)"
            )));
        }
        if seen.contains(&key) {
            return Err(bad("two parameters have this key"));
        }
        seen.push(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ig_flags_bad_names_and_duplicates() {
        assert!(check_keys(["ignore-failed", "paths", "targ_comm", "x.y"]).is_ok());
        for (keys, want) in [
            (vec!["timeout"], "`--timeout` is a flag of ig itself"),
            (vec!["max-events"], "`--max-events` is a flag of ig itself"),
            (vec!["output"], "`--output` is a flag of ig itself"),
            (vec!["a", "a"], "two parameters have this key"),
            (vec![""], "1 to 64 letters"),
            (vec!["-x"], "1 to 64 letters"),
            (vec!["a b"], "1 to 64 letters"),
            (vec!["a=b"], "1 to 64 letters"),
        ] {
            let e = check_keys(keys.iter().copied()).unwrap_err().to_string();
            assert!(e.contains(want), "{keys:?}: {e}");
        }
        let long = "k".repeat(65);
        assert!(check_keys([long.as_str()]).is_err());
    }
}
