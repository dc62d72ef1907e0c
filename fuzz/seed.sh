#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with valid inputs, so the fuzzers start from real shapes and mutate
# them: the built-in gadget objects and their BTF, the gadgets' gadget.yaml, an exported image
# (tar, index, manifest), traceloop records, and what the local dockerd answers. Best effort: a
# seed whose source is missing is left out. Usage: fuzz/seed.sh [IG_BINARY]
set -u
cd "$(dirname "$0")"
ig=${1:-../target/debug/ig}
c=corpus
mkdir -p $c/{btf,elf_spec,gadget_yaml,oci_json,reference,tar_import,traceloop_records,event_decode,wire_batch,runtime_answers}

for o in $(find target ../target -path '*/build/ig-*/out/*.o' 2>/dev/null | head -8); do
    n=$(basename "$o")
    cp "$o" "$c/elf_spec/$n"
    llvm-objcopy --dump-section ".BTF=$c/btf/$n.btf" "$o" /dev/null 2>/dev/null || true
done
for y in ../gadgets/*/gadget.yaml; do cp "$y" "$c/gadget_yaml/$(basename "$(dirname "$y")").yaml"; done

i=0
for r in trace_exec ghcr.io/a/b:v1 localhost:5000/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
    127.0.0.1:5000/demo/trace_exec:v1 docker.io/library/busybox:1.36 a/b/c/d:tag_1.2-3; do
    printf '%s' "$r" > $c/reference/$i; i=$((i + 1))
done

if [ -x "$ig" ]; then
    store=$(mktemp -d)
    if IG_STORE=$store "$ig" image inspect trace_exec >/dev/null 2>&1 &&
        IG_STORE=$store "$ig" image export trace_exec $c/tar_import/trace_exec.tar >/dev/null 2>&1; then
        cp "$store/index.json" $c/oci_json/store-index.json
        for b in "$store"/blobs/sha256/*; do
            head -c1 "$b" | grep -q '{' && cp "$b" "$c/oci_json/$(basename "$b" | cut -c1-16).json"
        done
    fi
    rm -rf "$store"
fi

# 17-byte header (arch, window) then records.
rec=../src/traceloop/testdata/multiplication.bin
if [ -f "$rec" ]; then
    { printf '\x80'; head -c16 /dev/zero; head -c 4800 "$rec"; } > $c/traceloop_records/multiplication
    { printf '\x00'; head -c16 /dev/zero; cat "$rec"; } > $c/traceloop_records/multiplication-all
fi

sock=/var/run/docker.sock
if [ -S "$sock" ]; then
    { printf '\x01'; curl -s --unix-socket $sock 'http://d/containers/json?all=1'; } > $c/runtime_answers/list.json
    for id in $(curl -s --unix-socket $sock 'http://d/containers/json?all=1' | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 | head -3); do
        { printf '\x00'; curl -s --unix-socket $sock "http://d/containers/$id/json"; } > $c/runtime_answers/inspect-${id:0:12}.json
    done
fi
printf '\x02{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","image":"busybox"}},"time":1700000000}' > $c/runtime_answers/event.json
printf '\x042024-11-23T21:24:31.123456789Z' > $c/runtime_answers/time
printf '\x050::/system.slice/docker-b48c14bfaa2a3bc8825a12b69748ce1185adbb80a64164f729b1c53f088c5118.scope\n' > $c/runtime_answers/cgroup
# EventBatch{datasource 3, events [[U64 7, Str "abc", List ["xy"]]]}
printf '\x08\x03\x12\x13\x0a\x02\x08\x07\x0a\x05\x22\x03abc\x0a\x06\x2a\x04\x0a\x02xy' > $c/wire_batch/batch
# Layout: size 64, 6 fields (int, bool, str, strlist, enum, bytes), then two records.
printf '\x40\x00\x06\x00\x00\x00\x00\x00\x08\x00\x00\x00\x01\x08\x00\x00\x00\x01\x00\x00\x00\x02\x09\x00\x00\x00\x10\x00\x00\x00\x43\x19\x00\x00\x00\x10\x00\x00\x00\x84\x29\x00\x00\x00\x04\x00\x00\x00\x05\x2d\x00\x00\x00\x10\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x01comm\x00\xfeshort' > $c/event_decode/layout
echo "seeded: $(find $c -type f | wc -l) inputs"
