# Runs inside the VM (see boot.sh): traceloop (with --host) records the host's mount namespace and
# one made with unshare. Prints the JSON records that carry the markers, then ig's stderr behind
# "stderr: ".
export IG_STORE=/tmp/store
uname -r | sed 's/^/release: /'
ig run traceloop --host -o json --timeout 12 >/tmp/out.json 2>/tmp/err.txt &
ig_pid=$!
i=0
while ! grep -q "recording syscalls" /tmp/err.txt 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && break
    sleep 0.2
done
echo vm-host-write >/tmp/host.txt
unshare -m sh -c 'echo vm-unshared-write >/tmp/unshared.txt'
# ig's own syscalls are not recorded: the host's buffer keeps the write above.
sleep 4
wait $ig_pid
echo "ig-exit: $?"
grep -E 'vm-host-write|vm-unshared-write' /tmp/out.json
sed 's/^/stderr: /' /tmp/err.txt
