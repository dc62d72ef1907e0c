//! A Python venv with pinned requirements (tests/setup/*.txt), made once per machine and per
//! requirements file under /var/cache/ig-test: built in a temporary directory and renamed into
//! place when complete, so a concurrent or interrupted run never uses half a venv.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const VENV_CACHE: &str = "/var/cache/ig-test";

fn text_of(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {c:?}: {e}"))
}

/// The python of the venv `name` with `requirements` (the text of `source`, named in errors)
/// installed.
pub fn python(name: &str, requirements: &str, source: &str) -> PathBuf {
    // FNV-1a: only names the cache directory, so changed requirements get a new venv.
    let hash = requirements.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let cache = Path::new(VENV_CACHE);
    let venv = cache.join(format!("{name}-{hash:016x}"));
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    std::fs::create_dir_all(cache).expect("create /var/cache/ig-test");
    let tmp = tempfile::Builder::new()
        .prefix(".venv-")
        .tempdir_in(cache)
        .expect("temporary venv directory");
    let o = run(Command::new("python3").args(["-m", "venv"]).arg(tmp.path()));
    assert!(
        o.status.success(),
        "python3 -m venv failed (tests/setup/deps.sh test installs python3-venv): {}",
        text_of(&o)
    );
    let req = tmp.path().join("requirements.txt");
    std::fs::write(&req, requirements).expect("write requirements");
    let o = run(Command::new(tmp.path().join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-r",
        ])
        .arg(&req));
    assert!(
        o.status.success(),
        "pip install -r {source}: {}",
        text_of(&o)
    );
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another run finished first: use its venv.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        python.exists(),
        "{} missing after install",
        python.display()
    );
    python
}
