//! Syscall number ↔ name, per architecture.

use super::{syscalls_arm64, syscalls_x86_64};

/// The architectures whose syscall tables are compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// The architecture this binary was built for, if it has a table.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Arm64)
        } else {
            None
        }
    }

    /// From an OCI / Go architecture name (`amd64`, `arm64`) or a Rust/uname one.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "amd64" | "x86_64" | "x86" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    fn table(self) -> &'static [(u32, &'static str)] {
        match self {
            Arch::X86_64 => syscalls_x86_64::SYSCALLS,
            Arch::Arm64 => syscalls_arm64::SYSCALLS,
        }
    }

    /// The name of syscall `nr`, if the table knows it.
    pub fn syscall_name(self, nr: u32) -> Option<&'static str> {
        let table = self.table();
        table
            .binary_search_by_key(&nr, |&(n, _)| n)
            .ok()
            .map(|i| table[i].1)
    }

    /// The number of syscall `name`, if the table knows it.
    pub fn syscall_nr(self, name: &str) -> Option<u32> {
        self.table()
            .iter()
            .find(|&&(_, n)| n == name)
            .map(|&(nr, _)| nr)
    }

    /// All (number, name) pairs, sorted by number.
    pub fn syscalls(self) -> &'static [(u32, &'static str)] {
        self.table()
    }

    /// A display name for `nr`: the table name or `syscall_<nr>`.
    pub fn display_name(self, nr: u32) -> String {
        match self.syscall_name(nr) {
            Some(name) => name.to_string(),
            None => format!("syscall_{nr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_numbers() {
        assert_eq!(Arch::X86_64.syscall_name(0), Some("read"));
        assert_eq!(Arch::X86_64.syscall_name(257), Some("openat"));
        assert_eq!(Arch::X86_64.syscall_name(262), Some("newfstatat"));
        assert_eq!(Arch::X86_64.syscall_nr("write"), Some(1));
        assert_eq!(Arch::X86_64.syscall_name(100_000), None);
        assert_eq!(Arch::X86_64.display_name(100_000), "syscall_100000");
    }

    #[test]
    fn arm64_numbers() {
        assert_eq!(Arch::Arm64.syscall_name(56), Some("openat"));
        assert_eq!(Arch::Arm64.syscall_name(63), Some("read"));
        assert_eq!(Arch::Arm64.syscall_name(64), Some("write"));
        assert_eq!(Arch::Arm64.syscall_name(79), Some("newfstatat"));
        assert_eq!(Arch::Arm64.syscall_nr("open"), None);
    }

    #[test]
    fn tables_sorted() {
        for arch in [Arch::X86_64, Arch::Arm64] {
            let t = arch.syscalls();
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
