//! Traceloop records (read back from the BPF array): parsing, the window selection, decoding
//! into syscall events and both renderings.
#![no_main]

use ig::traceloop::record::{parse_records, select_window, traceloop_layout};
use ig::traceloop::{format_line, to_json, Arch, Decoder, SyscallFormats, Timebase};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (arch, window, records) = (data[0], &data[1..17], &data[17..]);
    let Some(layout) = traceloop_layout() else {
        return;
    };
    let records = &records[..records.len() / layout.size * layout.size];
    let Ok(records) = parse_records(&layout, records) else {
        return;
    };
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let mntns = records.first().map(|r| r.mntns_id).unwrap_or(0);
    let records = if arch & 0x80 != 0 {
        select_window(
            records,
            mntns,
            u64_of(&window[..8]),
            u64_of(&window[8..]),
            1 << 20,
        )
    } else {
        records
    };
    let arch = if arch & 1 == 0 {
        Arch::X86_64
    } else {
        Arch::Arm64
    };
    let decoder = Decoder::new(arch, SyscallFormats::fallback());
    let events = decoder.decode(&records);
    let base = Timebase::of(&events);
    let extra = serde_json::Map::new();
    for ev in &events {
        let _ = format_line(ev, base);
        let _ = to_json(ev, base, &extra);
    }
});
