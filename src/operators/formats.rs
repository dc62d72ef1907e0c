//! Names of raw kernel values Inspektor Gadget's typedefs mark (`gadget_signal`,
//! `gadget_file_flags`, `gadget_file_mode`): signal numbers, open(2) flags, file modes.

/// Signal names of signal(7) by number (1..=31; the same numbers on x86_64 and arm64). A
/// fixed table of the kernel's ABI: there is no crate in our tree that names them (libc has the
/// numbers only), and 31 names do not justify one.
const SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `SIGKILL` for 9; real-time signals as `SIGRTMIN+n` (the kernel's SIGRTMIN is 32); 0 (no
/// signal: kill(2)'s existence check) as `0`; anything else as its number.
pub fn signal_name(sig: i64) -> String {
    match sig {
        1..=31 => SIGNALS[(sig - 1) as usize].to_string(),
        32..=64 => format!("SIGRTMIN+{}", sig - 32),
        _ => sig.to_string(),
    }
}

/// open(2) flags as `O_RDONLY|O_CLOEXEC` (the values of this architecture's fcntl.h, from
/// libc); bits without a name are appended in octal.
pub fn open_flags(flags: u64) -> String {
    let flags = flags as u32 as i32;
    let mut out = String::from(match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_ACCMODE",
    });
    let mut rest = flags & !libc::O_ACCMODE;
    // O_TMPFILE includes O_DIRECTORY's bit: named first, as a whole.
    let named: [(i32, &str); 15] = [
        (libc::O_TMPFILE, "O_TMPFILE"),
        (libc::O_SYNC, "O_SYNC"),
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOCTTY, "O_NOCTTY"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DSYNC, "O_DSYNC"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_LARGEFILE, "O_LARGEFILE"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_NOATIME, "O_NOATIME"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
    ];
    for (bit, name) in named {
        if bit != 0 && rest & bit == bit {
            out.push('|');
            out.push_str(name);
            rest &= !bit;
        }
    }
    if rest & libc::O_PATH != 0 {
        out.push_str("|O_PATH");
        rest &= !libc::O_PATH;
    }
    if rest != 0 {
        out.push_str(&format!("|0{:o}", rest as u32));
    }
    out
}

/// A mode as ls(1) prints it: `-rw-r--r--`, `drwxrwxrwt`; the type character is `-` when
/// the value has no type bits (open(2)'s mode argument).
pub fn file_mode(mode: u64) -> String {
    let mode = mode as u32;
    let kind = match mode & 0o170000 {
        0o140000 => 's',
        0o120000 => 'l',
        0o060000 => 'b',
        0o040000 => 'd',
        0o020000 => 'c',
        0o010000 => 'p',
        _ => '-',
    };
    let mut out = String::with_capacity(10);
    out.push(kind);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, with_x, without_x)) in special.iter().enumerate() {
        let shift = 6 - 3 * i as u32;
        let rwx = (mode >> shift) & 7;
        out.push(if rwx & 4 != 0 { 'r' } else { '-' });
        out.push(if rwx & 2 != 0 { 'w' } else { '-' });
        let x = rwx & 1 != 0;
        out.push(match (mode & bit != 0, x) {
            (true, true) => *with_x,
            (true, false) => *without_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(34), "SIGRTMIN+2");
        assert_eq!(signal_name(0), "0");
        assert_eq!(signal_name(99), "99");
    }

    #[test]
    fn flags() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(
            open_flags((libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u64),
            "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
        );
        assert_eq!(
            open_flags((libc::O_RDWR | libc::O_TMPFILE) as u64),
            "O_RDWR|O_TMPFILE"
        );
        assert_eq!(
            open_flags((libc::O_RDONLY | libc::O_DIRECTORY) as u64),
            "O_RDONLY|O_DIRECTORY"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(file_mode(0o644), "-rw-r--r--");
        assert_eq!(file_mode(0o40755), "drwxr-xr-x");
        assert_eq!(file_mode(0o41777), "drwxrwxrwt");
        assert_eq!(file_mode(0o4755), "-rwsr-xr-x");
        assert_eq!(file_mode(0), "----------");
    }
}
