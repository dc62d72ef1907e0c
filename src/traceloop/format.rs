//! Syscall parameter names and C types, from tracefs `sys_enter_<name>/format` files.
//!
//! A format file lists the tracepoint's fields; the syscall parameters are the `field:` lines
//! after `__syscall_nr`, e.g. `field:const char * filename; offset:24; size:8; signed:0;` (tab-separated).
//! The tracepoint name can differ from the syscall table name (`stat` is `newstat`), see
//! [`tracepoint_name`].

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::TraceloopError;

/// Where tracefs may be mounted, in the order tried by [`SyscallFormats::load`].
pub const TRACEFS_ROOTS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// One syscall parameter as the kernel declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    /// C type as written by the kernel, e.g. `const char *`, `umode_t`.
    pub c_type: String,
}

impl Param {
    fn new(c_type: &str, name: &str) -> Param {
        Param {
            name: name.to_string(),
            c_type: c_type.to_string(),
        }
    }

    /// Whether the type is a pointer.
    pub fn is_pointer(&self) -> bool {
        self.c_type.contains('*')
    }
}

/// Syscall table name → tracepoint name, where they differ (same on x86_64 and arm64).
const TRACEPOINT_ALIASES: &[(&str, &str)] = &[
    ("stat", "newstat"),
    ("lstat", "newlstat"),
    ("fstat", "newfstat"),
    ("uname", "newuname"),
    ("sendfile", "sendfile64"),
    ("umount2", "umount"),
];

/// The tracepoint (`sys_enter_<name>`) name of a syscall table name.
pub fn tracepoint_name(syscall: &str) -> &str {
    TRACEPOINT_ALIASES
        .iter()
        .find(|&&(s, _)| s == syscall)
        .map_or(syscall, |&(_, tp)| tp)
}

/// Parameters of every known syscall, keyed by tracepoint name.
#[derive(Debug, Clone, Default)]
pub struct SyscallFormats {
    by_name: HashMap<String, Vec<Param>>,
}

impl SyscallFormats {
    /// Tracefs formats when tracefs is mounted, completed by the built-in fallback; the
    /// fallback alone otherwise.
    pub fn load() -> SyscallFormats {
        let mut formats = SyscallFormats::fallback();
        for root in TRACEFS_ROOTS {
            if let Ok(found) = SyscallFormats::load_from(Path::new(root)) {
                formats.by_name.extend(found.by_name);
                break;
            }
        }
        formats
    }

    /// Reads every `events/syscalls/sys_enter_*/format` under a tracefs root.
    pub fn load_from(root: &Path) -> Result<SyscallFormats, TraceloopError> {
        let dir = root.join("events/syscalls");
        let entries = fs::read_dir(&dir)
            .map_err(|_| TraceloopError::NoTracefs(root.display().to_string()))?;
        let mut by_name = HashMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| TraceloopError::Io {
                path: dir.clone(),
                source,
            })?;
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix("sys_enter_"))
            else {
                continue;
            };
            let path: PathBuf = entry.path().join("format");
            let text =
                fs::read_to_string(&path).map_err(|source| TraceloopError::Io { path, source })?;
            by_name.insert(name.to_string(), parse_format(name, &text)?);
        }
        if by_name.is_empty() {
            return Err(TraceloopError::NoTracefs(root.display().to_string()));
        }
        Ok(SyscallFormats { by_name })
    }

    /// The built-in table used when tracefs is absent.
    pub fn fallback() -> SyscallFormats {
        let mut by_name = HashMap::new();
        for &(name, params) in FALLBACK {
            let list = if params.is_empty() {
                Vec::new()
            } else {
                params.split(", ").filter_map(split_decl).collect()
            };
            by_name.insert(name.to_string(), list);
        }
        SyscallFormats { by_name }
    }

    /// Adds or replaces one syscall (by tracepoint or table name).
    pub fn insert(&mut self, name: &str, params: Vec<Param>) {
        self.by_name.insert(name.to_string(), params);
    }

    /// Parameters of a syscall given its table name (or tracepoint name).
    pub fn params(&self, syscall: &str) -> Option<&[Param]> {
        self.by_name
            .get(syscall)
            .or_else(|| self.by_name.get(tracepoint_name(syscall)))
            .map(Vec::as_slice)
    }

    /// How many syscalls are known.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no syscall is known.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Parses one `format` file's text; `name` is used in errors only.
pub fn parse_format(name: &str, text: &str) -> Result<Vec<Param>, TraceloopError> {
    let mut params = Vec::new();
    let mut after_nr = false;
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("field:") else {
            continue;
        };
        let decl = rest.split(';').next().unwrap_or_default().trim();
        let param = split_decl(decl).ok_or_else(|| TraceloopError::Format {
            name: name.to_string(),
            message: format!("cannot parse field {decl:?}"),
        })?;
        if after_nr {
            params.push(param);
        } else if param.name == "__syscall_nr" {
            after_nr = true;
        }
    }
    if !after_nr {
        return Err(TraceloopError::Format {
            name: name.to_string(),
            message: "no __syscall_nr field".to_string(),
        });
    }
    Ok(params)
}

/// `const char * filename` → (`const char *`, `filename`).
fn split_decl(decl: &str) -> Option<Param> {
    let decl = decl.trim();
    let split = decl.rfind([' ', '*'])?;
    let (c_type, name) = decl.split_at(split + 1);
    let name = name.trim();
    let c_type = c_type.trim();
    if name.is_empty() || c_type.is_empty() {
        return None;
    }
    Some(Param::new(c_type, name))
}

/// Fallback: tracepoint name → parameters, as the kernel declares them on x86_64.
const FALLBACK: &[(&str, &str)] = &[
    ("read", "unsigned int fd, char * buf, size_t count"),
    ("write", "unsigned int fd, const char * buf, size_t count"),
    ("pread64", "unsigned int fd, char * buf, size_t count, loff_t pos"),
    ("pwrite64", "unsigned int fd, const char * buf, size_t count, loff_t pos"),
    ("open", "const char * filename, int flags, umode_t mode"),
    ("openat", "int dfd, const char * filename, int flags, umode_t mode"),
    ("close", "unsigned int fd"),
    ("newstat", "const char * filename, struct stat * statbuf"),
    ("newlstat", "const char * filename, struct stat * statbuf"),
    ("newfstat", "unsigned int fd, struct stat * statbuf"),
    ("newfstatat", "int dfd, const char * filename, struct stat * statbuf, int flag"),
    ("statx", "int dfd, const char * filename, unsigned flags, unsigned int mask, struct statx * buffer"),
    ("execve", "const char * filename, const char *const * argv, const char *const * envp"),
    ("execveat", "int fd, const char * filename, const char *const * argv, const char *const * envp, int flags"),
    ("exit", "int error_code"),
    ("exit_group", "int error_code"),
    ("getdents64", "unsigned int fd, struct linux_dirent64 * dirent, unsigned int count"),
    ("mmap", "unsigned long addr, unsigned long len, unsigned long prot, unsigned long flags, unsigned long fd, unsigned long off"),
    ("munmap", "unsigned long addr, size_t len"),
    ("mprotect", "unsigned long start, size_t len, unsigned long prot"),
    ("brk", "unsigned long brk"),
    ("access", "const char * filename, int mode"),
    ("faccessat", "int dfd, const char * filename, int mode"),
    ("pipe", "int * fildes"),
    ("pipe2", "int * fildes, int flags"),
    ("dup", "unsigned int fildes"),
    ("dup2", "unsigned int oldfd, unsigned int newfd"),
    ("dup3", "unsigned int oldfd, unsigned int newfd, int flags"),
    ("wait4", "pid_t upid, int * stat_addr, int options, struct rusage * ru"),
    ("clone", "unsigned long clone_flags, unsigned long newsp, int * parent_tidptr, int * child_tidptr, unsigned long tls"),
    ("clone3", "struct clone_args * uargs, size_t size"),
    ("vfork", ""),
    ("rt_sigreturn", ""),
    ("fork", ""),
    ("getpid", ""),
    ("gettid", ""),
    ("getuid", ""),
    ("geteuid", ""),
    ("ioctl", "unsigned int fd, unsigned int cmd, unsigned long arg"),
    ("fcntl", "unsigned int fd, unsigned int cmd, unsigned long arg"),
    ("lseek", "unsigned int fd, off_t offset, unsigned int whence"),
    ("chdir", "const char * filename"),
    ("getcwd", "char * buf, unsigned long size"),
    ("unlink", "const char * pathname"),
    ("unlinkat", "int dfd, const char * pathname, int flag"),
    ("mkdir", "const char * pathname, umode_t mode"),
    ("mkdirat", "int dfd, const char * pathname, umode_t mode"),
    ("rename", "const char * oldname, const char * newname"),
    ("renameat", "int olddfd, const char * oldname, int newdfd, const char * newname"),
    ("readlink", "const char * path, char * buf, int bufsiz"),
    ("readlinkat", "int dfd, const char * pathname, char * buf, int bufsiz"),
    ("rt_sigaction", "int sig, const struct sigaction * act, struct sigaction * oact, size_t sigsetsize"),
    ("rt_sigprocmask", "int how, sigset_t * nset, sigset_t * oset, size_t sigsetsize"),
    ("set_tid_address", "int * tidptr"),
    ("arch_prctl", "int option, unsigned long arg2"),
    ("sendto", "int fd, void * buff, size_t len, unsigned int flags, struct sockaddr * addr, int addr_len"),
    ("recvfrom", "int fd, void * ubuf, size_t size, unsigned int flags, struct sockaddr * addr, int * addr_len"),
    ("socket", "int family, int type, int protocol"),
    ("connect", "int fd, struct sockaddr * uservaddr, int addrlen"),
];

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAT: &str = "name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx, filename: 0x%08lx\", ((unsigned long)(REC->dfd))
";

    #[test]
    fn parses_openat() {
        let p = parse_format("openat", OPENAT).expect("parse");
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.c_type.as_str(), p.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("int", "dfd"),
                ("const char *", "filename"),
                ("int", "flags"),
                ("umode_t", "mode")
            ]
        );
        assert!(p[1].is_pointer());
    }

    #[test]
    fn parses_double_pointer() {
        let p = split_decl("const char *const * argv").expect("decl");
        assert_eq!(p.c_type, "const char *const *");
        assert_eq!(p.name, "argv");
        let p = split_decl("char *buf").expect("decl");
        assert_eq!((p.c_type.as_str(), p.name.as_str()), ("char *", "buf"));
    }

    #[test]
    fn rejects_missing_nr() {
        assert!(parse_format("x", "format:\n\tfield:int a;\n").is_err());
    }

    #[test]
    fn fallback_and_aliases() {
        let f = SyscallFormats::fallback();
        for name in [
            "read",
            "write",
            "open",
            "openat",
            "close",
            "stat",
            "lstat",
            "newfstatat",
            "fstat",
            "execve",
            "exit_group",
            "getdents64",
            "mmap",
            "brk",
            "access",
            "pipe",
            "dup2",
            "wait4",
            "clone",
        ] {
            assert!(f.params(name).is_some(), "{name}");
        }
        assert_eq!(
            f.params("stat").map(|p| p[0].name.as_str()),
            Some("filename")
        );
        assert_eq!(f.params("fork").map(|p| p.len()), Some(0));
        assert_eq!(tracepoint_name("lstat"), "newlstat");
        assert_eq!(tracepoint_name("openat"), "openat");
    }

    #[test]
    fn fallback_matches_running_kernel_when_available() {
        // Only checks when tracefs is mounted: the fallback must agree with the kernel.
        let Ok(live) = SyscallFormats::load_from(Path::new(TRACEFS_ROOTS[0])) else {
            return;
        };
        let fb = SyscallFormats::fallback();
        for name in [
            "read",
            "write",
            "openat",
            "newfstatat",
            "execve",
            "mmap",
            "wait4",
        ] {
            assert_eq!(live.params(name), fb.params(name), "{name}");
        }
    }
}
