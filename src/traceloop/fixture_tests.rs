//! Decoding a real dump: the seed's multiplication demo recorded by the BPF program
//! (`testdata/multiplication.bin`: the container's window, records in the BPF layout).

use super::decode::Decoder;
use super::format::SyscallFormats;
use super::line::{format_line, Timebase};
use super::record::{parse_records, select_window, traceloop_layout};
use super::syscalls::Arch;

const MNTNS: u64 = 4026532178;
const HEAD: u64 = 193;

fn lines() -> Vec<String> {
    let records = parse_records(
        &traceloop_layout().expect("traceloop layout"),
        include_bytes!("testdata/multiplication.bin"),
    )
    .expect("parse");
    let window = select_window(records, MNTNS, 0, HEAD, 4096);
    assert_eq!(window.len(), 193);
    let events = Decoder::new(Arch::X86_64, SyscallFormats::fallback()).decode(&window);
    let base = Timebase::of(&events);
    events.iter().map(|e| format_line(e, base)).collect()
}

#[test]
fn multiplication_demo() {
    let l = lines();
    let find = |needle: &str| l.iter().any(|x| x.ends_with(needle));
    assert!(
        find(r#"[bc] write(fd=1, buf="42\n", count=3) = 3"#),
        "{l:#?}"
    );
    assert!(find(r#"[sh] write(fd=1, buf="3*7*2\n", count=6) = 6"#));
    assert!(find(
        r#"[cat] openat(dfd=-100, filename="/tmp/file-3240", flags=O_RDONLY, mode=0) = -2 (ENOENT)"#
    ));
    assert!(find(
        r#"[sh] openat(dfd=-100, filename="/tmp/file-16130", flags=O_WRONLY|O_CREAT|O_TRUNC, mode=0666) = 3"#
    ));
    assert!(find(
        r#"[cat] write(fd=2, buf="cat: can't open '/tmp/file-3240': No such file or directory\n", count=60) = 60"#
    ));
    assert!(find("[cat] exit_group(error_code=1) ..."));
    assert!(l[0].starts_with("00:00.000000000 "));
}
