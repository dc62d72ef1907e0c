//! What `/proc` tells about a process: its mount namespace, the container id
//! in its cgroup path, its start time. The procfs read is the host's
//! ([`crate::hostroot::proc_root`]: `$HOST_ROOT/proc` in a container).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

pub use crate::hostroot::proc_root;

use super::container::RuntimeKind;
use super::mntns::MntnsKey;

/// Inode of `/proc/<pid>/ns/mnt`: the mount namespace id BPF sees.
pub fn mntns_of(pid: u32) -> io::Result<u64> {
    Ok(std::fs::metadata(format!("{}/{pid}/ns/mnt", proc_root()))?.ino())
}

/// `NS_GET_MNTNS_ID`: `_IOR(0xb7, 5, __u64)` (include/uapi/linux/nsfs.h, since 6.9).
const NS_GET_MNTNS_ID: libc::c_ulong = (2 << 30) | (8 << 16) | (0xb7 << 8) | 5;

/// The mount namespace of a process, inode and id. The id is 0 where the kernel has no
/// `NS_GET_MNTNS_ID` (before 6.9): matching then falls back to the inode. Both come from one
/// open file, so they describe the same namespace even if the process exits meanwhile.
pub fn mntns_key_of(pid: u32) -> io::Result<MntnsKey> {
    mntns_key_at(&format!("{}/{pid}/ns/mnt", proc_root()))
}

/// [`mntns_key_of`] for a path to a mount namespace file (`/proc/self/ns/mnt`).
pub fn mntns_key_at(path: &str) -> io::Result<MntnsKey> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)?;
    let inum = file.metadata()?.ino();
    let mut nsid: u64 = 0;
    // SAFETY: the fd is open for the call's duration and the kernel writes one u64 to `nsid`.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            NS_GET_MNTNS_ID as _,
            &mut nsid as *mut u64,
        )
    };
    if rc != 0 {
        nsid = 0;
    }
    Ok(MntnsKey::new(inum, nsid))
}

/// A container a cgroup path points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupHint {
    /// The runtime the path names, when it names one.
    pub runtime: Option<RuntimeKind>,
    /// containerd namespace, when the path carries it (`/<ns>/<id>` from
    /// `ctr run`, `cri-containerd-…` is always `k8s.io`).
    pub namespace: Option<String>,
    pub id: String,
}

/// Container ids found in `/proc/<pid>/cgroup`, most specific first.
pub async fn cgroup_hints(pid: u32) -> io::Result<Vec<CgroupHint>> {
    let text = tokio::fs::read_to_string(format!("{}/{pid}/cgroup", proc_root())).await?;
    Ok(parse_cgroup(&text))
}

/// Parses the text of `/proc/<pid>/cgroup` (v1 or v2). Shapes understood:
/// `/docker/<id>`, `/system.slice/docker-<id>.scope`,
/// `…/cri-containerd-<id>.scope`, `/kubepods/…/<id>`, `…/crio-<id>.scope`,
/// `…/libpod-<id>.scope`, `/libpod_parent/libpod-<id>` (podman, cgroupfs) and containerd's
/// default `/<namespace>/<id>`.
pub fn parse_cgroup(text: &str) -> Vec<CgroupHint> {
    let mut hints: Vec<CgroupHint> = Vec::new();
    for line in text.lines() {
        // hierarchy-id:controllers:path; the path may itself contain ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for hint in hints_of_path(path) {
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
    }
    hints
}

fn hints_of_path(path: &str) -> Vec<CgroupHint> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut out = Vec::new();
    for (i, comp) in comps.iter().enumerate().rev() {
        let prev = if i > 0 { Some(comps[i - 1]) } else { None };
        if let Some(id) = scoped_id(comp, "docker-") {
            out.push(hint(Some(RuntimeKind::Docker), None, id));
        } else if let Some(id) = scoped_id(comp, "cri-containerd-") {
            out.push(hint(Some(RuntimeKind::Containerd), Some("k8s.io"), id));
        } else if let Some(id) = scoped_id(comp, "libpod-").or_else(|| libpod_cgroupfs_id(comp)) {
            out.push(hint(Some(RuntimeKind::Podman), None, id));
        } else if let Some(id) = scoped_id(comp, "crio-") {
            out.push(hint(None, None, id));
        } else if is_hex64(comp) {
            let runtime = (prev == Some("docker")).then_some(RuntimeKind::Docker);
            out.push(hint(runtime, None, comp));
        }
    }
    // `ctr run` with cgroupfs puts a task in /<namespace>/<id>.
    if out.is_empty() && comps.len() == 2 && !comps.iter().any(|c| is_systemd_unit(c)) {
        out.push(hint(
            Some(RuntimeKind::Containerd),
            Some(comps[0]),
            comps[1],
        ));
    }
    out
}

fn hint(runtime: Option<RuntimeKind>, namespace: Option<&str>, id: &str) -> CgroupHint {
    CgroupHint {
        runtime,
        namespace: namespace.map(str::to_string),
        id: id.to_string(),
    }
}

/// podman with the cgroupfs manager: `/libpod_parent/libpod-<64 hex>` (no `.scope`).
fn libpod_cgroupfs_id(comp: &str) -> Option<&str> {
    let id = comp.strip_prefix("libpod-")?;
    is_hex64(id).then_some(id)
}

/// `<prefix><64 hex>.scope` → the hex id.
fn scoped_id<'a>(comp: &'a str, prefix: &str) -> Option<&'a str> {
    let id = comp.strip_prefix(prefix)?.strip_suffix(".scope")?;
    is_hex64(id).then_some(id)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_systemd_unit(comp: &str) -> bool {
    [".slice", ".scope", ".service", ".mount", ".socket"]
        .iter()
        .any(|s| comp.ends_with(s))
}

/// When the process started (from `/proc/<pid>/stat` and the boot time in
/// `/proc/stat`); second precision.
pub fn process_start_time(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("{}/{pid}/stat", proc_root())).ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    start_time_from(&stat, &boot, clock_ticks_per_sec()?)
}

fn clock_ticks_per_sec() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0)
}

fn start_time_from(stat: &str, proc_stat: &str, ticks: u64) -> Option<SystemTime> {
    // comm may contain spaces and ')': fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); starttime is field 22.
    let start_ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let since_boot = Duration::from_secs(start_ticks / ticks)
        + Duration::from_nanos((start_ticks % ticks) * 1_000_000_000 / ticks);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "b48c14bfaa2a3bc8825a12b69748ce1185adbb80a64164f729b1c53f088c5118";

    #[test]
    fn docker_cgroupfs_v1() {
        let text = format!("9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n0::/docker/{ID}\n");
        assert_eq!(
            parse_cgroup(&text),
            vec![hint(Some(RuntimeKind::Docker), None, ID)]
        );
    }

    #[test]
    fn docker_systemd_v2() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            parse_cgroup(&text),
            vec![hint(Some(RuntimeKind::Docker), None, ID)]
        );
    }

    #[test]
    fn cri_containerd_and_kubepods() {
        let text = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            parse_cgroup(&text),
            vec![hint(Some(RuntimeKind::Containerd), Some("k8s.io"), ID)]
        );
        let text = format!("4:memory:/kubepods/besteffort/pod1234/{ID}\n");
        assert_eq!(parse_cgroup(&text), vec![hint(None, None, ID)]);
    }

    #[test]
    fn podman_cgroupfs_and_systemd() {
        // Read from a container of Debian's podman 4.3 with `--cgroup-manager cgroupfs`.
        let text =
            format!("9:name=systemd:/libpod_parent/libpod-{ID}\n0::/libpod_parent/libpod-{ID}\n");
        assert_eq!(
            parse_cgroup(&text),
            vec![hint(Some(RuntimeKind::Podman), None, ID)]
        );
        let text = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        assert_eq!(
            parse_cgroup(&text),
            vec![hint(Some(RuntimeKind::Podman), None, ID)]
        );
        // The conmon scope is not the container.
        let text = format!("0::/machine.slice/libpod-conmon-{ID}.scope\n");
        assert!(parse_cgroup(&text).is_empty());
    }

    #[test]
    fn ctr_namespace_and_id() {
        let text = "9:name=systemd:/k8s.io/c1\n0::/k8s.io/c1\n";
        assert_eq!(
            parse_cgroup(text),
            vec![hint(Some(RuntimeKind::Containerd), Some("k8s.io"), "c1")]
        );
    }

    #[test]
    fn host_processes_have_no_hint() {
        for text in [
            "0::/\n",
            "0::/init.scope\n",
            "0::/user.slice/user-1000.slice\n",
            "0::/system.slice/ssh.service\n",
            "garbage\n",
            "",
        ] {
            assert!(parse_cgroup(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn start_time() {
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 250 1000 10";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let t = start_time_from(stat, proc_stat, 100).unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_700_000_002)
                + Duration::from_millis(500)
        );
    }

    #[test]
    fn mntns_key_has_inode_and_id() {
        let own = mntns_key_of(std::process::id()).unwrap();
        assert_eq!(own.inum, mntns_of(std::process::id()).unwrap());
        assert_ne!(own.nsid, 0, "this kernel (6.18) has NS_GET_MNTNS_ID");
        assert_eq!(own, mntns_key_at("/proc/self/ns/mnt").unwrap());
        assert!(mntns_key_of(u32::MAX).is_err());
    }

    #[test]
    fn own_mntns_matches_proc_self() {
        let pid = std::process::id();
        let a = mntns_of(pid).unwrap();
        let b = std::fs::metadata("/proc/self/ns/mnt").unwrap().ino();
        assert_eq!(a, b);
    }
}
