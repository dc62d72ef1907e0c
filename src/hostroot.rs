//! Running in a container that sees the host's file system under `HOST_ROOT` (`docker run -v
//! /:/host -e HOST_ROOT=/host`, the `ig` image sets it): where the host's files are.
//!
//! With `HOST_ROOT` set (and not `/`):
//! * the container runtimes' default sockets are looked up under it ([`host_path`]);
//! * users and groups are named from the host's `/etc/passwd` and `/etc/group`;
//! * processes are read from the host's procfs, `$HOST_ROOT/proc` ([`proc_root`]), when it
//!   shows the host's pid 1: it does whether or not the container shares the host's pid
//!   namespace (`--pid=host`), and event pids are host pids;
//! * the host's mount namespace (what `--host` means) is pid 1's there, never `ig`'s own:
//!   `ig`'s container is a container like any other.
//!
//! Without it, every path is the path as given.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming where the host's root is mounted.
pub const ENV: &str = "HOST_ROOT";

/// Symbolic links followed while resolving one path, as the kernel's limit (`ELOOP`).
const MAX_LINKS: usize = 40;

/// The host's root as `HOST_ROOT` names it; `None` when unset, empty or `/`.
pub fn root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| root_from(std::env::var_os(ENV)))
        .as_deref()
}

fn root_from(value: Option<OsString>) -> Option<PathBuf> {
    let path = PathBuf::from(value?);
    (!path.as_os_str().is_empty() && path.components().ne([Component::RootDir])).then_some(path)
}

/// Where the host's `path` is seen from here: `path` itself without `HOST_ROOT`, else `path`
/// resolved inside the host's root (see [`resolve_in`]).
pub fn host_path(path: impl AsRef<Path>) -> PathBuf {
    match root() {
        Some(root) => resolve_in(root, path.as_ref()),
        None => path.as_ref().to_path_buf(),
    }
}

/// `path` resolved inside `root` as if `root` were `/`: a symbolic link's absolute target
/// starts again at `root` (the host's `/var/run -> /run` must lead to `$HOST_ROOT/run`, not to
/// our own `/run`) and `..` never climbs above it. A missing component ends the resolution;
/// the rest is joined as is (the caller reports the missing path).
///
/// Our own code: `openat2(RESOLVE_IN_ROOT)` resolves the same way but yields a descriptor,
/// and a Unix socket is connected by path; the crates that resolve in a root (libpathrs'
/// bindings) bring a C library for these few lines.
pub fn resolve_in(root: &Path, path: &Path) -> PathBuf {
    let mut pending: Vec<OsString> = components(path);
    pending.reverse();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = root.join(resolved.iter().chain([&name]).collect::<PathBuf>());
        match std::fs::read_link(&candidate) {
            Ok(target) if links < MAX_LINKS => {
                links += 1;
                if target.is_absolute() {
                    resolved.clear();
                }
                pending.extend(components(&target).into_iter().rev());
            }
            _ => resolved.push(name),
        }
    }
    root.join(resolved.into_iter().collect::<PathBuf>())
}

/// The names of `path` (`.` dropped, `..` kept), without its root.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The procfs showing the host's processes: `$HOST_ROOT/proc` when `HOST_ROOT` is set and
/// it holds pid 1, else `/proc`.
pub fn proc_root() -> &'static str {
    static PROC: OnceLock<String> = OnceLock::new();
    PROC.get_or_init(|| {
        root()
            .map(|r| r.join("proc"))
            .filter(|p| p.join("1").is_dir())
            .and_then(|p| p.to_str().map(str::to_string))
            .unwrap_or_else(|| "/proc".to_string())
    })
}

/// Where tracefs is looked for, in libbpf's order.
const TRACEFS: [&str; 2] = ["/sys/kernel/debug/tracing", "/sys/kernel/tracing"];

/// Mounts tracefs on `/sys/kernel/tracing` when no tracefs is mounted where libbpf looks
/// (a container's fresh `/sys`; a host that never mounted it): `tracepoint/` programs are
/// attached through its event ids. In a container the mount is in the container's own mount
/// namespace. An error names what failed; attaching then fails with libbpf's reason.
pub fn ensure_tracefs() -> Result<(), String> {
    if TRACEFS.iter().any(|t| Path::new(t).join("events").is_dir()) {
        return Ok(());
    }
    let target = TRACEFS[1];
    let c = |s: &str| std::ffi::CString::new(s).map_err(|e| e.to_string());
    let (source, dir, fstype) = (c("tracefs")?, c(target)?, c("tracefs")?);
    // SAFETY: NUL-terminated strings that live for the call; no mount data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            dir.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mounting tracefs on {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn root_ignores_unset_empty_and_slash() {
        assert_eq!(root_from(None), None);
        assert_eq!(root_from(Some("".into())), None);
        assert_eq!(root_from(Some("/".into())), None);
        assert_eq!(root_from(Some("//".into())), None);
        assert_eq!(
            root_from(Some("/host".into())),
            Some(PathBuf::from("/host"))
        );
    }

    #[test]
    fn absolute_links_stay_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("run/containerd")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        symlink("/run", root.join("var/run")).unwrap();
        std::fs::write(root.join("run/docker.sock"), "").unwrap();
        assert_eq!(
            resolve_in(root, Path::new("/var/run/docker.sock")),
            root.join("run/docker.sock")
        );
        // Relative links, `..` past the root, and a missing tail.
        symlink("../run/containerd", root.join("var/ctr")).unwrap();
        assert_eq!(
            resolve_in(root, Path::new("/var/ctr/containerd.sock")),
            root.join("run/containerd/containerd.sock")
        );
        assert_eq!(
            resolve_in(root, Path::new("/../../etc/passwd")),
            root.join("etc/passwd")
        );
        symlink("../../../../etc", root.join("run/escape")).unwrap();
        assert_eq!(
            resolve_in(root, Path::new("/run/escape/group")),
            root.join("etc/group")
        );
        assert_eq!(
            resolve_in(root, Path::new("/nothing/here")),
            root.join("nothing/here")
        );
    }

    #[test]
    fn a_link_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        let p = resolve_in(root, Path::new("/a/x"));
        assert!(p.starts_with(root), "{}", p.display());
    }
}
