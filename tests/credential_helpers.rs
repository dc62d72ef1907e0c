//! Docker credential helpers (`credsStore`, `credHelpers` in `~/.docker/config.json`) against a
//! real htpasswd registry: `docker-credential-<name>` scripts written by the test on a private
//! `PATH`. A user who logged in with a helper pushes and pulls at once; a helper's wrong password
//! gives the registry's 401 message; a failing, silent or missing helper gives its own message.

mod common;
#[path = "common/dist.rs"]
mod dist;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use common::{stderr_of, stdout_of};
use dist::{run_sees_open, Dist, Registry};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// A directory of helper scripts, put first on `PATH`.
struct Helpers {
    dir: tempfile::TempDir,
}

impl Helpers {
    fn new() -> Self {
        Helpers {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `docker-credential-NAME`: records the server URL it was asked about in `NAME.log`, then
    /// runs `body` (which answers on stdout).
    fn add(&self, name: &str, body: &str) {
        let path = self.dir.path().join(format!("docker-credential-{name}"));
        let log = self.log(name);
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || {{ echo \"unexpected action $1\" >&2; exit 3; }}\nread -r server\nprintf '%s\\n' \"$server\" >>'{}'\n{body}\n",
            log.display()
        );
        std::fs::write(&path, script).expect("write helper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod helper");
    }

    /// A helper answering these credentials.
    fn answering(&self, name: &str, user: &str, secret: &str) {
        self.add(
            name,
            &format!(
                "printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\""
            ),
        );
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn asked(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }

    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

fn docker_config(d: &Dist, json: &str) {
    let dir = d.home.path().join(".docker");
    std::fs::create_dir_all(&dir).expect("mkdir .docker");
    std::fs::write(dir.join("config.json"), json).expect("write docker config");
}

fn ig(d: &Dist, h: &Helpers, args: &[&str]) -> Output {
    d.cmd(args)
        .env("PATH", h.path_var())
        .output()
        .expect("run ig")
}

fn ok(d: &Dist, h: &Helpers, args: &[&str]) -> String {
    let o = ig(d, h, args);
    assert!(
        o.status.success(),
        "ig {args:?} failed:\n{}{}",
        stdout_of(&o),
        stderr_of(&o)
    );
    stdout_of(&o)
}

fn fail(d: &Dist, h: &Helpers, args: &[&str]) -> String {
    let o = ig(d, h, args);
    assert!(
        !o.status.success(),
        "ig {args:?} succeeded:\n{}",
        stdout_of(&o)
    );
    let err = stderr_of(&o);
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn creds_store_helper_pushes_and_pulls_at_once() {
    let reg = Registry::with_auth(USER, PASSWORD);
    let d = Dist::new();
    let h = Helpers::new();
    h.answering("igstore", USER, PASSWORD);
    // What `docker login` leaves with a store: the registry in auths, no secret there.
    docker_config(
        &d,
        &format!(
            r#"{{"auths":{{"{}":{{}}}},"credsStore":"igstore"}}"#,
            reg.host
        ),
    );
    let r = reg.reference("helper/trace_open:v1");
    d.build(&r);
    let insecure = ["--insecure-registries", reg.host.as_str()];
    ok(&d, &h, &[&["image", "push", &r][..], &insecure].concat());
    ok(&d, &h, &["image", "remove", &r]);
    ok(&d, &h, &[&["image", "pull", &r][..], &insecure].concat());
    // Asked about the registry by its host:port, as `docker login HOST:PORT` stored it.
    let asked = h.asked("igstore");
    assert!(
        asked.lines().all(|l| l == reg.host) && !asked.is_empty(),
        "{asked:?}"
    );
    run_sees_open(&d.ig, &r, &["--verify-image=false"])
        .expect("events from the gadget pulled with the helper's credentials");
    // ig's own file is not where the helper's secret goes.
    assert!(!d.home.path().join(".config/ig/config.json").exists());
}

#[test]
fn cred_helpers_entry_wins_over_the_store_and_wrong_secret_is_a_401() {
    let reg = Registry::with_auth(USER, PASSWORD);
    let d = Dist::new();
    let h = Helpers::new();
    h.answering("igper", USER, PASSWORD);
    h.answering("igstore", USER, "not-the-password");
    let r = reg.reference("per/trace_open:v1");
    d.build(&r);
    let insecure = ["--insecure-registries", reg.host.as_str()];

    // The per-registry helper is used for this registry, not the store.
    docker_config(
        &d,
        &format!(
            r#"{{"credsStore":"igstore","credHelpers":{{"{}":"igper"}}}}"#,
            reg.host
        ),
    );
    ok(&d, &h, &[&["image", "push", &r][..], &insecure].concat());
    ok(&d, &h, &["image", "remove", &r]);
    ok(&d, &h, &[&["image", "pull", &r][..], &insecure].concat());
    assert!(h.asked("igper").contains(&reg.host));
    assert_eq!(h.asked("igstore"), "");

    // The store answers a wrong password: the registry's refusal, naming the user.
    docker_config(&d, r#"{"credsStore":"igstore"}"#);
    ok(&d, &h, &["image", "remove", &r]);
    let err = fail(&d, &h, &[&["image", "pull", &r][..], &insecure].concat());
    assert!(
        err.contains("authentication failed")
            && err.contains("\"alice\"")
            && err.contains(&reg.host),
        "{err}"
    );
}

#[test]
fn failing_missing_and_silent_helpers_are_clear_errors() {
    let reg = Registry::with_auth(USER, PASSWORD);
    let d = Dist::new();
    let h = Helpers::new();
    let r = reg.reference("bad/trace_open:v1");
    let pull = [
        "image",
        "pull",
        r.as_str(),
        "--insecure-registries",
        reg.host.as_str(),
    ];
    let config = |helper: &str| {
        docker_config(
            &d,
            &format!(r#"{{"credHelpers":{{"{}":"{helper}"}}}}"#, reg.host),
        )
    };

    // Exits non-zero: its stderr and exit status, and which helper it was.
    h.add("iglocked", "echo 'keychain is locked' >&2; exit 4");
    config("iglocked");
    let err = fail(&d, &h, &pull);
    assert!(
        err.contains("credential helper docker-credential-iglocked failed for")
            && err.contains("keychain is locked")
            && err.contains("exit status: 4")
            && err.contains(".docker/config.json"),
        "{err}"
    );

    // Not on PATH.
    config("ig-no-such-helper");
    let err = fail(&d, &h, &pull);
    assert!(
        err.contains("docker-credential-ig-no-such-helper is not on PATH")
            && err.contains("credHelpers"),
        "{err}"
    );

    // Not JSON.
    h.add("iggarbage", "echo 'hello'");
    config("iggarbage");
    let err = fail(&d, &h, &pull);
    assert!(
        err.contains("docker-credential-iggarbage gave an invalid answer"),
        "{err}"
    );

    // Knows nothing for this registry (docker-credential-helpers' own words): as if no
    // credentials were configured, so the registry asks for them.
    h.add(
        "igempty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    config("igempty");
    let err = fail(&d, &h, &pull);
    assert!(err.contains("requires authentication"), "{err}");
}

/// Helpers bound by a deadline are covered by the unit tests of `oci::cred_helper` (a 30 s wait
/// here would only slow the suite); this checks the helper sees its server URL and nothing else
/// on stdin, and that Docker Hub is asked by its legacy URL.
#[test]
fn docker_hub_is_asked_by_its_legacy_url() {
    let d = Dist::new();
    let h = Helpers::new();
    // Exits with an error so no network is tried.
    h.add("ighub", "echo 'stop here' >&2; exit 1");
    docker_config(&d, r#"{"credsStore":"ighub"}"#);
    let err = fail(&d, &h, &["image", "pull", "docker.io/library/nothing:v1"]);
    assert!(err.contains("stop here"), "{err}");
    assert_eq!(h.asked("ighub"), "https://index.docker.io/v1/\n");
}
