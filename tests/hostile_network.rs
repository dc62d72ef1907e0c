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
