//! Hostile network peers (issue 17, items 3, 5 and 8): registries that accept and never answer,
//! trickle bytes or send invalid challenges, and container runtime sockets that are not sockets,
//! speak garbage or list very many containers. Every server here is a real socket served by a
//! thread of this test.

mod common;
#[path = "common/dist.rs"]
mod dist;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use common::{stderr_of, stdout_of};
use dist::Dist;

/// A TCP server on 127.0.0.1 handing every connection to `handle` on its own thread. The
/// threads live as long as the test process.
fn tcp_server(handle: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || handle(conn));
        }
    });
    addr
}

/// Reads one request head (up to the blank line).
fn read_head(conn: &TcpStream) {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" || line == "\n" {
            return;
        }
        line.clear();
    }
}

/// Accepts, reads the request, never answers.
fn silent(conn: TcpStream) {
    read_head(&conn);
    thread::sleep(Duration::from_secs(120));
    drop(conn);
}

/// Sends the status line, then one byte of a header every 3 seconds.
fn drip_head(mut conn: TcpStream) {
    read_head(&conn);
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n");
    for b in b"X-Slow: yes\r\n".iter().cycle().take(40) {
        thread::sleep(Duration::from_secs(3));
        if conn.write_all(&[*b]).is_err() {
            return;
        }
    }
}

const MANIFEST: &[u8] = br#"{"mediaType":"application/x-not-a-gadget","schemaVersion":2}"#;

/// A complete head, then the body a byte every 0.25 s, then silence when `stall` (else done).
fn trickle_body(mut conn: TcpStream, stall: bool) {
    read_head(&conn);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
        MANIFEST.len() + usize::from(stall),
    );
    let _ = conn.write_all(head.as_bytes());
    for b in MANIFEST {
        thread::sleep(Duration::from_millis(250));
        if conn.write_all(&[*b]).is_err() {
            return;
        }
    }
    thread::sleep(Duration::from_secs(120));
}

fn trickle_then_stall(conn: TcpStream) {
    trickle_body(conn, true)
}

fn trickle_to_the_end(conn: TcpStream) {
    trickle_body(conn, false)
}

/// 401 with a Bearer challenge whose realm is empty.
fn empty_realm(mut conn: TcpStream) {
    read_head(&conn);
    let _ = conn.write_all(
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"\",service=\"x\"\r\nContent-Length: 0\r\n\r\n",
    );
    thread::sleep(Duration::from_secs(5));
}

/// Runs `ig args` with short registry deadlines; returns its output and how long it took.
fn ig_with_deadlines(d: &Dist, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let start = Instant::now();
    let out = d
        .cmd(args)
        .env("IG_REGISTRY_CONNECT_TIMEOUT", "2")
        .env("IG_REGISTRY_READ_TIMEOUT", "2")
        .env("IG_REGISTRY_TIMEOUT", "20")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ig");
    (out, start.elapsed())
}

fn assert_failed_with(out: &Output, took: Duration, within: Duration, fragments: &[&str]) {
    let err = stderr_of(out);
    assert!(!out.status.success(), "succeeded: {}{err}", stdout_of(out));
    assert!(took < within, "took {took:?} (limit {within:?}): {err}");
    for f in fragments {
        assert!(err.contains(f), "{f:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn pull_from_a_registry_that_never_answers_ends_with_the_read_deadline() {
    let host = tcp_server(silent);
    let d = Dist::new();
    let reference = format!("{host}/x:y");
    let (out, took) = ig_with_deadlines(
        &d,
        &["image", "pull", &reference, "--insecure-registries", &host],
        &[],
    );
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[
            &format!("registry {host}"),
            "no answer for 2s",
            "IG_REGISTRY_READ_TIMEOUT",
        ],
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[test]
fn tls_to_a_silent_server_ends_with_the_connect_deadline() {
    let host = tcp_server(silent);
    let d = Dist::new();
    // The TLS handshake is part of connecting: a read deadline shorter than the connect one
    // does not cut it.
    let (out, took) = ig_with_deadlines(
        &d,
        &["image", "pull", &format!("{host}/x:y")],
        &[("IG_REGISTRY_READ_TIMEOUT", "1")],
    );
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[
            &format!("registry {host}"),
            "could not connect within 2s",
            "IG_REGISTRY_CONNECT_TIMEOUT",
        ],
    );
}

#[test]
fn a_status_line_then_a_byte_every_few_seconds_ends_with_the_read_deadline() {
    let host = tcp_server(drip_head);
    let d = Dist::new();
    let (out, took) = ig_with_deadlines(
        &d,
        &[
            "image",
            "pull",
            &format!("{host}/x:y"),
            "--insecure-registries",
            &host,
        ],
        &[],
    );
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[&format!("registry {host}"), "no answer for 2s"],
    );
}

#[test]
fn a_body_trickling_slower_than_the_read_deadline_allows_is_cut_there() {
    // A byte every 0.25 s for ~15 s: live, so the read deadline (2 s) never passes; the
    // overall one (3 s) does.
    let host = tcp_server(trickle_to_the_end);
    let d = Dist::new();
    let (out, took) = ig_with_deadlines(
        &d,
        &[
            "image",
            "pull",
            &format!("{host}/x:y"),
            "--insecure-registries",
            &host,
        ],
        &[("IG_REGISTRY_TIMEOUT", "3")],
    );
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[
            &format!("registry {host}"),
            "not finished after 3s",
            "IG_REGISTRY_TIMEOUT",
        ],
    );
}

#[test]
fn a_slow_but_live_registry_is_waited_for_and_a_stall_after_progress_is_caught() {
    // ~15 s of a byte every 0.25 s: longer than the read deadline in total, never idle as
    // long; the pull goes on until the body is complete (then refuses the media type).
    let host = tcp_server(trickle_to_the_end);
    let d = Dist::new();
    let args = [
        "image",
        "pull",
        &format!("{host}/x:y"),
        "--insecure-registries",
        &host,
    ];
    let (out, took) = ig_with_deadlines(&d, &args, &[]);
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(40),
        &["application/x-not-a-gadget"],
    );
    assert!(took > Duration::from_secs(10), "{took:?}");
    // The same, one byte short: silence after the last byte is caught 2 s later.
    let host = tcp_server(trickle_then_stall);
    let args = [
        "image",
        "pull",
        &format!("{host}/x:y"),
        "--insecure-registries",
        &host,
    ];
    let (out, took) = ig_with_deadlines(&d, &args, &[]);
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(40),
        &[&format!("registry {host}"), "no answer for 2s"],
    );
}

#[test]
fn login_push_and_run_pull_have_the_deadlines_too() {
    let host = tcp_server(silent);
    let d = Dist::new();
    let login = [
        "login",
        &host,
        "-u",
        "me",
        "-p",
        "secret",
        "--insecure-registries",
        &host,
    ];
    let (out, took) = ig_with_deadlines(&d, &login, &[]);
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[&format!("registry {host}"), "no answer for 2s"],
    );
    let reference = format!("{host}/x:y");
    d.ok(&["image", "tag", "trace_exec", &reference]);
    let push = ["image", "push", &reference, "--insecure-registries", &host];
    let (out, took) = ig_with_deadlines(&d, &push, &[]);
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[&format!("registry {host}"), "no answer for 2s"],
    );
    let other = format!("{host}/other:v1");
    let run = [
        "run",
        &other,
        "--pull",
        "always",
        "--insecure-registries",
        &host,
        "--host",
        "--timeout",
        "1",
    ];
    let (out, took) = ig_with_deadlines(&d, &run, &[]);
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[&format!("registry {host}"), "no answer for 2s"],
    );
}

#[test]
fn invalid_deadline_settings_are_refused_by_name() {
    let d = Dist::new();
    let (out, took) = ig_with_deadlines(
        &d,
        &["image", "pull", "127.0.0.1:9/x:y"],
        &[("IG_REGISTRY_READ_TIMEOUT", "soon")],
    );
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &["IG_REGISTRY_READ_TIMEOUT=\"soon\": not a number of seconds"],
    );
}

#[test]
fn an_empty_bearer_realm_is_an_invalid_challenge_of_the_registry() {
    let host = tcp_server(empty_realm);
    let d = Dist::new();
    let (out, took) = ig_with_deadlines(
        &d,
        &[
            "image",
            "pull",
            &format!("{host}/x:y"),
            "--insecure-registries",
            &host,
        ],
        &[],
    );
    assert_failed_with(
        &out,
        took,
        Duration::from_secs(10),
        &[
            &format!("registry {host}"),
            "the registry sent an invalid authentication challenge",
            "realm is not an absolute http(s) URL",
        ],
    );
    assert!(!stderr_of(&out).contains("relative URL without a base"));
}

/// Reads one request head; returns its request line (`GET /v2/ HTTP/1.1`), empty at the end
/// of the connection.
fn request_line(r: &mut BufReader<TcpStream>) -> String {
    let mut first = String::new();
    if r.read_line(&mut first).unwrap_or(0) == 0 {
        return String::new();
    }
    let mut line = String::new();
    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" || line == "\n" {
            break;
        }
        line.clear();
    }
    first
}

/// A registry without authentication (`/v2/` answers 200) whose manifest answers are `head`
/// followed by JSON-looking bytes sent as fast as the client takes them, without end (for at
/// most 60 s).
fn endless_manifest_answer(conn: TcpStream, head: &str) {
    let mut r = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    loop {
        let line = request_line(&mut r);
        if line.is_empty() {
            return;
        }
        if line.starts_with("GET /v2/ ") {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(b"{\"a\":\"").is_err() {
            return;
        }
        let chunk = vec![b'a'; 64 << 10];
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && conn.write_all(&chunk).is_ok() {}
        return;
    }
}

fn endless_manifest(conn: TcpStream) {
    endless_manifest_answer(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
    )
}

/// Declares 64 MiB, then sends them.
fn declared_64_mib_manifest(conn: TcpStream) {
    endless_manifest_answer(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 67108864\r\n\r\n",
    )
}

fn endless_error_answer(conn: TcpStream) {
    endless_manifest_answer(
        conn,
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
    )
}

/// `ig image pull` from `host` (plain HTTP), measured.
fn pull_measured(d: &Dist, host: &str) -> Measured {
    let mut cmd = d.cmd(&[
        "image",
        "pull",
        &format!("{host}/x:y"),
        "--insecure-registries",
        host,
    ]);
    cmd.env("IG_REGISTRY_CONNECT_TIMEOUT", "5")
        .env("IG_REGISTRY_READ_TIMEOUT", "5")
        .env("IG_REGISTRY_TIMEOUT", "60");
    measured_cmd(cmd, None)
}

#[test]
fn an_endless_manifest_is_refused_at_the_limit_with_bounded_memory() {
    let d = Dist::new();
    for (server, name) in [
        (endless_manifest as fn(TcpStream), "endless"),
        (declared_64_mib_manifest, "64 MiB declared"),
    ] {
        let host = tcp_server(server);
        let m = pull_measured(&d, &host);
        eprintln!(
            "{name} manifest: {:?}, peak RSS {} MiB",
            m.took,
            m.max_rss_kib / 1024
        );
        assert_eq!(m.code, Some(1), "{name}: {}", m.stderr);
        let expected = format!(
            "registry {host}: manifest {host}/x:y: the answer is larger than the manifest limit of 4194304 bytes; refusing it"
        );
        assert!(m.stderr.contains(&expected), "{name}: {}", m.stderr);
        assert!(!m.stderr.contains("panicked"), "{}", m.stderr);
        // The overall deadline is 60 s: the refusal comes from the limit, not from it.
        assert!(
            m.took < Duration::from_secs(15),
            "{name}: took {:?}",
            m.took
        );
        assert!(
            m.max_rss_kib < 200 * 1024,
            "{name}: peak RSS {} KiB",
            m.max_rss_kib
        );
        assert!(!d.ok(&["image", "list"]).contains(&host), "{name}: stored");
    }
}

#[test]
fn an_endless_error_answer_is_cut_and_the_status_reported() {
    let host = tcp_server(endless_error_answer);
    let d = Dist::new();
    let m = pull_measured(&d, &host);
    eprintln!(
        "endless 404 answer: {:?}, peak RSS {} MiB",
        m.took,
        m.max_rss_kib / 1024
    );
    assert_eq!(m.code, Some(1), "{}", m.stderr);
    assert!(
        m.stderr.contains(&format!(
            "registry {host}: manifest {host}/x:y not found (404)"
        )),
        "{}",
        m.stderr
    );
    // Only the first 64 KiB are read: the (unreadable) text is not printed.
    assert!(!m.stderr.contains("aaaaaaaa"), "{}", m.stderr);
    assert!(m.took < Duration::from_secs(15), "took {:?}", m.took);
    assert!(m.max_rss_kib < 200 * 1024, "peak RSS {} KiB", m.max_rss_kib);
}

// ---- Container runtime sockets -------------------------------------------------------------

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// How many containers the hostile Docker socket lists.
const LISTED: usize = 200_000;

/// A unix-socket server at `path` handing every connection to `handle` on its own thread.
fn unix_server(path: &Path, handle: fn(UnixStream)) {
    let listener = UnixListener::bind(path).expect("bind unix socket");
    thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || handle(conn));
        }
    });
}

/// The request line of one request (the rest of the head is read and dropped).
fn request_path(conn: &UnixStream) -> String {
    let mut r = BufReader::new(conn);
    let mut first = String::new();
    let _ = r.read_line(&mut first);
    let mut line = String::new();
    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
        line.clear();
    }
    first.split_whitespace().nth(1).unwrap_or("").to_string()
}

fn json_answer(conn: &mut UnixStream, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// `/version` as Docker 20.10 answers it; `/containers/json`: [`LISTED`] containers, generated
/// while sent (until EOF); `/events`: a head, then nothing.
fn docker_basics(conn: &mut UnixStream, path: &str) -> bool {
    if path == "/version" {
        json_answer(conn, r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#);
        return true;
    }
    if path.ends_with("/containers/json") {
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
        );
        let mut chunk = String::new();
        for i in 0..LISTED {
            if i > 0 {
                chunk.push(',');
            }
            chunk.push_str(&format!(r#"{{"Id":"{i:064x}","Names":["/c{i}"]}}"#));
            if chunk.len() > 60_000 {
                if conn.write_all(chunk.as_bytes()).is_err() {
                    return true;
                }
                chunk.clear();
            }
        }
        chunk.push(']');
        let _ = conn.write_all(chunk.as_bytes());
        return true;
    }
    if path.contains("/events") {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        thread::sleep(Duration::from_secs(60));
        return true;
    }
    false
}

/// Inspections are never answered.
fn docker_slow_inspect(mut conn: UnixStream) {
    let path = request_path(&conn);
    if !docker_basics(&mut conn, &path) {
        thread::sleep(Duration::from_secs(60));
    }
}

/// Inspections answer 200 MiB of labels.
fn docker_huge_inspect(mut conn: UnixStream) {
    let path = request_path(&conn);
    if docker_basics(&mut conn, &path) {
        return;
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n{\"Id\":\"x\",\"Config\":{\"Labels\":{\"a\":\"");
    let block = [b'a'; 65536];
    for _ in 0..3200 {
        if conn.write_all(&block).is_err() {
            return;
        }
    }
}

/// Answers anything with bytes that are not HTTP.
fn garbage(mut conn: UnixStream) {
    let _ = request_path(&conn);
    let _ = conn.write_all(b"\x00\x01SSH-2.0-OpenSSH_9.2\r\n\r\n");
}

/// An HTTP server that is not Docker: 404 for everything.
fn not_docker(mut conn: UnixStream) {
    let _ = request_path(&conn);
    let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
}

struct Measured {
    code: Option<i32>,
    stderr: String,
    took: Duration,
    max_rss_kib: i64,
}

/// Runs `ig args`; sends SIGINT after `interrupt` if given; kills it after 60 s (so a hang
/// fails the test instead of stalling it). Peak RSS from wait4's rusage.
fn measured(ig: &common::Ig, args: &[&str], interrupt: Option<Duration>) -> Measured {
    measured_cmd(ig.cmd(args), interrupt)
}

/// [`measured`] for a prepared command.
fn measured_cmd(mut cmd: std::process::Command, interrupt: Option<Duration>) -> Measured {
    let start = Instant::now();
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ig");
    let pid = child.id() as i32;
    let mut err_pipe = child.stderr.take().expect("stderr");
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    thread::spawn(move || {
        if let Some(after) = interrupt {
            if rx.recv_timeout(after).is_ok() {
                return;
            }
            // SAFETY: signalling our own child, not yet reaped (we hold the channel).
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; std's Child is never waited on after this.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = start.elapsed();
    let _ = tx.send(());
    assert_eq!(r, pid, "wait4");
    std::mem::forget(child);
    Measured {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stderr: reader.join().unwrap_or_default(),
        took,
        max_rss_kib: usage.ru_maxrss,
    }
}

fn run_with_socket(ig: &common::Ig, socket: &Path, extra: &[&str]) -> Measured {
    let socket = socket.to_str().expect("utf-8 path");
    let mut args = vec![
        "run",
        "trace_exec",
        "--host",
        "--runtimes",
        "docker",
        "--docker-socketpath",
        socket,
    ];
    args.extend_from_slice(extra);
    measured(ig, &args, None)
}

#[test]
fn a_socket_listing_200000_containers_is_capped_and_timeout_holds_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket: PathBuf = dir.path().join("docker.sock");
    unix_server(&socket, docker_slow_inspect);
    let ig = common::Ig::new();
    let m = run_with_socket(&ig, &socket, &["--timeout", "2"]);
    eprintln!(
        "--timeout 2 against {LISTED} listed containers: {:?}, peak RSS {} MiB",
        m.took,
        m.max_rss_kib / 1024
    );
    assert!(
        m.stderr.contains(&format!(
            "lists {LISTED} running containers; only the first 4096 are used"
        )),
        "{}",
        m.stderr
    );
    assert!(
        m.stderr
            .contains("--timeout (2s) passed while the container runtimes were still listing"),
        "{}",
        m.stderr
    );
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    assert!(m.took < Duration::from_secs(8), "took {:?}", m.took);
    assert!(m.max_rss_kib < 256 * 1024, "peak RSS {} KiB", m.max_rss_kib);
}

#[test]
fn ctrl_c_holds_while_the_runtimes_are_still_listing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket: PathBuf = dir.path().join("docker.sock");
    unix_server(&socket, docker_slow_inspect);
    let ig = common::Ig::new();
    let socket = socket.to_str().expect("utf-8 path");
    let args = [
        "run",
        "trace_exec",
        "--host",
        "--runtimes",
        "docker",
        "--docker-socketpath",
        socket,
    ];
    let m = measured(&ig, &args, Some(Duration::from_millis(1500)));
    assert!(
        m.took < Duration::from_secs(8),
        "took {:?}: {}",
        m.took,
        m.stderr
    );
    assert!(!m.stderr.contains("panicked"), "{}", m.stderr);
}

#[test]
fn huge_inspect_answers_are_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket: PathBuf = dir.path().join("docker.sock");
    unix_server(&socket, docker_huge_inspect);
    let ig = common::Ig::new();
    let m = run_with_socket(&ig, &socket, &["--timeout", "5"]);
    eprintln!(
        "200 MiB inspect answers: {:?}, peak RSS {} MiB",
        m.took,
        m.max_rss_kib / 1024
    );
    assert_ne!(m.code, Some(0), "{}", m.stderr);
    assert!(
        m.stderr.contains(&format!(
            "docker ({}): inspect container: the answer is larger than 1048576 bytes; refusing it",
            socket.display()
        )),
        "{}",
        m.stderr
    );
    assert!(m.took < Duration::from_secs(15), "took {:?}", m.took);
    assert!(m.max_rss_kib < 256 * 1024, "peak RSS {} KiB", m.max_rss_kib);
}

#[test]
fn sockets_that_are_not_docker_are_named_with_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ig = common::Ig::new();
    let file = dir.path().join("file.sock");
    std::fs::write(&file, b"").expect("write");
    let refused = dir.path().join("refused.sock");
    drop(UnixListener::bind(&refused).expect("bind"));
    let garbled = dir.path().join("garbage.sock");
    unix_server(&garbled, garbage);
    let http = dir.path().join("http.sock");
    unix_server(&http, not_docker);
    let cases: [(&Path, String); 4] = [
        (
            &file,
            format!(
                "docker: {} is not a socket (it is a regular file)",
                file.display()
            ),
        ),
        (
            &refused,
            format!(
                "docker: cannot connect to {}: connection refused: nothing listens on it",
                refused.display()
            ),
        ),
        (
            &garbled,
            format!(
                "docker: {} does not speak the Docker Engine API: version: its answer is not HTTP",
                garbled.display()
            ),
        ),
        (
            &http,
            format!(
                "docker: {} does not speak the Docker Engine API: GET /version answered HTTP 404",
                http.display()
            ),
        ),
    ];
    for (socket, expected) in cases {
        let m = run_with_socket(&ig, socket, &["--timeout", "1"]);
        assert_ne!(m.code, Some(0), "{}", m.stderr);
        assert!(
            m.stderr.contains(&expected),
            "{expected:?} not in {}",
            m.stderr
        );
        assert!(!m.stderr.contains("hyper"), "{}", m.stderr);
        assert!(m.took < Duration::from_secs(10), "took {:?}", m.took);
    }
}
