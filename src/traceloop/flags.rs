//! Symbolic rendering of flag arguments.

use super::syscalls::Arch;

/// `open`/`openat` flags, e.g. `O_WRONLY|O_CREAT|O_TRUNC`. Values from the kernel's
/// `asm-generic/fcntl.h`; arm64 moves four of them (`asm/fcntl.h`).
pub(super) fn open_flags(arch: Arch, flags: u64) -> String {
    let (directory, nofollow, direct, largefile) = match arch {
        Arch::X86_64 => (0o200000, 0o400000, 0o40000, 0o100000),
        Arch::Arm64 => (0o40000, 0o100000, 0o200000, 0o400000),
    };
    let table: [(u64, &str); 17] = [
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o20000, "O_ASYNC"),
        (direct, "O_DIRECT"),
        (largefile, "O_LARGEFILE"),
        (directory, "O_DIRECTORY"),
        (nofollow, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o4010000, "O_SYNC"),
        (0o20200000, "O_TMPFILE"),
        (0o10000000, "O_PATH"),
    ];
    // Only the low 32 bits are flags (the C type is int).
    let flags = flags & 0xffff_ffff;
    let mut parts = vec![match flags & 0o3 {
        0 => "O_RDONLY".to_string(),
        1 => "O_WRONLY".to_string(),
        2 => "O_RDWR".to_string(),
        _ => "O_ACCMODE".to_string(),
    }];
    let mut rest = flags & !0o3;
    // Composite flags first so O_SYNC does not also print O_DSYNC.
    let mut ordered: Vec<(u64, &str)> = table.to_vec();
    ordered.sort_by_key(|&(v, _)| std::cmp::Reverse(v.count_ones()));
    let mut found = Vec::new();
    for (v, name) in ordered {
        if rest & v == v {
            found.push((v, name));
            rest &= !v;
        }
    }
    found.sort_by_key(|&(v, _)| v.trailing_zeros());
    parts.extend(found.into_iter().map(|(_, n)| n.to_string()));
    if rest != 0 {
        parts.push(format!("0{rest:o}"));
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open() {
        assert_eq!(open_flags(Arch::X86_64, 0), "O_RDONLY");
        assert_eq!(open_flags(Arch::X86_64, 577), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(
            open_flags(Arch::X86_64, 0o2000000 | 0o200000),
            "O_RDONLY|O_DIRECTORY|O_CLOEXEC"
        );
        assert_eq!(open_flags(Arch::Arm64, 0o40000), "O_RDONLY|O_DIRECTORY");
        assert_eq!(open_flags(Arch::X86_64, 0o4010001), "O_WRONLY|O_SYNC");
        assert_eq!(open_flags(Arch::X86_64, 0o100000000), "O_RDONLY|0100000000");
    }
}
