# Runs inside the VM (see boot.sh): trace_exec on this kernel, successful and failed execs, in
# the host's mount namespace and in one of its own. Prints ig's JSON events, then its stderr
# behind "stderr: ".
export IG_STORE=/tmp/store
uname -r | sed 's/^/release: /'
ig run trace_exec --host --ignore-failed=false --paths -o json --timeout 30 >/tmp/out.json 2>/tmp/err.txt &
ig_pid=$!
i=0
# Until ig is attached: a marker exec every 200 ms.
while ! grep -q vm-ready /tmp/out.json 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && break
    /bin/echo vm-ready >/dev/null
    sleep 0.2
done
/bin/echo vm-marker a b >/dev/null
/nonexistent/vm-failed x 2>/dev/null
unshare -m /bin/echo vm-unshared >/dev/null
sleep 2
kill -INT $ig_pid
wait $ig_pid
echo "ig-exit: $?"
grep -E 'vm-marker|vm-failed|vm-unshared' /tmp/out.json
sed 's/^/stderr: /' /tmp/err.txt
