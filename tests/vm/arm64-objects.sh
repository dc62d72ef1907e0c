# Runs inside the arm64 VM (see boot-arm64.sh): every BPF object copied to /work (*.o, the
# arm64 objects of our images) loaded by bpftool, so the arm64 kernel's verifier checks each
# program; nothing is attached. For each: "object NAME: pass", or "object NAME: fail" and
# bpftool's output (libbpf's messages and the verifier log) behind "log NAME: ".
uname -r | sed 's/^/release: /'
uname -m | sed 's/^/machine: /'
bpftool version | head -n 1 | sed 's/^/bpftool: /'
for o in /work/*.o; do
    name=$(basename "$o" .o)
    mkdir -p /sys/fs/bpf/$name
    if bpftool -d prog loadall "$o" /sys/fs/bpf/$name >/tmp/$name.log 2>&1; then
        echo "object $name: pass ($(ls /sys/fs/bpf/$name | wc -l) programs)"
    else
        echo "object $name: fail"
        tail -n 60 /tmp/$name.log | sed "s/^/log $name: /"
    fi
    rm -rf /sys/fs/bpf/$name
done
