//! The one place that talks to the kernel for a gadget: open the object from memory, set
//! parameters, load, attach, and give access to its maps.

use std::sync::Mutex;

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, PrintLevel};

use super::spec::GadgetSpec;
use super::GadgetError;
use crate::containers::MntnsKey;

/// What the runtime decides before load.
#[derive(Debug, Clone, Default)]
pub struct LoadSettings {
    /// `.rodata` variable → bytes.
    pub params: Vec<(String, Vec<u8>)>,
    pub filter_by_mntns: bool,
    pub drop_unknown_mntns: bool,
    /// A recorder records only the syscalls the runtime puts in `gadget_syscall_filter_map`.
    pub filter_syscalls: bool,
    /// Unread bytes in a ring that wake the reader; 0: a quarter of the smallest ring.
    pub wakeup_bytes: u64,
    /// A record wakes the reader when the last wakeup is older than this; 0: WAKEUP_INTERVAL.
    pub wakeup_interval: std::time::Duration,
    /// Map name → max_entries, set before load.
    pub map_sizes: Vec<(String, u32)>,
    /// Programs not loaded nor attached (the gadget says a parameter makes them useless).
    pub skip_programs: Vec<String>,
}

/// `struct gadget_host_mntns` (bpf/gadget/mntns_filter.h): the host's inode and verdict.
const HOST_MNTNS_MAP: &str = "gadget_host_mntns";

pub const MNTNS_FILTER_MAP: &str = "gadget_mntns_filter_map";
pub const MNTNS_NOTES_MAP: &str = "gadget_mntns_notes";

/// Under load the reader is woken at most this often (besides fill-level wakeups); on an idle
/// machine the first record after such a quiet interval wakes it at once.
pub const WAKEUP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

static LIBBPF_LOG: Mutex<String> = Mutex::new(String::new());

fn capture_libbpf_log(_level: PrintLevel, msg: String) {
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        if log.len() < 64 * 1024 {
            log.push_str(&msg);
        }
    }
}

fn take_libbpf_log() -> String {
    LIBBPF_LOG
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}

/// Keeps the last lines of a verifier log, where the reason is.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}

/// What a failed load says: which program the kernel refused and, for a hook kind this kernel
/// may lack, that (rather than libbpf's generic "try raising ulimit -l" for an EPERM).
fn load_error(error: &str, log: &str, spec: &GadgetSpec) -> GadgetError {
    let refused = log.lines().find_map(|l| {
        let rest = l.split("prog '").nth(1)?;
        let (name, after) = rest.split_once("': BPF program load failed: ")?;
        Some((name.to_string(), after.trim().to_string()))
    });
    let Some((name, errno)) = refused else {
        return GadgetError::Load(format!("{error}\n{}", log_tail(log)));
    };
    let section = spec
        .programs
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.section.clone())
        .unwrap_or_default();
    // An EPERM without the capabilities is theirs to fix, whatever the program's kind.
    let hook = match (errno.as_str(), missing_capabilities()) {
        ("-EPERM", Some(missing)) => Some(format!(
            "ig lacks {missing}: loading tracing programs needs CAP_BPF and CAP_PERFMON, or \
             CAP_SYS_ADMIN"
        )),
        _ => hook_unavailable_hint(&section).or_else(|| missing_core_target(log)),
    };
    let log = match hook {
        Some(_) => log
            .lines()
            .filter(|l| !l.contains("ulimit"))
            .collect::<Vec<_>>()
            .join("\n"),
        None => log.to_string(),
    };
    GadgetError::Load(format!(
        "the kernel refused program `{name}` ({section}): {errno}{}\n{}",
        hook.map(|h| format!(": {h}")).unwrap_or_default(),
        log_tail(&log)
    ))
}

/// A CO-RE relocation libbpf could not resolve against this kernel's BTF (its log says
/// `failed to resolve CO-RE relocation <byte_off> [N] struct task_struct___flavor.field (…)`):
/// which type and field the program needs, without the local flavor suffix.
fn missing_core_target(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.contains("failed to resolve CO-RE relocation"))?;
    let after = line.split("] ").nth(1)?;
    let target = after.split(" (").next()?.trim();
    let target = match target.split_once("___") {
        Some((head, rest)) => match rest.find('.') {
            Some(dot) => format!("{head}{}", &rest[dot..]),
            None => head.to_string(),
        },
        None => target.to_string(),
    };
    Some(format!(
        "it needs `{target}` (a CO-RE relocation), which this kernel ({}) does not have",
        kernel_release()
    ))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Before anything loads: a kernel without BTF cannot run CO-RE gadgets, and libbpf's own
/// message for it is about a file it did not find.
fn check_kernel_btf() -> Result<(), GadgetError> {
    let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
    if path.exists() {
        return Ok(());
    }
    Err(GadgetError::Load(format!(
        "this kernel ({}) has no BTF ({} is missing): ig's gadgets are CO-RE programs and need a \
         kernel built with CONFIG_DEBUG_INFO_BTF=y (is sysfs mounted?)",
        kernel_release(),
        path.display()
    )))
}

/// The capabilities ig's effective set lacks for loading tracing programs (`CapEff` of
/// /proc/self/status; bits from linux/capability.h): `None` when it has CAP_SYS_ADMIN or both
/// CAP_BPF and CAP_PERFMON.
fn missing_capabilities() -> Option<String> {
    const SYS_ADMIN: u32 = 21;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    if has(SYS_ADMIN) || (has(BPF) && has(PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(BPF, "CAP_BPF"), (PERFMON, "CAP_PERFMON")]
        .iter()
        .filter(|(bit, _)| !has(*bit))
        .map(|(_, name)| *name)
        .collect();
    Some(missing.join(" and "))
}

/// Why the kernel refused an attachment (perf_event_open for tracepoints and kprobes):
/// capabilities and `kernel.perf_event_paranoid`.
fn attach_permission_hint() -> String {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "the kernel refused it: attaching needs CAP_SYS_ADMIN, or CAP_PERFMON where \
         kernel.perf_event_paranoid is 2 or less (it is {paranoid} here)"
    )
}

/// For a section whose hook kind some kernels lack, what to tell the user, with this kernel's
/// release.
fn hook_unavailable_hint(section: &str) -> Option<String> {
    let what = match section.split('/').next().unwrap_or("") {
        "kprobe" | "kretprobe" | "uprobe" | "uretprobe" | "ksyscall" | "kretsyscall" => {
            "kprobes are"
        }
        "fentry" | "fexit" | "fmod_ret" | "lsm" | "freplace" => {
            "fentry/fexit/LSM programs (BPF trampolines) are"
        }
        _ => return None,
    };
    Some(format!(
        "{what} not available on this kernel ({})",
        kernel_release()
    ))
}

/// `struct gadget_mntns_key` (16 bytes), or the inode alone for a gadget whose filter map
/// is keyed by `__u64` (built with an older or Inspektor Gadget's header).
fn filter_key(map: &libbpf_rs::Map<'_>, mntns: MntnsKey) -> Vec<u8> {
    match map.key_size() {
        8 => mntns.inum.to_le_bytes().to_vec(),
        _ => mntns.to_bpf_bytes().to_vec(),
    }
}

/// `struct gadget_mntns_note`: two NUL-terminated names (then the css_set they are of).
const NOTE_PARENT: usize = 64;
const NOTE_SIZE: u32 = 64 + 96;

/// `/parent/leaf` from the NUL-terminated kernfs names BPF wrote
/// (`gadget_current_cgroup_names()`, bpf/gadget/cgroup.h); `None` without a leaf (a root
/// cgroup, or nothing noted).
pub fn cgroup_path(parent: &[u8], leaf: &[u8]) -> Option<String> {
    let text = |b: &[u8]| {
        String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())])
            .into_owned()
    };
    let leaf = text(leaf);
    (!leaf.is_empty()).then(|| format!("/{}/{leaf}", text(parent)))
}

/// What BPF noted about namespaces the runtime had no verdict for (bpf/gadget/mntns_filter.h).
pub struct MntnsNotes(libbpf_rs::MapHandle);

impl MntnsNotes {
    /// The cgroup path BPF saw the namespace's processes in (`parent/leaf`: `docker/<id>`,
    /// `default/web`), as `/proc/<pid>/cgroup` would show it; `None` when none was noted or
    /// only a root cgroup was seen.
    pub fn cgroup(&self, mntns: MntnsKey) -> Option<String> {
        let value = self.0.lookup(&mntns.to_bpf_bytes(), MapFlags::ANY).ok()??;
        cgroup_path(
            value.get(..NOTE_PARENT)?,
            value.get(NOTE_PARENT..NOTE_SIZE as usize)?,
        )
    }

    /// Drops the note of a namespace that was decided.
    pub fn forget(&self, mntns: MntnsKey) {
        let _ = self.0.delete(&mntns.to_bpf_bytes());
    }
}

pub struct LoadedGadget {
    object: Object,
    /// Program name → its link.
    links: Vec<(String, libbpf_rs::Link)>,
    bss_lost: Vec<(String, u32)>,
    /// Tracer map → its per-CPU lost counter map (Inspektor Gadget's `<map>_lost_samples`).
    sample_lost: Vec<(String, String)>,
    bss_vars: Vec<(String, u32)>,
    /// The filter map is Inspektor Gadget's (`__u64` inode → any value: present means kept):
    /// it cannot say "unknown, keep for now", so BPF does not filter and user space decides.
    inode_filter: bool,
}

impl LoadedGadget {
    pub fn load(
        object: &[u8],
        spec: &GadgetSpec,
        settings: &LoadSettings,
    ) -> Result<Self, GadgetError> {
        check_kernel_btf()?;
        libbpf_rs::set_print(Some((PrintLevel::Warn, capture_libbpf_log)));
        take_libbpf_log();
        let mut open = ObjectBuilder::default()
            .name(spec.metadata.name.replace(['-', ' '], "_"))
            .and_then(|b| b.open_memory(object))
            .map_err(|e| GadgetError::Load(format!("{e}\n{}", log_tail(&take_libbpf_log()))))?;

        // Inspektor Gadget's objects leave some maps' sizes to the runtime (max_entries 0, e.g.
        // user_stack_map.h's `ig_build_id`) with a parameter `<map>_max_entries` beside them: its
        // value as set, else its default. (Other maps with 0, e.g. task storage, keep it.)
        let unsized_maps: Vec<(String, u32)> = open
            .maps()
            .filter(|m| m.max_entries() == 0)
            .filter_map(|m| {
                let name = m.name().to_string_lossy().into_owned();
                let var = format!("{name}_max_entries");
                let param = spec.params.iter().find(|p| p.var == var)?;
                let set = settings
                    .params
                    .iter()
                    .find(|(v, _)| *v == var)
                    .and_then(|(_, b)| Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)));
                let size = set
                    .or(param.default.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or(1);
                Some((name, size))
            })
            .collect();
        for (name, size) in settings.map_sizes.iter().chain(&unsized_maps) {
            let mut map = open
                .maps_mut()
                .find(|m| m.name() == name.as_str())
                .ok_or_else(|| GadgetError::Map {
                    map: name.clone(),
                    reason: "not in the object".into(),
                })?;
            map.set_max_entries(*size).map_err(|e| GadgetError::Map {
                map: name.clone(),
                reason: e.to_string(),
            })?;
        }
        let smallest_ring = open
            .maps()
            .filter(|m| m.map_type() == libbpf_rs::MapType::RingBuf)
            .map(|m| m.max_entries() as u64)
            .min()
            .unwrap_or(0);
        let wakeup_bytes = match settings.wakeup_bytes {
            0 => smallest_ring / 4,
            n => n,
        };
        let wakeup_interval_ns = match settings.wakeup_interval.as_nanos() {
            0 => WAKEUP_INTERVAL.as_nanos(),
            n => n,
        } as u64;
        for mut prog in open.progs_mut() {
            if settings
                .skip_programs
                .iter()
                .any(|p| prog.name() == p.as_str())
            {
                prog.set_autoload(false);
            }
        }
        let mut writes: Vec<(u32, Vec<u8>)> = Vec::new();
        for (var, bytes) in &settings.params {
            let p = spec
                .params
                .iter()
                .find(|p| &p.var == var)
                .ok_or_else(|| GadgetError::UnknownParam(var.clone()))?;
            writes.push((p.offset, bytes.clone()));
        }
        let inode_filter = spec.inode_filter;
        for (name, offset, size) in &spec.runtime_vars {
            let value: u64 = match name.as_str() {
                "gadget_filter_by_mntns" => (settings.filter_by_mntns && !inode_filter) as u64,
                "gadget_drop_unknown_mntns" => settings.drop_unknown_mntns as u64,
                "gadget_filter_syscalls" => settings.filter_syscalls as u64,
                "gadget_wakeup_bytes" => wakeup_bytes,
                "gadget_wakeup_interval_ns" => wakeup_interval_ns,
                // This process, for gadgets that leave the runtime's own activity out.
                "gadget_runtime_tgid" => std::process::id() as u64,
                _ => continue,
            };
            writes.push((
                *offset,
                value.to_le_bytes()[..(*size as usize).min(8)].to_vec(),
            ));
        }
        if !writes.is_empty() {
            let mut rodata = open
                .maps_mut()
                .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
                .ok_or_else(|| {
                    GadgetError::Load("the object has parameters but no .rodata map".into())
                })?;
            let data = rodata
                .initial_value_mut()
                .ok_or_else(|| GadgetError::Load(".rodata has no initial value".into()))?;
            for (offset, bytes) in writes {
                let end = offset as usize + bytes.len();
                let slot = data.get_mut(offset as usize..end).ok_or_else(|| {
                    GadgetError::Load(format!("variable at {offset} lies outside .rodata"))
                })?;
                slot.copy_from_slice(&bytes);
            }
        }

        let object = open
            .load()
            .map_err(|e| load_error(&e.to_string(), &take_libbpf_log(), spec))?;
        Ok(LoadedGadget {
            object,
            links: Vec::new(),
            bss_lost: spec.lost_counters.clone(),
            sample_lost: spec.lost_sample_maps.clone(),
            bss_vars: spec.bss_vars.clone(),
            inode_filter,
        })
    }

    /// Attaches every program; a program whose kind this kernel lacks fails with its section
    /// named.
    pub fn attach(&mut self) -> Result<(), GadgetError> {
        for prog in self.object.progs_mut() {
            if !prog.autoload() {
                continue;
            }
            let name = prog.name().to_string_lossy().into_owned();
            let section = prog.section().to_string_lossy().into_owned();
            // Tracepoints are attached through tracefs's event ids: mount it if missing (a
            // container's fresh /sys). A failed mount leaves libbpf's reason to the error.
            let tracefs_note = if section.starts_with("tracepoint/") || section.starts_with("tp/") {
                crate::hostroot::ensure_tracefs().err()
            } else {
                None
            };
            take_libbpf_log();
            let link = prog.attach().map_err(|e| {
                let log = take_libbpf_log();
                // A refusal is a permission matter, not a missing hook.
                let refused = ["-EACCES", "-EPERM"].iter().any(|c| log.contains(c))
                    || matches!(e.kind(), libbpf_rs::ErrorKind::PermissionDenied);
                let hint = if refused {
                    Some(attach_permission_hint())
                } else {
                    hook_unavailable_hint(&section).or(tracefs_note.clone())
                }
                .map(|h| format!(": {h}"))
                .unwrap_or_default();
                GadgetError::Attach {
                    program: name.clone(),
                    section: section.clone(),
                    reason: format!("{e}{hint}\n{}", log_tail(&log))
                        .trim_end()
                        .to_string(),
                }
            })?;
            self.links.push((name, link));
        }
        Ok(())
    }

    /// The link of an attached program (an iterator is read by opening its link).
    pub fn link(&self, program: &str) -> Option<&libbpf_rs::Link> {
        self.links
            .iter()
            .find(|(name, _)| name == program)
            .map(|(_, l)| l)
    }

    pub fn detach(&mut self) {
        self.links.clear();
    }

    pub fn object(&self) -> &Object {
        &self.object
    }

    pub fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>, GadgetError> {
        self.object
            .maps()
            .find(|m| m.name() == name)
            .ok_or_else(|| GadgetError::Map {
                map: name.to_string(),
                reason: "not in the object".into(),
            })
    }

    /// Sets a mount namespace's verdict in the filter map: kept (true) or dropped (false).
    pub fn set_mntns_verdict(&self, mntns: MntnsKey, keep: bool) -> Result<(), GadgetError> {
        if self.inode_filter {
            return Ok(());
        }
        let map = self.map(MNTNS_FILTER_MAP)?;
        map.update(&filter_key(&map, mntns), &[keep as u8], MapFlags::ANY)
            .map_err(|e| GadgetError::Map {
                map: MNTNS_FILTER_MAP.into(),
                reason: e.to_string(),
            })
    }

    /// Sets the host's verdict in `gadget_host_mntns` too, BPF's lookup-free path for the
    /// host's namespace (whose inode no other namespace takes: it never dies). A gadget built
    /// before that map existed keeps using the filter map alone.
    pub fn set_host_verdict(&self, inum: u64, keep: bool) {
        let Ok(map) = self.map(HOST_MNTNS_MAP) else {
            return;
        };
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&inum.to_le_bytes());
        value[8] = if keep { 1 } else { 2 };
        if map.value_size() as usize == value.len() {
            let _ = map.update(&0u32.to_le_bytes(), &value, MapFlags::ANY);
        }
    }

    pub fn forget_mntns(&self, mntns: MntnsKey) {
        if self.inode_filter {
            return;
        }
        if let Ok(map) = self.map(MNTNS_FILTER_MAP) {
            let _ = map.delete(&filter_key(&map, mntns));
        }
    }

    /// The gadget's notes about namespaces it had no verdict for (`gadget_mntns_notes`), for
    /// reading from another thread; `None` for a gadget built without them.
    pub fn mntns_notes(&self) -> Option<MntnsNotes> {
        let map = self.map(MNTNS_NOTES_MAP).ok()?;
        let handle = libbpf_rs::MapHandle::try_from(&map).ok()?;
        (handle.key_size() == 16 && handle.value_size() >= NOTE_SIZE).then_some(MntnsNotes(handle))
    }

    fn bss(&self) -> Option<Vec<u8>> {
        let bss = self
            .object
            .maps()
            .find(|m| m.name().to_string_lossy().ends_with(".bss"))?;
        bss.lookup(&0u32.to_le_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
    }

    /// A `__u64` global of `.bss`, as BPF left it.
    pub fn bss_u64(&self, name: &str) -> Option<u64> {
        let (_, off) = self.bss_vars.iter().find(|(n, _)| n == name)?;
        let value = self.bss()?;
        let bytes = value.get(*off as usize..*off as usize + 8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        Some(u64::from_le_bytes(raw))
    }

    /// Lost-event counters per tracer map, as BPF counted them: `gadget_lost__<map>` in
    /// `.bss`, or the per-CPU `<map>_lost_samples` map summed over the CPUs.
    pub fn lost(&self) -> Vec<(String, u64)> {
        let read_u64 = |bytes: &[u8], off: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes.get(off..off + 8)?);
            Some(u64::from_le_bytes(raw))
        };
        let mut lost: Vec<(String, u64)> = match self.bss() {
            Some(value) => self
                .bss_lost
                .iter()
                .filter_map(|(map, off)| Some((map.clone(), read_u64(&value, *off as usize)?)))
                .collect(),
            None => Vec::new(),
        };
        for (map, counter) in &self.sample_lost {
            let Ok(m) = self.map(counter) else { continue };
            let Ok(Some(per_cpu)) = m.lookup_percpu(&0u32.to_le_bytes(), MapFlags::ANY) else {
                continue;
            };
            let total = per_cpu
                .iter()
                .filter_map(|v| read_u64(v, 0))
                .fold(0u64, u64::wrapping_add);
            lost.push((map.clone(), total));
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::cgroup_path;

    #[test]
    fn cgroup_path_from_kernfs_names() {
        let mut parent = [0u8; 64];
        let mut leaf = [0u8; 96];
        parent[..6].copy_from_slice(b"docker");
        leaf[..4].copy_from_slice(b"abcd");
        assert_eq!(cgroup_path(&parent, &leaf).as_deref(), Some("/docker/abcd"));
        // A root cgroup leaves no leaf: nothing to name.
        assert_eq!(cgroup_path(&parent, &[0u8; 96]), None);
    }
}
