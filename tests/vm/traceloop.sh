# Runs inside the VM (see boot.sh): traceloop (with --host) records a namespace made with unshare.
# Prints the JSON records that carry the marker, then ig's stderr behind "stderr: ". (The host
# namespace's own buffer is filled by ig's own syscalls within seconds: not checked here.)
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
unshare -m sh -c 'echo vm-unshared-write >/tmp/unshared.txt'
wait $ig_pid
echo "ig-exit: $?"
grep -E 'vm-unshared-write' /tmp/out.json
sed 's/^/stderr: /' /tmp/err.txt
