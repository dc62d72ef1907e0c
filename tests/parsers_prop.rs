//! Property tests of every parser of untrusted bytes (the same parsers `fuzz/` fuzzes, issue 17
//! item 9): arbitrary bytes and mutated valid inputs never panic, and round trips hold where they
//! exist. Each property runs a bounded number of cases (well under 5 s each in a debug build);
//! the long runs are `make fuzz`. Inputs the fuzzers found are kept in
//! `tests/fixtures/fuzz-regressions/<target>/` and replayed by `fuzz_regressions_replay`.

use std::path::Path;

use ig::containers::parse::{containerd_event, docker_container, parse_rfc3339};
use ig::containers::{procfs, MntnsKey};
use ig::daemon::wire::{batch_datasource, decode_batch, BatchEncoder};
use ig::event::{Event, Value};
use ig::gadget::btf::Btf;
use ig::gadget::decode::Decoder;
use ig::gadget::spec::{encode_param, event_layout, EventLayout, FieldKind, RawField, Semantic};
use ig::gadget::{GadgetSpec, Metadata};
use ig::oci::types::{Descriptor, Index, Manifest, Platform};
use ig::oci::{archive, Reference, Store};
use ig::traceloop::record::{parse_records, select_window, traceloop_layout};

/// The built-in traceloop's record size, which the mutations below write into (checked by
/// `traceloop_record_size_is_the_layouts`).
const RECORD_SIZE: usize = 256;

#[test]
fn traceloop_record_size_is_the_layouts() {
    assert_eq!(traceloop_layout().map(|l| l.size), Some(RECORD_SIZE));
}
use ig::traceloop::{format_line, to_json, Arch, Decoder as SyscallDecoder, SyscallFormats};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// `(position, byte)` edits applied to a valid input.
fn mutate(valid: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut v = valid.to_vec();
    for &(at, b) in edits {
        if !v.is_empty() {
            let i = at % v.len();
            v[i] = b;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    v
}

fn builtin(name: &str) -> &'static ig::builtin::BuiltinGadget {
    ig::builtin::find(name).expect("built-in gadget")
}

// ---- the checks (shared with the regression replay) ----

fn check_btf(data: &[u8]) {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    let ids: Vec<u32> = btf.types().map(|(id, _)| id).collect();
    for id in ids.into_iter().chain([u32::MAX]) {
        let _ = btf.skip_qualifiers(id);
        let _ = btf.resolve(id);
        let _ = btf.typedef_chain(id);
        let _ = btf.size_of(id);
        let _ = event_layout(&btf, id, "event");
    }
}

fn check_elf(data: &[u8]) {
    let Ok(spec) = GadgetSpec::analyze(data, Metadata::default()) else {
        return;
    };
    for p in &spec.params {
        for v in ["1", "-1", "0x7f", "true", "300", "18446744073709551616"] {
            let _ = encode_param(p, v);
        }
    }
    for t in &spec.tracers {
        let mut d = Decoder::new(t.layout.clone());
        let mut out = Vec::new();
        d.decode(&[0xa5; 64], &mut out);
    }
}

fn check_yaml(data: &[u8]) {
    let Ok(meta) = Metadata::parse(data) else {
        return;
    };
    let _ = meta.params();
    for ds in meta.datasource_names() {
        let _ = meta.fields(&ds);
    }
    let _ = meta.skip_when();
    if let Ok(yaml) = meta.to_yaml() {
        let again = Metadata::parse(yaml.as_bytes()).expect("to_yaml output parses again");
        assert_eq!(again.to_yaml().ok().as_deref(), Some(yaml.as_str()));
    }
    let object = builtin("trace_exec").objects[0].1.to_vec();
    let _ = GadgetSpec::analyze(&object, meta);
}

fn check_oci_json(data: &[u8]) {
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let bytes = serde_json::to_vec(&index).expect("serializes");
        let again: Index = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(serde_json::to_vec(&again).ok(), Some(bytes));
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let bytes = serde_json::to_vec(&manifest).expect("serializes");
        let again: Manifest = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(serde_json::to_vec(&again).ok(), Some(bytes));
    }
}

fn check_reference(input: &str) {
    let Ok(r) = Reference::parse_with(input, "ghcr.io/x/gadget") else {
        return;
    };
    let _ = r.short_name();
    let shown = r.to_string();
    let again = Reference::parse_with(&shown, "ghcr.io/x/gadget")
        .unwrap_or_else(|e| panic!("{input:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, r, "{input:?} → {shown:?}");
}

fn check_import(data: &[u8]) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    archive::import(&store, data, "t.tar").map_err(|e| e.to_string())
}

fn check_traceloop(data: &[u8]) {
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
    let events = SyscallDecoder::new(arch, SyscallFormats::fallback()).decode(&records);
    let base = ig::traceloop::Timebase::of(&events);
    for ev in &events {
        let _ = format_line(ev, base);
        let _ = to_json(ev, base, &serde_json::Map::new());
    }
}

/// The layout encoding of the `event_decode` fuzz target: struct size, fields, then records
/// separated by 0xfe.
fn check_event_decode(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let size = u32::from(u16::from_le_bytes([data[0], data[1]]));
    let nfields = usize::from(data[2] % 16);
    let mut rest = &data[3..];
    let mut fields = Vec::new();
    for i in 0..nfields {
        if rest.len() < 9 {
            break;
        }
        let (f, tail) = rest.split_at(9);
        rest = tail;
        let (offset, n) = (u32_at(&f[1..5]), u32_at(&f[5..9]));
        let kind = match f[0] % 6 {
            0 => FieldKind::Int {
                size: n,
                signed: f[0] & 0x80 != 0,
            },
            1 => FieldKind::Bool,
            2 => FieldKind::Str { len: n },
            3 => FieldKind::StrList {
                len: n,
                count: (f[0] & 0x40 != 0).then_some(usize::from(f[0] >> 3) % 16),
            },
            4 => FieldKind::Enum {
                size: n,
                signed: f[0] & 0x80 != 0,
                values: vec![("ONE".into(), 1), ("MINUS".into(), -1)],
            },
            _ => FieldKind::Bytes { len: n },
        };
        fields.push(RawField {
            name: format!("f{i}"),
            offset,
            kind,
            semantic: Semantic::Plain,
        });
    }
    let mut decoder = Decoder::new(EventLayout {
        struct_name: "event".into(),
        size,
        fields,
    });
    let mut out: Vec<Value> = Vec::new();
    for record in rest.split(|&b| b == 0xfe) {
        out.clear();
        decoder.decode(record, &mut out);
    }
}

fn decode_all(batch: &[u8]) -> Result<Vec<Event>, String> {
    let mut scratch = Event { values: Vec::new() };
    let mut events = Vec::new();
    decode_batch(batch, &mut scratch, |e| {
        events.push(e.clone());
        true
    })?;
    Ok(events)
}

fn check_wire(data: &[u8]) {
    let _ = batch_datasource(data);
    let Ok(events) = decode_all(data) else {
        return;
    };
    let mut enc = BatchEncoder::new(7);
    for e in &events {
        enc.push(e);
    }
    if let Some((count, bytes)) = enc.take() {
        assert_eq!(count as usize, events.len());
        assert_eq!(decode_all(&bytes).expect("our encoding decodes"), events);
    }
}

fn check_runtime(data: &[u8]) {
    use prost::Message;
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(info) =
                serde_json::from_slice::<bollard::models::ContainerInspectResponse>(data)
            {
                let _ = docker_container(info, None, 1, MntnsKey::default());
            }
        }
        1 => {
            let _ = serde_json::from_slice::<Vec<bollard::models::ContainerSummary>>(data);
        }
        2 => {
            let _ = serde_json::from_slice::<bollard::models::EventMessage>(data);
        }
        3 => {
            if let Ok(env) = containerd_client::types::Envelope::decode(data) {
                let _ = containerd_event(env);
            }
        }
        4 => {
            let _ = parse_rfc3339(&String::from_utf8_lossy(data));
        }
        _ => {
            let _ = procfs::parse_cgroup(&String::from_utf8_lossy(data));
        }
    }
}

// ---- valid inputs to mutate ----

fn valid_tar() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let r = ig::builtin::seed(&store, builtin("trace_exec")).expect("seed");
    let mut out = Vec::new();
    archive::export(&store, &[r], &mut out, "t.tar").expect("export");
    out
}

fn btf_of(object: &[u8]) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let object = object.to_vec(); // the ELF reader wants its input aligned
    let file = object::File::parse(&object[..]).expect("elf");
    let section = file.section_by_name(".BTF").expect(".BTF");
    section.data().expect("data").to_vec()
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<bool>().prop_map(Value::Bool),
        ".{0,12}".prop_map(Value::Str),
        prop::collection::vec(".{0,6}", 0..4).prop_map(Value::List),
    ]
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    (
        "[a-z./+0-9-]{0,30}",
        "sha256:[0-9a-f]{64}",
        any::<u64>(),
        prop::option::of("[a-z./+]{0,20}"),
        prop::option::of(("[a-z0-9]{0,8}", "[a-z]{0,8}")),
        prop::collection::btree_map(".{0,10}", ".{0,10}", 0..3),
    )
        .prop_map(
            |(media_type, digest, size, artifact_type, platform, annotations)| Descriptor {
                media_type,
                digest,
                size,
                artifact_type,
                platform: platform.map(|(architecture, os)| Platform { architecture, os }),
                annotations,
            },
        )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn btf_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        check_btf(&data);
    }

    #[test]
    fn btf_header_with_random_types_never_panics(
        types in prop::collection::vec(any::<u32>(), 0..48),
        strings in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut data = vec![0x9f, 0xeb, 1, 0];
        let type_len = (types.len() * 4) as u32;
        for v in [24, 0, type_len, type_len, strings.len() as u32] {
            data.extend_from_slice(&u32::to_le_bytes(v));
        }
        for t in &types {
            data.extend_from_slice(&t.to_le_bytes());
        }
        data.extend_from_slice(&strings);
        check_btf(&data);
    }

    #[test]
    fn mutated_btf_never_panics(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        let btf = btf_of(builtin("trace_exec").objects[0].1);
        check_btf(&mutate(&btf, &edits, cut));
    }

    #[test]
    fn oci_json_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..128)) {
        check_oci_json(&data);
    }

    #[test]
    fn oci_index_round_trips(manifests in prop::collection::vec(descriptor(), 0..4)) {
        let index = Index::new(manifests);
        let bytes = serde_json::to_vec(&index).unwrap();
        let again: Index = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(again.manifests, index.manifests);
        check_oci_json(&bytes);
    }

    #[test]
    fn reference_round_trips(
        input in "([a-z0-9.:-]{1,12}/)?[a-z0-9._/-]{1,20}(:[A-Za-z0-9._-]{1,10})?(@sha256:[0-9a-f]{64})?",
    ) {
        check_reference(&input);
    }

    #[test]
    fn reference_any_text_never_panics(input in ".{0,40}") {
        check_reference(&input);
    }

    #[test]
    fn traceloop_records_never_panic(
        head in prop::collection::vec(any::<u8>(), 17),
        records in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), RECORD_SIZE), 0u8..6, any::<u16>(), 0u32..500),
            0..12,
        ),
    ) {
        let mut data = head;
        for (mut r, kind, data_len, nr) in records {
            // traceloop_record (gadgets/traceloop/program.bpf.c): kind, data_len, syscall_nr.
            r[112] = kind;
            r[114..116].copy_from_slice(&data_len.to_le_bytes());
            r[92..96].copy_from_slice(&nr.to_le_bytes());
            data.extend_from_slice(&r);
        }
        check_traceloop(&data);
    }

    #[test]
    fn event_decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        check_event_decode(&data);
    }

    #[test]
    fn wire_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..128)) {
        check_wire(&data);
    }

    #[test]
    fn wire_round_trips(
        ds in any::<u32>(),
        events in prop::collection::vec(prop::collection::vec(value(), 0..6), 1..5),
    ) {
        let events: Vec<Event> = events.into_iter().map(|values| Event { values }).collect();
        let mut enc = BatchEncoder::new(ds);
        for e in &events {
            enc.push(e);
        }
        let (count, bytes) = enc.take().unwrap();
        prop_assert_eq!(count as usize, events.len());
        prop_assert_eq!(batch_datasource(&bytes), Ok(ds));
        prop_assert_eq!(decode_all(&bytes).unwrap(), events);
    }

    #[test]
    fn runtime_answers_never_panic(data in prop::collection::vec(any::<u8>(), 0..128)) {
        check_runtime(&data);
    }

    #[test]
    fn docker_timestamps_never_panic(
        s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2}|.{0,3})",
    ) {
        let _ = parse_rfc3339(&s);
    }

    #[test]
    fn cgroup_text_never_panics(s in "([0-9]{1,2}:[a-z,]{0,8}:(/[a-z0-9.-]{0,70}){0,4}\n){0,4}") {
        let _ = procfs::parse_cgroup(&s);
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn mutated_elf_never_panics(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        for (_, object) in builtin("trace_exec").objects {
            check_elf(&mutate(object, &edits, cut));
        }
    }

    #[test]
    fn mutated_gadget_yaml_never_panics(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<usize>()),
    ) {
        check_yaml(&mutate(builtin("trace_exec").metadata, &edits, cut));
    }

    #[test]
    fn gadget_yaml_text_never_panics(s in "([a-zA-Z ]{0,6}(: |:\n  |- |\n|\\{|\\}|\\[|\\]|&a |\\*a|!!int |\"|'|#)){0,24}") {
        check_yaml(s.as_bytes());
    }

    #[test]
    fn containerd_envelopes_never_panic(
        topic in prop_oneof![Just("/tasks/start"), Just("/tasks/exit"), Just("/tasks/delete"), Just("/containers/delete"), Just("/x")],
        type_url in "[a-z./]{0,30}",
        value in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let env = containerd_client::types::Envelope {
            timestamp: None,
            namespace: "default".into(),
            topic: topic.into(),
            event: Some(prost_types::Any { type_url, value }),
        };
        let _ = containerd_event(env);
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn mutated_archive_never_panics(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<usize>()),
    ) {
        let _ = check_import(&mutate(&valid_tar(), &edits, cut));
    }
}

#[test]
fn docker_inspect_of_a_real_shape_converts() {
    let json = br#"{"Id":"abc","Name":"/web","State":{"Status":"running","Pid":42,
        "StartedAt":"2024-11-23T21:24:31.123456789Z"},"Config":{"Image":"busybox",
        "Labels":{"io.kubernetes.pod.name":"p"}}}"#;
    let info = serde_json::from_slice(json).unwrap();
    let c = docker_container(info, None, 42, MntnsKey::default()).expect("a container");
    assert_eq!((c.name.as_str(), c.pid), ("web", 42));
    assert!(c.started_at.is_some());
}

#[test]
fn a_valid_archive_imports() {
    let tags = check_import(&valid_tar()).expect("imports");
    assert_eq!(tags.len(), 1, "{tags:?}");
}

/// Every input a fuzz target crashed on, kept under `tests/fixtures/fuzz-regressions/<target>/`,
/// runs through the same check again (and must not panic).
#[test]
fn fuzz_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-regressions");
    let mut ran = 0;
    for dir in std::fs::read_dir(&root).expect("fuzz-regressions directory") {
        let dir = dir.unwrap().path();
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            match target.as_str() {
                "btf" => check_btf(&data),
                "elf_spec" => check_elf(&data),
                "gadget_yaml" => check_yaml(&data),
                "oci_json" => check_oci_json(&data),
                "reference" => check_reference(&String::from_utf8_lossy(&data)),
                "tar_import" => {
                    let _ = check_import(&data);
                }
                "traceloop_records" => check_traceloop(&data),
                "event_decode" => check_event_decode(&data),
                "wire_batch" => check_wire(&data),
                "runtime_answers" => check_runtime(&data),
                other => panic!("{}: no fuzz target {other}", path.display()),
            }
            ran += 1;
        }
    }
    assert!(ran > 0, "no regression inputs under {}", root.display());
}
