//! Container churn: 200 short-lived containers (Docker and the test containerd, half each,
//! 5–200 ms each, started from two threads in a seeded random order), 40 of them selected
//! by name. Three tracers watch the same churn at once:
//!
//! * (a) `ig run trace_exec -c <the 40>`: nothing of the 160 others, every selected
//!   container's entrypoint (`sh -c "/bin/echo ENTRY-<name>; usleep N"`) and its
//!   `/bin/echo ENTRY-<name>` present and named after it;
//! * (b) `ig run trace_exec` (all containers): the same for all 200;
//! * (c) `ig run traceloop -c <the 40>`: each selected container has its own history (its
//!   echo's `write(1, "ENTRY-<name>\n")` under its name) and no history holds another
//!   container's records or belongs to an unselected container.
//!
//! The churn runs once per test binary (the first test to ask runs it, the others read its
//! result). `IG_CHURN_SEED=N` replays a given plan; the seed is printed.

mod common;
mod containers_common;
mod identity_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{args_of, Ig, Running};
use containers_common::{setup, unique, CTR_IMAGE, IMAGE};
use identity_common::*;

const TOTAL: usize = 200;
const SELECTED: usize = 40;
const WORKERS: usize = 2;
/// No container is started after this long (the test stays bounded if the runtimes crawl).
const CHURN_DEADLINE: Duration = Duration::from_secs(150);
/// After the last container: time for held and late events.
const SETTLE: Duration = Duration::from_secs(2);
const CTR_NS: &str = "default";

/// A 64-bit LCG (Knuth's MMIX constants); the high bits are used.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[derive(Clone, Debug)]
struct Spec {
    index: usize,
    name: String,
    docker: bool,
    selected: bool,
    /// How long the container sleeps after its echo, in µs (5–200 ms, plus the index so that
    /// each container's `usleep` argument is its own).
    usleep: u64,
}

impl Spec {
    fn marker(&self) -> String {
        format!("ENTRY-{}", self.name)
    }

    fn script(&self) -> String {
        format!("/bin/echo {}; usleep {}", self.marker(), self.usleep)
    }

    fn runtime(&self) -> &'static str {
        if self.docker {
            "docker"
        } else {
            "containerd"
        }
    }

    fn entry_args(&self) -> Vec<String> {
        vec!["sh".into(), "-c".into(), self.script()]
    }

    fn echo_args(&self) -> Vec<String> {
        vec!["/bin/echo".into(), self.marker()]
    }
}

/// The seed's plan: which container runs where, which are selected, how long each lives.
fn plan(seed: u64, prefix: &str) -> Vec<Spec> {
    let mut rng = Lcg(seed);
    let mut docker: Vec<bool> = (0..TOTAL).map(|i| i < TOTAL / 2).collect();
    rng.shuffle(&mut docker);
    let mut order: Vec<usize> = (0..TOTAL).collect();
    rng.shuffle(&mut order);
    let selected: BTreeSet<usize> = order[..SELECTED].iter().copied().collect();
    (0..TOTAL)
        .map(|i| {
            let sel = selected.contains(&i);
            let life_ms = 5 + rng.below(196);
            Spec {
                index: i,
                name: format!("{prefix}-{}-{i}", if sel { "sel" } else { "oth" }),
                docker: docker[i],
                selected: sel,
                usleep: life_ms * 1000 + i as u64,
            }
        })
        .collect()
}

/// What one tracer printed.
struct Run {
    status: String,
    ok: bool,
    lines: Vec<String>,
    stderr: String,
}

impl Run {
    fn stats(&self) -> String {
        stats_line(&self.stderr)
            .unwrap_or("(no ig: stats line)")
            .to_string()
    }

    fn assert_ok(&self, what: &str) {
        assert!(
            self.ok,
            "{what}: ig exited with {}; stderr:\n{}",
            self.status, self.stderr
        );
    }

    fn events(&self) -> impl Iterator<Item = Value> + '_ {
        self.lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    }
}

fn finished(running: Running) -> Run {
    let (status, lines, stderr) = running.stop();
    Run {
        status: status.to_string(),
        ok: status.success(),
        lines,
        stderr,
    }
}

struct Churn {
    seed: u64,
    specs: Vec<Spec>,
    /// Docker container IDs by name (from `--cidfile`); containerd IDs are the names.
    ids: HashMap<String, String>,
    start_failures: Vec<String>,
    churn_time: Duration,
    selected_exec: Run,
    all_exec: Run,
    traceloop: Run,
}

impl Churn {
    fn by_name(&self) -> HashMap<&str, &Spec> {
        self.specs.iter().map(|s| (s.name.as_str(), s)).collect()
    }

    fn id_of<'a>(&'a self, s: &'a Spec) -> &'a str {
        if s.docker {
            self.ids.get(&s.name).map(String::as_str).unwrap_or("")
        } else {
            &s.name
        }
    }

    fn overview(&self) -> String {
        let docker = self.specs.iter().filter(|s| s.docker).count();
        format!(
            "churn: seed {} (IG_CHURN_SEED={} to replay), containers {} (docker {docker}, containerd {}), selected {}, started in {:.1} s, start failures {}{}",
            self.seed,
            self.seed,
            self.specs.len(),
            self.specs.len() - docker,
            self.specs.iter().filter(|s| s.selected).count(),
            self.churn_time.as_secs_f64(),
            self.start_failures.len(),
            if self.start_failures.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", self.start_failures.join("\n  "))
            }
        )
    }

    fn assert_all_started(&self) {
        assert!(
            self.start_failures.is_empty(),
            "the churn did not run as planned\n{}",
            self.overview()
        );
    }
}

fn seed() -> u64 {
    std::env::var("IG_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            t ^ ((std::process::id() as u64) << 32)
        })
}

/// Runs one container to completion; `Err` says why it did not run as planned.
fn run_container(
    spec: &Spec,
    sock: &str,
    cids: &std::path::Path,
) -> Result<Option<String>, String> {
    let script = spec.script();
    let cidfile = cids.join(format!("{}.cid", spec.name));
    let cid_arg = cidfile.to_string_lossy().into_owned();
    let mut cmd = Command::new("timeout");
    cmd.arg("60");
    if spec.docker {
        cmd.args([
            "docker",
            "run",
            "--rm",
            "--cidfile",
            &cid_arg,
            "--name",
            &spec.name,
            IMAGE,
            "sh",
            "-c",
            &script,
        ]);
    } else {
        cmd.args([
            "ctr", "-a", sock, "-n", CTR_NS, "run", "--rm", CTR_IMAGE, &spec.name, "sh", "-c",
            &script,
        ]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", spec.name))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains(&spec.marker()) {
        return Err(format!(
            "{} ({}): {} stdout {:?} stderr {:?}",
            spec.name,
            spec.runtime(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(spec.docker.then(|| read_cidfile(&cidfile)))
}

fn run_churn() -> Churn {
    let sock = setup();
    let seed = seed();
    let prefix = unique("churn");
    let specs = plan(seed, &prefix);
    println!(
        "churn: seed {seed}, prefix {prefix}: {} containers, {} selected",
        specs.len(),
        SELECTED
    );
    let _cleanup = PrefixCleanup {
        prefix: prefix.clone(),
        sock: sock.clone(),
        ns: CTR_NS.to_string(),
    };
    let selected: Vec<&str> = specs
        .iter()
        .filter(|s| s.selected)
        .map(|s| s.name.as_str())
        .collect();
    let selection = selected.join(",");
    let runtimes = [
        "--runtimes",
        "docker,containerd",
        "--containerd-socketpath",
        sock.as_str(),
    ];
    let ig = Ig::new();
    let with = |base: &[&str]| -> Vec<String> {
        base.iter()
            .chain(runtimes.iter())
            .chain(["-o", "json", "--timeout", "600"].iter())
            .map(|s| s.to_string())
            .collect()
    };
    let start = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        start_ig(&ig, &a)
    };
    let selected_exec = start(with(&["run", "trace_exec", "-c", &selection]));
    let all_exec = start(with(&["run", "trace_exec"]));
    let traceloop = start(with(&[
        "run",
        "traceloop",
        "-c",
        &selection,
        "--max-containers",
        "256",
        "--records",
        "1024",
    ]));

    let cids = tempfile::tempdir().expect("tempdir");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let ids = Mutex::new(HashMap::new());
    let began = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = specs.get(i) else { break };
                if began.elapsed() > CHURN_DEADLINE {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: not started (deadline)", spec.name));
                    continue;
                }
                match run_container(spec, &sock, cids.path()) {
                    Ok(Some(id)) => {
                        ids.lock().unwrap().insert(spec.name.clone(), id);
                    }
                    Ok(None) => {}
                    Err(e) => failures.lock().unwrap().push(e),
                }
            });
        }
    });
    let churn_time = began.elapsed();
    std::thread::sleep(SETTLE);
    let selected_exec = finished(selected_exec);
    let all_exec = finished(all_exec);
    let traceloop = finished(traceloop);
    Churn {
        seed,
        specs,
        ids: ids.into_inner().unwrap(),
        start_failures: failures.into_inner().unwrap(),
        churn_time,
        selected_exec,
        all_exec,
        traceloop,
    }
}

/// The churn, run once for the three tests.
fn churn() -> &'static Churn {
    static CHURN: OnceLock<Result<Churn, String>> = OnceLock::new();
    let r = CHURN.get_or_init(|| {
        std::panic::catch_unwind(run_churn).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        })
    });
    match r {
        Ok(c) => c,
        Err(e) => panic!("the churn could not be run: {e}"),
    }
}

/// The churn container whose `ENTRY-` marker `text` carries.
fn marker_owner<'a>(
    text: &str,
    by_name: &HashMap<&str, &'a Spec>,
) -> Option<Result<&'a Spec, String>> {
    let at = text.find("ENTRY-")?;
    let token: String = text[at + "ENTRY-".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    Some(by_name.get(token.as_str()).copied().ok_or(token))
}

#[derive(Default)]
struct ExecFigures {
    expected: usize,
    entry_seen: usize,
    echo_seen: usize,
    events_of_churn: usize,
    missing_entry: Vec<String>,
    missing_echo: Vec<String>,
    misnamed: Vec<String>,
    foreign: Vec<String>,
}

/// Checks a trace_exec run: `only_selected` for the `-c` run.
fn analyze_exec(churn: &Churn, run: &Run, only_selected: bool) -> ExecFigures {
    let by_name = churn.by_name();
    let by_usleep: HashMap<String, &Spec> = churn
        .specs
        .iter()
        .map(|s| (s.usleep.to_string(), s))
        .collect();
    let in_scope = |s: &Spec| !only_selected || s.selected;
    let mut f = ExecFigures {
        expected: churn.specs.iter().filter(|s| in_scope(s)).count(),
        ..Default::default()
    };
    let mut entry_seen = BTreeSet::new();
    let mut echo_seen = BTreeSet::new();
    for e in run.events() {
        let args = args_of(&e);
        let name = name_of(&e);
        let owner = args
            .iter()
            .find_map(|a| marker_owner(a, &by_name))
            .or_else(|| match args.as_slice() {
                [u, n] if u == "usleep" => by_usleep.get(n).map(|s| Ok(*s)),
                _ => None,
            });
        match owner {
            Some(Err(token)) => f.foreign.push(format!(
                "marker of no planned container ({token}): {}",
                brief(&e)
            )),
            Some(Ok(o)) => {
                f.events_of_churn += 1;
                if !in_scope(o) {
                    f.foreign.push(format!(
                        "exec of unselected {} ({}): {}",
                        o.name,
                        o.runtime(),
                        brief(&e)
                    ));
                } else if name != o.name
                    || runtime_of(&e) != o.runtime()
                    || id_of(&e) != churn.id_of(o)
                {
                    f.misnamed.push(format!(
                        "exec of {} ({}, id {}): {}",
                        o.name,
                        o.runtime(),
                        churn.id_of(o),
                        brief(&e)
                    ));
                } else if args == o.entry_args() {
                    entry_seen.insert(o.index);
                } else if args == o.echo_args() {
                    echo_seen.insert(o.index);
                }
            }
            None => match by_name.get(name) {
                Some(n) if in_scope(n) => f.misnamed.push(format!(
                    "named {} but not one of its execs: {}",
                    n.name,
                    brief(&e)
                )),
                Some(n) => {
                    f.foreign
                        .push(format!("named after unselected {}: {}", n.name, brief(&e)))
                }
                None if only_selected => f
                    .foreign
                    .push(format!("outside the selection: {}", brief(&e))),
                None => {}
            },
        }
    }
    for s in churn.specs.iter().filter(|s| in_scope(s)) {
        let life = format!("{} ({}, {} ms)", s.name, s.runtime(), s.usleep / 1000);
        if !entry_seen.contains(&s.index) {
            f.missing_entry.push(life.clone());
        }
        if !echo_seen.contains(&s.index) {
            f.missing_echo.push(life);
        }
    }
    f.entry_seen = entry_seen.len();
    f.echo_seen = echo_seen.len();
    f
}

fn list(v: &[String], max: usize) -> String {
    if v.is_empty() {
        return "(none)".into();
    }
    let mut out: Vec<String> = v.iter().take(max).cloned().collect();
    if v.len() > max {
        out.push(format!("… and {} more", v.len() - max));
    }
    out.join("\n  ")
}

fn check_exec(churn: &Churn, run: &Run, only_selected: bool, what: &str) {
    println!("{}", churn.overview());
    run.assert_ok(what);
    let f = analyze_exec(churn, run, only_selected);
    let summary = format!(
        "churn {what}: containers {}, in scope {}, entrypoints expected {} seen {}, echo expected {} seen {}, churn events seen {}, misnamed {}, foreign {}; {}",
        churn.specs.len(),
        f.expected,
        f.expected,
        f.entry_seen,
        f.expected,
        f.echo_seen,
        f.events_of_churn,
        f.misnamed.len(),
        f.foreign.len(),
        run.stats()
    );
    println!("{summary}");
    let ok = f.misnamed.is_empty()
        && f.foreign.is_empty()
        && f.missing_entry.is_empty()
        && f.missing_echo.is_empty();
    assert!(
        ok,
        "{summary}\nmisnamed:\n  {}\nforeign:\n  {}\nmissing entrypoints (sh -c):\n  {}\nmissing echo:\n  {}\nig stderr:\n{}",
        list(&f.misnamed, 40),
        list(&f.foreign, 40),
        list(&f.missing_entry, 60),
        list(&f.missing_echo, 60),
        run.stderr
    );
    churn.assert_all_started();
}

#[test]
fn churn_selected_containers_only_and_all_of_them() {
    let churn = churn();
    check_exec(
        churn,
        &churn.selected_exec,
        true,
        "trace_exec -c <40 selected>",
    );
}

#[test]
fn churn_every_container_named_right() {
    let churn = churn();
    check_exec(churn, &churn.all_exec, false, "trace_exec (all containers)");
}

#[test]
fn churn_traceloop_histories_are_their_own() {
    let churn = churn();
    println!("{}", churn.overview());
    let run = &churn.traceloop;
    run.assert_ok("traceloop -c <40 selected>");
    let by_name = churn.by_name();
    // Records per history name.
    let mut histories: BTreeMap<String, usize> = BTreeMap::new();
    // What each history holds: records by comm, and the mount namespaces seen.
    let mut comms: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    let mut mntns: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut not_selected: BTreeMap<String, usize> = BTreeMap::new();
    let mut misplaced = Vec::new();
    let mut own_write = BTreeSet::new();
    for r in run.events() {
        let name = name_of(&r).to_string();
        *histories.entry(name.clone()).or_default() += 1;
        *comms
            .entry(name.clone())
            .or_default()
            .entry(str_field(&r, "comm").to_string())
            .or_default() += 1;
        mntns
            .entry(name.clone())
            .or_default()
            .insert(r["mntns_id"].to_string());
        match by_name.get(name.as_str()) {
            Some(s) if s.selected => {}
            _ => *not_selected.entry(name.clone()).or_default() += 1,
        }
        let values: Vec<&str> = r["params"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["value"].as_str()).collect())
            .unwrap_or_default();
        for v in values {
            match marker_owner(v, &by_name) {
                None => {}
                Some(Err(token)) => misplaced.push(format!(
                    "marker of no planned container ({token}) in the history of {name:?}: {} {} {v:?}",
                    str_field(&r, "comm"),
                    str_field(&r, "syscall")
                )),
                Some(Ok(o)) if o.name != name || runtime_of(&r) != o.runtime() => {
                    misplaced.push(format!(
                        "{}'s record ({}) in the history of {name:?} ({}): {} {} {v:?}",
                        o.name,
                        o.runtime(),
                        runtime_of(&r),
                        str_field(&r, "comm"),
                        str_field(&r, "syscall")
                    ))
                }
                Some(Ok(o)) if r["syscall"] == "write" && v == format!("{}\n", o.marker()) => {
                    own_write.insert(o.index);
                }
                Some(Ok(_)) => {}
            }
        }
    }
    let missing: Vec<String> = churn
        .specs
        .iter()
        .filter(|s| s.selected && !own_write.contains(&s.index))
        .map(|s| {
            format!(
                "{} ({}, {} ms): {} records under its name, by comm {:?}, mount namespaces {:?}",
                s.name,
                s.runtime(),
                s.usleep / 1000,
                histories.get(&s.name).copied().unwrap_or(0),
                comms.get(&s.name).cloned().unwrap_or_default(),
                mntns.get(&s.name).cloned().unwrap_or_default()
            )
        })
        .collect();
    let summary = format!(
        "churn traceloop -c <40 selected>: histories {} ({} of unselected or unknown names, {} records), own marker writes expected {} seen {}, records of another container {}",
        histories.len(),
        not_selected.len(),
        not_selected.values().sum::<usize>(),
        SELECTED,
        own_write.len(),
        misplaced.len()
    );
    println!("{summary}");
    assert!(
        misplaced.is_empty() && not_selected.is_empty() && missing.is_empty(),
        "{summary}\nrecords in another container's history:\n  {}\nhistories not of the selection (name: records):\n  {}\nselected containers without their own marker write:\n  {}\nig stderr:\n{}",
        list(&misplaced, 40),
        list(
            &not_selected
                .iter()
                .map(|(n, c)| format!("{n:?}: {c}"))
                .collect::<Vec<_>>(),
            40
        ),
        list(&missing, 60),
        run.stderr
    );
    churn.assert_all_started();
}
