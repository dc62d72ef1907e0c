//! The .deb and the systemd unit on a real Debian 12 system: `packaging/debian/deb.sh` packages
//! the test build of `ig`, `tests/vm/boot-system.sh` boots a debootstrapped bookworm with
//! systemd as init under qemu, and `tests/vm/systemd.sh` runs there: `apt install ./ig_*.deb`,
//! `systemctl start ig`, a detached instance, `systemctl restart ig`, `journalctl -u ig`, and
//! a tracepoint, a kprobe and an fentry gadget through the unit's capabilities and sandbox.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

struct Vm {
    /// The first value of each `key: value` line of the script.
    values: HashMap<String, String>,
    /// Every line, for the keys that repeat (`journal: …`, `installed: …`).
    lines: Vec<String>,
    console: String,
}

impl Vm {
    fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("the VM printed no {key:?}:\n{}", self.console))
    }

    fn all(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key}: ");
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect()
    }
}

fn build_deb(out: &std::path::Path) -> std::path::PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/debian/deb.sh");
    let o = Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_ig"))
        .env("IG_DEB_OUT", out)
        .env("IG_DEB_FAST", "1")
        .output()
        .expect("run packaging/debian/deb.sh");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "deb.sh failed ({}):\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let deb = std::path::PathBuf::from(stdout.trim().lines().last().unwrap_or_default());
    let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    assert!(
        name.starts_with("ig_") && name.ends_with(".deb") && deb.is_file(),
        "deb.sh printed {stdout:?}"
    );
    deb
}

/// The test gadgets of each program kind, built here and exported to one OCI archive.
fn build_gadgets(dir: &std::path::Path) -> std::path::PathBuf {
    let ig = common::Ig::new();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets");
    let mut export = vec!["image".to_string(), "export".to_string()];
    for g in GADGETS {
        let tag = format!("vm/{g}:v1");
        let out = ig.output(&["image", "build", &format!("{src}/{g}"), "-t", &tag]);
        assert!(out.status.success(), "{g}: {}", common::stderr_of(&out));
        export.push(tag);
    }
    let archive = dir.join("gadgets.tar");
    export.push(archive.to_string_lossy().into_owned());
    let args: Vec<&str> = export.iter().map(String::as_str).collect();
    let out = ig.output(&args);
    assert!(out.status.success(), "{}", common::stderr_of(&out));
    archive
}

const GADGETS: [&str; 3] = ["trace_open", "kprobe_open", "fentry_open"];

fn boot_system(script: &str, files: &[&std::path::Path]) -> Vm {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm");
    let out = Command::new("bash")
        .arg(format!("{dir}/boot-system.sh"))
        .arg(format!("{dir}/{script}"))
        .args(files)
        .output()
        .expect("run tests/vm/boot-system.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "boot-system.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    let mut values = HashMap::new();
    for l in &lines {
        if let Some((k, v)) = l.split_once(": ") {
            values.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    Vm {
        values,
        lines,
        console: format!("{stdout}\n{stderr}"),
    }
}

#[test]
fn deb_installs_and_the_service_keeps_a_detached_instance_across_a_restart() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(dir.path());
    let gadgets = build_gadgets(dir.path());
    let vm = boot_system("systemd.sh", &[deb.as_path(), gadgets.as_path()]);
    let c = &vm.console;

    assert!(vm.get("release").starts_with("6.1."), "{c}");
    assert_eq!(vm.get("init"), "systemd", "{c}");

    // apt installs the package offline (its dependencies are Debian 12's base) with the unit,
    // man pages and completions, and leaves the service off until asked.
    assert_eq!(vm.get("apt-exit"), "0", "{c}");
    assert_eq!(vm.get("ig-path"), "/usr/bin/ig", "{c}");
    let installed = vm.all("installed");
    for f in [
        "/usr/lib/systemd/system/ig.service",
        "/usr/share/man/man1/ig.1.gz",
        "/usr/share/man/man1/ig-daemon.1.gz",
        "/usr/share/bash-completion/completions/ig",
        "/usr/share/zsh/vendor-completions/_ig",
        "/usr/share/fish/vendor_completions.d/ig.fish",
    ] {
        assert!(installed.contains(&f), "{f} not installed:\n{c}");
    }
    // systemd-analyze verify finds nothing to say about the unit.
    assert_eq!(vm.get("verify-exit"), "0", "{c}");
    assert_eq!(vm.all("verify"), Vec::<&str>::new(), "{c}");
    assert_eq!(vm.get("enabled-after-install"), "disabled", "{c}");
    assert_eq!(vm.get("active-after-install"), "inactive", "{c}");

    // systemctl start: the daemon answers on /run/ig/ig.socket (the clients' default path),
    // root:root 0660 in a 0710 runtime directory, its state in /var/lib/ig, hardened.
    assert_eq!(vm.get("start-exit"), "0", "{c}");
    assert_eq!(vm.get("answers"), "yes", "{c}");
    assert_eq!(vm.get("active"), "active", "{c}");
    assert_eq!(vm.get("socket"), "root:root 660", "{c}");
    assert_eq!(vm.get("runtime-dir"), "root:root 710", "{c}");
    assert_eq!(vm.get("state-dir"), "root:root 700", "{c}");
    assert_eq!(vm.get("nonewprivs"), "1", "{c}");
    // Exactly the unit's CapabilityBoundingSet, not root's full set: CHOWN (0),
    // DAC_READ_SEARCH (2), SYS_PTRACE (19), SYS_ADMIN (21), PERFMON (38), BPF (39).
    let capeff = u64::from_str_radix(vm.get("capeff"), 16).expect("CapEff in hex");
    let unit: u64 = [0, 2, 19, 21, 38, 39].iter().map(|b| 1u64 << b).sum();
    assert_eq!(capeff, unit, "CapEff {capeff:#x}, want {unit:#x}:\n{c}");

    // A detached instance, Running; still there and Running after `systemctl restart ig`
    // (another daemon process), and tracing: an exec after the restart reaches `ig attach`.
    assert_eq!(vm.get("detach-exit"), "0", "{c}");
    assert_eq!(vm.get("running-before-restart"), "yes", "{c}");
    assert_eq!(vm.get("restart-exit"), "0", "{c}");
    assert_eq!(vm.get("answers-after-restart"), "yes", "{c}");
    assert_eq!(vm.get("new-pid"), "yes", "{c}");
    assert_eq!(vm.get("running-after-restart"), "yes", "{c}");
    let listed = vm.all("list-after");
    assert!(
        listed
            .iter()
            .any(|l| l.contains("execs") && l.contains("trace_exec") && l.contains("Running")),
        "ig list after the restart:\n{c}"
    );
    let event: serde_json::Value =
        serde_json::from_str(vm.get("attach")).expect("attach printed a JSON event");
    assert_eq!(event["comm"], "echo", "{event}");
    assert_eq!(
        event["args"],
        serde_json::json!(["/bin/echo", "vm-after-restart"]),
        "{event}"
    );

    // Tracepoint, kprobe and fentry programs load and attach under the unit's capability
    // bounding set and sandbox (perf_event_open needs CAP_SYS_ADMIN on Debian's kernel).
    assert_eq!(vm.get("import-exit"), "0", "{c}");
    for g in GADGETS {
        assert_eq!(vm.get(&format!("detach-exit {g}")), "0", "{g}:\n{c}");
        let event: serde_json::Value = serde_json::from_str(vm.get(&format!("event {g}")))
            .unwrap_or_else(|e| panic!("{g}: no JSON event ({e}):\n{c}"));
        assert_eq!(event["fname"], format!("/tmp/vm-marker-{g}"), "{event}");
        assert_eq!(event["comm"], "cat", "{event}");
    }
    assert_eq!(vm.get("restarts"), "0", "the service never failed:\n{c}");

    // journalctl -u ig: the daemon's own lines, from both starts.
    let journal = vm.all("journal");
    let serving = journal
        .iter()
        .filter(|l| l.contains("ig daemon: serving on unix:///run/ig/ig.socket"))
        .count();
    assert_eq!(serving, 2, "journal:\n{}", journal.join("\n"));
    assert!(
        journal.iter().any(|l| l.contains("ig daemon: stopped")),
        "journal:\n{}",
        journal.join("\n")
    );
    println!(
        "system_vm: {} ({}); {:.0} s with the .deb build",
        vm.get("release"),
        vm.get("security"),
        started.elapsed().as_secs_f64()
    );
}
