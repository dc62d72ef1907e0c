# Runs inside the VM (see boot.sh): gadgets built once on the host (tests/gadgets: trace_open on
# a tracepoint, kprobe_open on a kprobe, fentry_open on fentry), imported from one OCI archive
# and run unchanged. For each: "<gadget>: <event JSON>" for the marker's opens, "ig-exit
# <gadget>: N", and ig's stderr behind "stderr <gadget>: ".
export IG_STORE=/tmp/store
uname -r | sed 's/^/release: /'
ig image import /work/gadgets.tar >/dev/null 2>/tmp/import.txt || sed 's/^/stderr import: /' /tmp/import.txt
for g in trace_open kprobe_open fentry_open; do
    ig run vm/$g:v1 --verify-image=false --host -o json --timeout 30 >/tmp/$g.json 2>/tmp/$g.err &
    pid=$!
    i=0
    # Until ig is attached (or gave up): an open of a marker every 200 ms.
    while ! grep -q "vm-ready-$g" /tmp/$g.json 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && break
        kill -0 $pid 2>/dev/null || break
        cat /tmp/vm-ready-$g 2>/dev/null
        sleep 0.2
    done
    cat /tmp/vm-marker-$g 2>/dev/null
    sleep 1
    kill -INT $pid 2>/dev/null
    wait $pid
    echo "ig-exit $g: $?"
    grep "vm-marker-$g" /tmp/$g.json | sed "s/^/$g: /"
    sed "s/^/stderr $g: /" /tmp/$g.err
done
# Probing: a CO-RE relocation no kernel can resolve, and a kernel whose BTF cannot be found.
ig run vm/core_missing:v1 --verify-image=false --host --timeout 10 >/dev/null 2>/tmp/core.err
echo "ig-exit core_missing: $?"
sed 's/^/stderr core_missing: /' /tmp/core.err
mount -t tmpfs none /sys/kernel/btf
ig run trace_exec --host --timeout 10 >/dev/null 2>/tmp/nobtf.err
echo "ig-exit nobtf: $?"
sed 's/^/stderr nobtf: /' /tmp/nobtf.err
umount /sys/kernel/btf
