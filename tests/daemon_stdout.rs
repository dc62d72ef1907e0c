//! `ig run --remote -o json` on the daemon's machine: the client passes a pipe's write end over
//! the socket, the daemon writes the lines into it and the client moves them to its stdout. A
//! reader that stops reading never holds the run up and is told what it missed; connections
//! that pass nothing, pass wrongly or say nothing do not disturb the daemon.

mod common;
mod daemon_common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use daemon_common::*;

const WAIT: Duration = Duration::from_secs(60);

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn events_in(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_exec_of(text: &str, m: &str) -> bool {
    events_in(text)
        .iter()
        .any(|e| args_of(e).iter().any(|a| a == m))
}

/// A remote run into a regular file of the execs whose args match `token` (other tests run
/// at the same time), started with `env` and a file size limit; waits until it is attached.
fn run_into_file(
    d: &Daemon,
    path: &std::path::Path,
    token: &str,
    env: &[(&str, &str)],
    limit_file_size: Option<u64>,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let out = File::create(path).expect("output file");
    let filter = format!("args~{token}");
    let mut cmd = d.cmd(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "120",
        "--filter",
        &filter,
    ]);
    cmd.envs(env.iter().copied())
        .stdout(out)
        .stderr(Stdio::null());
    if let Some(bytes) = limit_file_size {
        // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    let child = cmd.spawn().expect("spawn ig");
    let warm = format!("{token}-warm");
    let attached = wait_until(WAIT, || {
        exec("/bin/true", &[&warm]);
        has_exec_of(&std::fs::read_to_string(path).unwrap_or_default(), &warm)
    });
    assert!(attached, "the remote run never wrote an event to {path:?}");
    child
}

fn exited_within(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Pipes (`pipe:[INODE]`) process `pid` holds.
fn pipes_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .filter(|l| l.starts_with("pipe:"))
                .collect()
        })
        .unwrap_or_default()
}

/// The lines come through a pipe of the client's whose write end the daemon holds (not over
/// the socket, and never through the client's stdout itself); with `IG_REMOTE_PIPE=0` there
/// is no such pipe. Either way the file gets the same whole lines.
#[test]
fn the_lines_come_through_a_pipe_of_the_clients_unless_told_not_to() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, env, shared) in [
        ("piped.json", &[][..], true),
        ("relayed.json", &[("IG_REMOTE_PIPE", "0")][..], false),
    ] {
        let path = dir.path().join(name);
        let token = marker("same");
        let mut client = run_into_file(&d, &path, &token, env, None);
        let (mine, daemons) = (pipes_of(client.id()), pipes_of(d.pid()));
        // Not the pipes both inherited from this test (cargo's jobserver).
        let inherited = pipes_of(std::process::id());
        let both: Vec<_> = mine
            .iter()
            .filter(|p| daemons.contains(p) && !inherited.contains(p))
            .collect();
        assert_eq!(
            !both.is_empty(),
            shared,
            "{name}: client {mine:?}, daemon {daemons:?}"
        );
        let m = format!("{token}-m");
        exec("/bin/true", &["x", &m]);
        assert!(wait_until(WAIT, || has_exec_of(
            &std::fs::read_to_string(&path).unwrap_or_default(),
            &m
        )));
        signal(&client, libc::SIGINT);
        assert!(client.wait().expect("wait ig").success());
        let text = std::fs::read_to_string(&path).expect("output");
        assert!(text.ends_with('\n'), "{name}: a cut last line");
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{name}: a broken line {line:?}: {e}"));
        }
        let e = events_in(&text)
            .into_iter()
            .find(|e| args_of(e).contains(&m))
            .expect("the marker's event");
        assert_eq!(
            args_of(&e),
            vec!["/bin/true".to_string(), "x".into(), m.clone()]
        );
    }
    // The daemon holds no pipe of a client that is gone.
    let own = || {
        let inherited = pipes_of(std::process::id());
        let mut p = pipes_of(d.pid());
        p.retain(|p| !inherited.contains(p));
        p
    };
    assert!(
        wait_until(WAIT, || own().is_empty()),
        "the daemon still holds {:?}",
        own()
    );
}

/// What is written to the client's stdout is written by the client: nothing after it is
/// killed (its file, truncated then, stays as the shell left it), and its own file size limit
/// holds (SIGXFSZ, as for a local run).
#[test]
fn the_clients_file_is_the_clients_to_write() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let token = marker("killed");
    let path = dir.path().join("killed.json");
    let mut client = run_into_file(&d, &path, &token, &[], None);
    let storm = Storm::exactly(2, &token, 3000);
    thread::sleep(Duration::from_millis(300));
    signal(&client, libc::SIGKILL);
    let _ = client.wait();
    std::fs::write(&path, "after\n").expect("truncate");
    storm.wait();
    thread::sleep(Duration::from_secs(1));
    assert_eq!(
        std::fs::read_to_string(&path).expect("output"),
        "after\n",
        "something wrote the dead client's file"
    );

    let path = dir.path().join("limited.json");
    let token = marker("fsize");
    let mut client = run_into_file(&d, &path, &token, &[], Some(16 * 1024));
    Storm::exactly(2, &token, 300).wait();
    let status = exited_within(&mut client, WAIT);
    let _ = client.kill();
    let _ = client.wait();
    let status = status.expect("the client did not stop at its file size limit");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGXFSZ), "{status}");
    let size = std::fs::metadata(&path).expect("output").len();
    assert!(size <= 16 * 1024, "{size} bytes past a 16 KiB limit");
}

/// A remote `-o json` run of this test's execs (args matching `token`) into a pipe the test
/// reads only while `reading` is set (parked otherwise, so the pipe fills), with its stderr.
struct PipedRun {
    client: std::process::Child,
    reading: Arc<AtomicBool>,
    text: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PipedRun {
    /// Started and attached (an exec of `TOKEN-warm` was read).
    fn start(d: &Daemon, token: &str) -> PipedRun {
        let mut fds = [0; 2];
        // SAFETY: a two-int array for pipe2.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and ours.
        let (mut r, w) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Only this test's execs (other tests run at the same time): the misses are its own.
        let filter = format!("args~{token}");
        let mut client = d
            .cmd(&[
                "run",
                "trace_exec",
                "--host",
                "-o",
                "json",
                "--timeout",
                "300",
                "--filter",
                &filter,
            ])
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ig");
        let err = client.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let reading = Arc::new(AtomicBool::new(true));
        let text = Arc::new(Mutex::new(Vec::new()));
        let (on, into) = (reading.clone(), text.clone());
        let reader = thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            loop {
                while !on.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => into.lock().expect("lock").extend_from_slice(&buf[..n]),
                }
            }
        });
        let run = PipedRun {
            client,
            reading,
            text,
            stderr,
            reader: Some(reader),
        };
        let warm = format!("{token}-warm");
        assert!(
            wait_until(WAIT, || {
                exec("/bin/true", &[&warm]);
                has_exec_of(&run.read_text(), &warm)
            }),
            "the run never attached; stderr: {}",
            run.stderr_text()
        );
        run
    }

    fn read_text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("lock")).into_owned()
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Stops reading; the reader parks after at most one more read.
    fn pause(&self) {
        self.reading.store(false, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(300));
    }

    fn resume(&self) {
        self.reading.store(true, Ordering::Relaxed);
    }

    /// Reads until the pipe's end: every writer (the client, the daemon) closed it.
    fn read_to_end_within(&mut self, timeout: Duration) -> bool {
        self.resume();
        let reader = self.reader.take().expect("reader");
        wait_until(timeout, || reader.is_finished())
    }

    fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        exited_within(&mut self.client, timeout)
    }
}

impl Drop for PipedRun {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.client.wait();
        self.resume();
    }
}

/// A pipe whose reader stopped reading: the run goes on reading the kernel's ring (nothing
/// lost, nothing waited for), keeps up to its client's bound, counts the rest as missed, and
/// tells the reader once it reads again. Every exec of the storm is either a whole line or
/// counted missed.
#[test]
fn a_stdout_nobody_reads_never_holds_up_the_run_and_is_told_what_it_missed() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let token = marker("storm");
    let mut run = PipedRun::start(&d, &token);
    run.pause();
    // More than the run keeps for one client (16,384 events) and a pipe holds.
    const EXECS: u64 = 24_000;
    let started = Instant::now();
    let execs = Storm::exactly(2, &token, EXECS).wait();
    assert_eq!(execs, EXECS);
    eprintln!("storm: {EXECS} execs in {:?}", started.elapsed());
    // The run reads the rest of its ring while nobody reads the pipe.
    thread::sleep(Duration::from_secs(2));
    let before_resume = run.read_text().matches(&token).count();

    run.resume();
    // Told once the queue has drained; then one exec comes through live.
    assert!(
        wait_until(WAIT, || !missed_warnings(&run.stderr_text()).is_empty()),
        "the reader read again but was never told what it missed"
    );
    let after = format!("{token}-after");
    exec("/bin/true", &[&after]);
    let seen_after = wait_until(WAIT, || has_exec_of(&run.read_text(), &after));
    assert!(
        seen_after,
        "live events did not come back after the reader resumed"
    );
    signal(&run.client, libc::SIGINT);
    let status = run
        .exited_within(WAIT)
        .expect("the client exits after Ctrl-C");
    assert!(
        run.read_to_end_within(WAIT),
        "the pipe never ended: a descriptor of it is still open"
    );
    thread::sleep(Duration::from_millis(200));
    let err = run.stderr_text();
    assert!(status.success(), "{status}: {err}");

    let all = run.read_text();
    for line in all.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a broken line {line:?}: {e}"));
    }
    let got = events_in(&all)
        .iter()
        .filter(|e| args_of(e).iter().any(|a| a == &token))
        .count() as u64;
    let told = missed_warnings(&err);
    let missed: u64 = told.iter().sum();
    eprintln!("storm lines {got}, missed {missed} (told {told:?}), {before_resume} read before");
    assert!(
        !err.contains("lost"),
        "the run fell behind the kernel's ring: {err}"
    );
    assert!(
        missed > 0,
        "nothing missed: the run waited for the reader? {err}"
    );
    assert_eq!(
        got + missed,
        EXECS,
        "every exec is a line or counted missed; stderr: {err}"
    );
}

/// Execs of `/bin/true TOKEN` for more lines (~1 KB each) than the client's lines pipe
/// (1 MiB) and its stdout pipe hold: the daemon has lines queued.
const FILL_EXECS: u64 = 2500;

fn fill_pipe(token: &str) {
    assert_eq!(Storm::exactly(2, token, FILL_EXECS).wait(), FILL_EXECS);
}

/// A run whose reader is stuck: Ctrl-C waits for the reader as a local run waits for its
/// stdout, a second Ctrl-C leaves at once and the daemon lets go of the lines pipe; a daemon
/// told to stop does not wait for the reader, and tells the client what it dropped: once the
/// reader reads again, it has whole lines, and lines + missed is every exec.
#[test]
fn a_stuck_reader_holds_up_neither_a_second_ctrl_c_nor_the_daemons_stop() {
    let mut d = Daemon::start(&["--runtimes", "none"]);
    let token = marker("stuck");
    let mut run = PipedRun::start(&d, &token);
    run.pause();
    fill_pipe(&token);
    signal(&run.client, libc::SIGINT);
    assert!(
        run.exited_within(Duration::from_secs(2)).is_none(),
        "the client left with lines its reader had not taken; stderr: {}",
        run.stderr_text()
    );
    signal(&run.client, libc::SIGINT);
    assert!(
        run.exited_within(Duration::from_secs(10)).is_some(),
        "a second Ctrl-C did not end the client"
    );
    assert!(
        run.read_to_end_within(WAIT),
        "the daemon kept the client's pipe open after it left"
    );
    let o = d.ig(&["list"]);
    assert!(
        o.status.success(),
        "the daemon no longer answers: {}",
        stderr_of(&o)
    );

    let token = marker("stuck-stop");
    let mut run = PipedRun::start(&d, &token);
    run.pause();
    fill_pipe(&token);
    let mut daemon = d.child.take().expect("daemon running");
    signal(&daemon, libc::SIGTERM);
    let started = Instant::now();
    let mut stopped = None;
    while stopped.is_none() && started.elapsed() < Duration::from_secs(15) {
        stopped = daemon.try_wait().expect("wait daemon");
        thread::sleep(Duration::from_millis(50));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let status = stopped
        .unwrap_or_else(|| panic!("the daemon did not stop within 15 s of SIGTERM (reader stuck)"));
    assert!(status.success(), "daemon: {status}");
    // The client still moves its lines to the stuck reader, as a local run would wait.
    run.resume();
    let client = run
        .exited_within(WAIT)
        .expect("the client ends once its reader reads");
    let err = run.stderr_text();
    assert!(client.success(), "{client}: {err}");
    assert!(run.read_to_end_within(WAIT), "the pipe never ended");
    let all = run.read_text();
    assert!(
        all.ends_with('\n'),
        "a cut last line at byte {}: {:?}",
        all.len(),
        &all[all.len().saturating_sub(100)..]
    );
    let got = events_in(&all)
        .iter()
        .filter(|e| args_of(e).iter().any(|a| a == &token))
        .count() as u64;
    let missed: u64 = missed_warnings(&err).iter().sum();
    assert!(missed > 0, "nothing was left in the daemon's queue: {err}");
    assert_eq!(
        got + missed,
        FILL_EXECS,
        "lines {got} + missed {missed}: {err}"
    );
}

/// Connections that say nothing, pass a preamble without a descriptor, pass too many
/// descriptors or send garbage do not hold up or stop the daemon.
#[test]
fn odd_connections_do_not_disturb_the_daemon() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let list_answers = || {
        let started = Instant::now();
        let o = d.ig(&["list"]);
        assert!(o.status.success(), "ig list: {}", stderr_of(&o));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ig list took {:?}",
            started.elapsed()
        );
    };
    let connect = || std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");

    // Silent: held open while others are served.
    let silent = connect();
    list_answers();

    // A preamble without a descriptor, then HTTP/2 that never completes.
    let mut bare = connect();
    bare.write_all(&[ig::daemon::passfd::PREAMBLE])
        .expect("write");
    bare.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .expect("write");
    list_answers();

    // Garbage, then closed.
    let mut junk = connect();
    junk.write_all(&[0xff; 4096]).expect("write");
    drop(junk);
    list_answers();

    // Eight descriptors in one preamble (at most four are taken, all closed).
    let many = connect();
    let files: Vec<File> = (0..8)
        .map(|_| File::open("/dev/null").expect("null"))
        .collect();
    pass_fds(&many, &files);
    list_answers();

    // Connections passing their own socket, then closed: the daemon keeps no descriptor of
    // them (a kept socket would hold its own connection open).
    let fds_of_daemon = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .map(|e| e.count())
            .unwrap_or(0)
    };
    let before = fds_of_daemon();
    for _ in 0..10 {
        let own = connect();
        let me = own.try_clone().expect("clone");
        pass_fds(&own, &[File::from(OwnedFd::from(me))]);
        drop(own);
    }
    assert!(
        wait_until(WAIT, || fds_of_daemon() <= before),
        "the daemon holds {} descriptors, {before} before",
        fds_of_daemon()
    );
    list_answers();

    // A run of a client whose stdout is a socket (not passed: written by the client) works.
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
    let mut client = d
        .cmd(&[
            "run",
            "trace_exec",
            "--host",
            "-o",
            "json",
            "--timeout",
            "60",
        ])
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ig");
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let mut mine_r = mine.try_clone().expect("clone");
    thread::spawn(move || {
        let mut buf = [0; 8192];
        while let Ok(n) = mine_r.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    let m = marker("socket");
    assert!(wait_until(WAIT, || {
        exec("/bin/true", &[&m]);
        has_exec_of(&String::from_utf8_lossy(&got.lock().expect("lock")), &m)
    }));
    signal(&client, libc::SIGINT);
    assert!(client.wait().expect("wait").success());
    drop(silent);
    drop(bare);
    drop(many);
    assert!(d.child.is_some());
    list_answers();
}

/// Sends `files` as SCM_RIGHTS with one preamble byte, as a client that passes too much.
fn pass_fds(sock: &std::os::unix::net::UnixStream, files: &[File]) {
    use std::os::fd::AsFd;
    let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
    ig::daemon::passfd::send_preamble(sock, &fds).expect("send the preamble");
}
