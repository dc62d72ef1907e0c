//! errno number → name.

use super::errno_table::ERRNOS;

/// Kernel-internal codes that user space never sees but syscall exit tracepoints do.
const KERNEL_INTERNAL: &[(i32, &str)] = &[
    (512, "ERESTARTSYS"),
    (513, "ERESTARTNOINTR"),
    (514, "ERESTARTNOHAND"),
    (515, "ENOIOCTLCMD"),
    (516, "ERESTART_RESTARTBLOCK"),
    (517, "EPROBE_DEFER"),
    (518, "EOPENSTALE"),
    (519, "ENOPARAM"),
];

/// The symbolic name of a positive errno (`2` → `ENOENT`).
pub fn name(errno: i32) -> Option<&'static str> {
    ERRNOS
        .binary_search_by_key(&errno, |&(n, _)| n)
        .ok()
        .map(|i| ERRNOS[i].1)
        .or_else(|| {
            KERNEL_INTERNAL
                .iter()
                .find(|&&(n, _)| n == errno)
                .map(|&(_, s)| s)
        })
}

/// If a raw syscall return value is an error (`-4095..=-1`), its positive errno.
pub fn from_ret(ret: i64) -> Option<i32> {
    if (-4095..0).contains(&ret) {
        i32::try_from(-ret).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(2), Some("ENOENT"));
        assert_eq!(name(11), Some("EAGAIN"));
        assert_eq!(name(512), Some("ERESTARTSYS"));
        assert_eq!(name(4000), None);
        assert_eq!(from_ret(-2), Some(2));
        assert_eq!(from_ret(-5000), None);
        assert_eq!(from_ret(3), None);
    }
}
