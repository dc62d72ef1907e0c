//! Who may talk to `ig daemon`: the Unix socket's owner, group and mode; one daemon per socket;
//! root only; TCP only with mutual TLS (or an explicit --tls-insecure).

mod common;
mod daemon_common;
use common::*;
use daemon_common::*;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A uid and gid no test machine gives anything to.
const NOBODY: &str = "65534";
/// The group the daemon is told to let in.
const GROUP: u32 = 4242;

/// `ig daemon` on `dir`/run/ig.sock with `flags`, outside the harness (for starts that must fail).
fn daemon_cmd(dir: &Path, flags: &[&str]) -> Command {
    let mut c = Command::new(ig_bin());
    c.arg("daemon")
        .arg("--socket")
        .arg(dir.join("run/ig.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(flags)
        .env_remove("IG_REMOTE");
    c
}

/// A daemon start that must fail quickly; returns its stderr.
fn daemon_fails(c: &mut Command) -> String {
    let o = output_within(c, Duration::from_secs(20));
    assert!(
        !o.status.success(),
        "{c:?} should have failed; stderr: {}",
        stderr_of(&o)
    );
    stderr_of(&o)
}

/// `ig ARGS` as uid/gid 65534 with only the supplementary `groups` (none: cleared).
fn as_nobody(program: &Path, args: &[&str], groups: Option<u32>) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY]);
    match groups {
        Some(g) => c.arg("--groups").arg(g.to_string()),
        None => c.arg("--clear-groups"),
    };
    c.arg(program)
        .args(args)
        .env("HOME", "/tmp")
        .env_remove("IG_REMOTE")
        .env_remove("IG_STORE");
    c
}

/// A TCP port nothing listens on (right now).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

fn json_array(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "ig failed: {}", stderr_of(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not a JSON array ({e}): {}", stdout_of(o)))
}

#[test]
fn socket_is_root_and_group_0660_in_a_0710_directory_and_only_the_group_gets_in() {
    let d = Daemon::start(&["--group", &GROUP.to_string(), "--runtimes", "none"]);
    // The temporary directory itself is root's 0700: open it so that only the daemon's
    // directory decides who reaches the socket.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod tempdir");

    let sock = std::fs::symlink_metadata(d.socket()).expect("socket exists");
    assert!(
        sock.file_type().is_socket(),
        "{} is not a socket",
        d.socket().display()
    );
    assert_eq!(sock.mode() & 0o7777, 0o660, "socket mode {:o}", sock.mode());
    assert_eq!(sock.uid(), 0, "socket owner");
    assert_eq!(sock.gid(), GROUP, "socket group");
    let dir = std::fs::metadata(d.socket().parent().expect("socket dir")).expect("socket dir");
    assert_eq!(
        dir.mode() & 0o7777,
        0o710,
        "socket directory mode {:o}",
        dir.mode()
    );
    assert_eq!(dir.uid(), 0, "socket directory owner");
    assert_eq!(dir.gid(), GROUP, "socket directory group");

    let remote = d.remote();
    let denied = output_within(
        &mut as_nobody(&ig_bin(), &["list", "--remote", &remote], None),
        Duration::from_secs(20),
    );
    assert!(!denied.status.success(), "a uid outside the group got in");
    let err = stderr_of(&denied);
    assert!(err.contains("permission denied"), "stderr: {err}");
    assert!(
        err.contains("only root and the daemon's --group may connect"),
        "stderr: {err}"
    );

    let member = output_within(
        &mut as_nobody(
            &ig_bin(),
            &["list", "-o", "json", "--remote", &remote],
            Some(GROUP),
        ),
        Duration::from_secs(20),
    );
    assert!(json_array(&member).is_empty(), "no instances yet");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let other = tempfile::tempdir().expect("tempdir");
    let err = daemon_fails(
        Command::new(ig_bin())
            .arg("daemon")
            .arg("--socket")
            .arg(d.socket())
            .arg("--state-dir")
            .arg(other.path().join("state"))
            .args(["--runtimes", "none"]),
    );
    assert!(
        err.contains("another ig daemon is serving"),
        "stderr: {err}"
    );
    // The first one is untouched.
    let o = d.ig(&["list"]);
    assert!(o.status.success(), "first daemon: {}", stderr_of(&o));
    assert!(d.socket().exists());
}

#[test]
fn the_socket_of_a_killed_daemon_is_replaced() {
    let mut d = Daemon::start(&["--runtimes", "none"]);
    let (status, _) = d.signal_and_wait(libc::SIGKILL);
    assert!(!status.success());
    let meta = std::fs::symlink_metadata(d.socket()).expect("a killed daemon leaves its socket");
    assert!(meta.file_type().is_socket());
    // Serving again means the stale file was removed and bound anew.
    d.restart();
    let o = d.ig(&["list"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
}

#[test]
fn root_without_cap_chown_is_told_what_the_group_needs() {
    // Root in a container started with `--cap-drop CHOWN` cannot give the socket to a group it
    // is not in: the error names the capability, and nothing is left listening.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ig = daemon_cmd(
        dir.path(),
        &["--runtimes", "none", "--group", &GROUP.to_string()],
    );
    let mut c = Command::new("setpriv");
    c.args(["--bounding-set", "-chown", "--inh-caps", "-chown"])
        .arg(ig.get_program())
        .args(ig.get_args())
        .env_remove("IG_REMOTE");
    let err = daemon_fails(&mut c);
    assert!(err.contains("needs CAP_CHOWN"), "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(
        !dir.path().join("run/ig.sock").exists(),
        "no socket is left"
    );
    // The same flags with the capability start.
    let mut child = ig
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let sock = dir.path().join("run/ig.sock");
    let up = wait_until(Duration::from_secs(30), || sock.exists());
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(up && status.success(), "with CAP_CHOWN: up {up}, {status}");
}

#[test]
fn a_stale_socket_file_is_removed_and_a_regular_file_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("run/ig.sock");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists(), "a closed listener leaves its file");

    let mut child = daemon_cmd(dir.path(), &["--runtimes", "none"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let remote = format!("unix://{}", path.display());
    let answered = wait_until(Duration::from_secs(30), || {
        Command::new(ig_bin())
            .args(["list", "--remote", &remote])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let exited = child.try_wait().expect("wait");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert!(
        answered,
        "daemon did not serve over a stale socket (exited: {exited:?}); stderr: {err}"
    );
    assert!(status.success(), "SIGTERM should exit 0: {status}; {err}");

    // Something that is not a socket is left alone.
    let other = tempfile::tempdir().expect("tempdir");
    let file = other.path().join("run/ig.sock");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, "precious").expect("write");
    let err = daemon_fails(&mut daemon_cmd(other.path(), &["--runtimes", "none"]));
    assert!(err.contains("not a socket"), "stderr: {err}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "precious");
}

#[test]
fn the_daemon_needs_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let socket = dir.path().join("ig.sock");
    let mut c = as_nobody(
        &ig_bin(),
        &[
            "daemon",
            "--socket",
            &path_str(&socket),
            "--state-dir",
            &path_str(&dir.path().join("state")),
            "--runtimes",
            "none",
        ],
        None,
    );
    let err = daemon_fails(&mut c);
    assert!(err.contains("must run as root"), "stderr: {err}");
    assert!(!socket.exists(), "a refused daemon created its socket");
}

#[test]
fn tcp_needs_all_three_tls_flags_or_tls_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("any.pem");
    std::fs::write(&pem, "not used").expect("write");
    let pem = path_str(&pem);
    let listen = format!("tcp://127.0.0.1:{}", free_port());

    let err = daemon_fails(&mut daemon_cmd(
        dir.path(),
        &["--runtimes", "none", "--listen", &listen],
    ));
    assert!(
        err.contains("refusing to serve TCP without TLS"),
        "stderr: {err}"
    );

    let err = daemon_fails(&mut daemon_cmd(
        dir.path(),
        &[
            "--runtimes",
            "none",
            "--listen",
            &listen,
            "--tls-cert",
            &pem,
        ],
    ));
    assert!(
        err.contains("mutual TLS needs --tls-cert, --tls-key and --tls-client-ca"),
        "stderr: {err}"
    );
    assert!(
        err.contains("missing: --tls-key, --tls-client-ca"),
        "stderr: {err}"
    );

    let err = daemon_fails(&mut daemon_cmd(
        dir.path(),
        &[
            "--runtimes",
            "none",
            "--listen",
            &listen,
            "--tls-cert",
            &pem,
            "--tls-key",
            &pem,
        ],
    ));
    assert!(err.contains("missing: --tls-client-ca"), "stderr: {err}");
    assert!(!err.contains("missing: --tls-key"), "stderr: {err}");
}

#[test]
fn tls_insecure_serves_plain_tcp_with_a_warning() {
    let port = free_port();
    let listen = format!("tcp://127.0.0.1:{port}");
    let mut d = Daemon::start(&["--runtimes", "none", "--listen", &listen, "--tls-insecure"]);
    let o = output_within(
        &mut d.cmd(&["list", "-o", "json", "--remote", &listen]),
        Duration::from_secs(20),
    );
    assert!(json_array(&o).is_empty());
    let (status, err) = d.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "SIGTERM should exit 0: {status}; {err}");
    assert!(err.contains("warning"), "stderr: {err}");
    assert!(err.contains("--tls-insecure"), "stderr: {err}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a client
/// certificate from another CA.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki.leaf("client", "ca", "extendedKeyUsage=clientAuth\n");
        pki.leaf("rogue", "other-ca", "extendedKeyUsage=clientAuth\n");
        pki
    }

    fn path(&self, name: &str) -> String {
        path_str(&self.dir.path().join(name))
    }

    fn openssl(&self, args: &[&str]) {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl (package openssl)");
        assert!(o.status.success(), "openssl {args:?}: {}", stderr_of(&o));
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=ig test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn leaf(&self, name: &str, ca: &str, ext: &str) {
        let ext_file = format!("{name}.ext");
        std::fs::write(self.dir.path().join(&ext_file), ext).expect("write extfile");
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN=ig test {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}

/// A daemon that serves TCP with mutual TLS from `pki`; its address.
fn mtls_daemon(pki: &Pki) -> (Daemon, String) {
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let d = Daemon::start(&[
        "--runtimes",
        "none",
        "--listen",
        &tcp,
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
        "--tls-client-ca",
        &pki.path("ca.pem"),
    ]);
    (d, tcp)
}

/// `--remote TCP` and the TLS flags of client `name` (none: no client certificate) trusting
/// `server_ca`.
fn tls_flags(pki: &Pki, tcp: &str, name: Option<&str>, server_ca: &str) -> Vec<String> {
    let mut v = vec!["--remote".to_string(), tcp.to_string()];
    if let Some(n) = name {
        v.extend([
            "--tls-cert".into(),
            pki.path(&format!("{n}.pem")),
            "--tls-key".into(),
            pki.path(&format!("{n}.key")),
        ]);
    }
    v.extend([
        "--tls-server-ca".into(),
        pki.path(&format!("{server_ca}.pem")),
    ]);
    v
}

fn client(d: &Daemon, args: &[&str], tls: &[String]) -> Output {
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(tls.iter().map(String::as_str))
        .collect();
    output_within(&mut d.cmd(&all), Duration::from_secs(30))
}

#[test]
fn mutual_tls_lets_in_only_clients_of_the_client_ca() {
    let pki = Pki::new();
    let (d, tcp) = mtls_daemon(&pki);
    let good = tls_flags(&pki, &tcp, Some("client"), "ca");

    // A client certificate signed by --tls-client-ca.
    assert!(json_array(&client(&d, &["list", "-o", "json"], &good)).is_empty());

    // A remote run over mutual TLS sees an exec we make (only uid 54321's, so the one event
    // --max-events 1 lets through is ours).
    let m = marker("mtls");
    let mut run_args = vec![
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--max-events",
        "1",
        "--uid",
        "54321",
    ];
    run_args.extend(good.iter().map(String::as_str));
    let mut run = d.spawn(&run_args);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = run.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ig run over mutual TLS saw no exec; stderr: {}",
            run.stderr_text()
        );
        exec(
            "setpriv",
            &[
                "--reuid",
                "54321",
                "--regid",
                "54321",
                "--clear-groups",
                "/bin/true",
                &m,
            ],
        );
        thread::sleep(Duration::from_millis(200));
    };
    thread::sleep(Duration::from_millis(200));
    assert!(status.success(), "ig run: {}", run.stderr_text());
    let events = run.events();
    assert_eq!(events.len(), 1, "--max-events 1: {:?}", run.lines());
    assert_eq!(events[0]["comm"], "true", "{}", events[0]);
    assert!(args_of(&events[0]).contains(&m), "{}", events[0]);

    let refused = [
        (
            "a client without a certificate",
            tls_flags(&pki, &tcp, None, "ca"),
        ),
        (
            "a client certificate from another CA",
            tls_flags(&pki, &tcp, Some("rogue"), "ca"),
        ),
        (
            "a plain-text client",
            vec!["--remote".to_string(), tcp.clone()],
        ),
        (
            "a client that does not trust the server's CA",
            tls_flags(&pki, &tcp, Some("client"), "other-ca"),
        ),
    ];
    for (what, tls) in &refused {
        for args in [
            &["list", "-o", "json"][..],
            &["run", "trace_exec", "--host"],
        ] {
            let o = client(&d, args, tls);
            let err = stderr_of(&o);
            assert!(!o.status.success(), "{what} got in: {}", stdout_of(&o));
            assert!(o.stdout.is_empty(), "{what}: {}", stdout_of(&o));
            assert!(err.starts_with("ig: error: "), "{what}: {err}");
        }
    }

    // Refused handshakes leave the listener serving.
    assert!(json_array(&client(&d, &["list", "-o", "json"], &good)).is_empty());
}

/// A client the daemon refuses is told so: the connection error names the certificate
/// problem, every time (not a broken pipe or a cancelled operation, depending on a race).
#[test]
fn a_refused_tls_client_is_told_it_was_refused_for_its_certificate() {
    let pki = Pki::new();
    let (d, tcp) = mtls_daemon(&pki);
    let mut unclear = Vec::new();
    for (what, name) in [
        ("no client certificate", None),
        ("a client certificate from another CA", Some("rogue")),
    ] {
        let tls = tls_flags(&pki, &tcp, name, "ca");
        for _ in 0..10 {
            let o = client(&d, &["list"], &tls);
            assert!(!o.status.success(), "{what} got in");
            let err = stderr_of(&o);
            let lower = err.to_lowercase();
            let clear = err.contains(&format!("ig: error: cannot connect to the daemon at {tcp}"))
                && (lower.contains("certificate") || lower.contains("unknownca"));
            if !clear {
                unclear.push(format!("{what}: {}", err.trim()));
            }
        }
    }
    assert!(
        unclear.is_empty(),
        "{} of 20 refused clients were not told why:\n{}",
        unclear.len(),
        unclear.join("\n")
    );
}
