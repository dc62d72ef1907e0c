//! The registry client on oci-client (issue 18, item 1): what the crate does not do for us and
//! src/oci/registry.rs adds — blobs the registry has are not uploaded again, a registry's refusal
//! is named with its own words, and a token that cannot be sent back is an error, not a panic.
//! A real registry (tests/setup/registry.sh) and real sockets served by threads of this test.

mod common;
#[path = "common/dist.rs"]
mod dist;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use dist::{Dist, Registry};

#[test]
fn a_second_push_uploads_nothing_and_pulls_back_the_same_digest() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = reg.reference("again/trace_open:v1");
    let digest = d.build(&r);
    let insecure = ["--insecure-registries", reg.host.as_str()];
    let first = d.ok(&[&["image", "push", &r][..], &insecure].concat());
    assert!(first.contains(&digest), "{first}");
    assert!(!first.contains(": 0 B uploaded"), "{first}");
    let second = d.ok(&[&["image", "push", &r][..], &insecure].concat());
    assert!(second.contains(": 0 B uploaded"), "{second}");
    // A fresh store pulls the very bytes: the same index digest.
    let fresh = Dist::new();
    let out = fresh.ok(&[&["image", "pull", &r][..], &insecure].concat());
    assert!(out.contains(&digest), "{out}");
}

/// A TCP server on 127.0.0.1 answering every request with `answer(path, host)`.
fn http_server(answer: fn(&str, &str) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let host = addr.clone();
    thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let host = host.clone();
            thread::spawn(move || serve(conn, &host, answer));
        }
    });
    addr
}

fn serve(mut conn: TcpStream, host: &str, answer: fn(&str, &str) -> String) {
    let Ok(clone) = conn.try_clone() else { return };
    let mut r = BufReader::new(clone);
    loop {
        let mut first = String::new();
        if r.read_line(&mut first).map(|n| n == 0).unwrap_or(true) {
            return;
        }
        let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if line == "\r\n" || line == "\n" {
                break;
            }
            line.clear();
        }
        if conn.write_all(answer(&path, host).as_bytes()).is_err() {
            return;
        }
    }
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `/v2/` asks for a Bearer token whose realm answers with a token holding a newline.
fn bad_token(path: &str, host: &str) -> String {
    if path.starts_with("/token") {
        return response("200 OK", "", r#"{"token":"abc\ndef"}"#);
    }
    response(
        "401 Unauthorized",
        &format!("WWW-Authenticate: Bearer realm=\"http://{host}/token\",service=\"t\"\r\n"),
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}"#,
    )
}

/// Open, but every manifest is denied with the registry's own error list.
fn denied(path: &str, _host: &str) -> String {
    if path == "/v2/" {
        return response("200 OK", "", "{}");
    }
    response(
        "403 Forbidden",
        "",
        r#"{"errors":[{"code":"DENIED","message":"no pulls from this repository"}]}"#,
    )
}

#[test]
fn a_token_that_cannot_be_a_header_is_a_protocol_error_not_a_panic() {
    let host = http_server(bad_token);
    let d = Dist::new();
    let out = d.output(&[
        "image",
        "pull",
        &format!("{host}/x:y"),
        "--insecure-registries",
        &host,
    ]);
    let err = common::stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(&format!("registry {host}")), "{err}");
    assert!(err.contains("not a valid HTTP header value"), "{err}");
}

#[test]
fn a_refusal_is_named_with_the_registrys_words() {
    let host = http_server(denied);
    let d = Dist::new();
    let err = d.fail(&[
        "image",
        "pull",
        &format!("{host}/team/x:v1"),
        "--insecure-registries",
        &host,
    ]);
    assert!(
        err.contains(&format!("registry {host}: access to manifest {host}/team/x:v1 denied (403): DENIED no pulls from this repository")),
        "{err}"
    );
}

static POSTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Open, has no blob, answers the first upload start with 201 (against the spec: oci-client
/// then tries a monolithic upload) and the second with a relative `Location` that crate
/// `unwrap`s as an absolute URL.
fn odd_uploads(path: &str, _host: &str) -> String {
    if path == "/v2/" {
        return response("200 OK", "", "{}");
    }
    if path.ends_with("/blobs/uploads/") {
        let n = POSTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let status = if n == 0 {
            "201 Created"
        } else {
            "202 Accepted"
        };
        return response(status, "Location: uploads/relative\r\n", "");
    }
    response(
        "404 Not Found",
        "",
        r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#,
    )
}

#[test]
fn a_panic_of_the_client_on_a_registrys_answer_is_an_error_naming_it() {
    let host = http_server(odd_uploads);
    let d = Dist::new();
    let reference = format!("{host}/odd:v1");
    d.ok(&["image", "tag", "trace_exec", &reference]);
    let out = d.output(&["image", "push", &reference, "--insecure-registries", &host]);
    let err = common::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("registry {host}: upload of blob sha256:")),
        "{err}"
    );
    assert!(
        err.contains("the registry client failed on the registry's answer"),
        "{err}"
    );
}
