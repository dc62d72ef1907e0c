# Runs inside the VM (see boot.sh): trace_exec on this kernel. One run sees everything (successful
# and failed execs, a script, binaries on an overlay's lower and upper layers, a namespace of its
# own); a second one only uid 1234's execs. Prints ig's JSON events (the second run's behind
# "uid: "), then their stderr behind "stderr: ".
export IG_STORE=/tmp/store
uname -r | sed 's/^/release: /'
echo 'vmuser:x:1234:1234::/tmp:/bin/sh' >>/etc/passwd
echo 'vmuser:x:1234:' >>/etc/group
ig run trace_exec --host --ignore-failed=false --paths --parent --exits -o json --timeout 120 >/tmp/out.json 2>/tmp/err.txt &
ig_pid=$!
ig run trace_exec --host --uid 1234 -o json --timeout 120 >/tmp/uid.json 2>/tmp/uid.txt &
uid_pid=$!
i=0
# Until both are attached: a marker exec (as root, and as uid 1234) every 200 ms.
while ! grep -q vm-ready /tmp/out.json 2>/dev/null || ! grep -q vm-uid-ready /tmp/uid.json 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 150 ] && break
    /bin/echo vm-ready >/dev/null
    su -s /bin/sh vmuser -c "/bin/echo vm-uid-ready" >/dev/null
    sleep 0.2
done
/bin/echo vm-marker a b >/dev/null
/nonexistent/vm-failed x 2>/dev/null
unshare -m /bin/echo vm-unshared >/dev/null
su -s /bin/sh vmuser -c "/bin/echo vm-uid-marker" >/dev/null
printf '#!/bin/sh\nexit 0\n' >/tmp/vm-script.sh
chmod +x /tmp/vm-script.sh
/tmp/vm-script.sh vm-script-arg
sh -c 'exit 5' vm-exit
mkdir -p /tmp/ov/lower /tmp/ov/upper /tmp/ov/work /tmp/ov/merged
cp /bin/busybox /tmp/ov/lower/bb-lower
if mount -t overlay overlay -o lowerdir=/tmp/ov/lower,upperdir=/tmp/ov/upper,workdir=/tmp/ov/work /tmp/ov/merged; then
    cp /bin/busybox /tmp/ov/merged/bb-upper
    /tmp/ov/merged/bb-lower echo vm-lower >/dev/null
    /tmp/ov/merged/bb-upper echo vm-upper >/dev/null
fi
sleep 2
kill -INT $ig_pid $uid_pid
wait $ig_pid
echo "ig-exit: $?"
wait $uid_pid
echo "ig-uid-exit: $?"
grep -E 'vm-marker|vm-failed|vm-unshared|vm-script-arg|vm-lower|vm-upper|vm-uid-marker|vm-exit|"exit_code":5' /tmp/out.json
grep -E 'vm-marker|vm-uid-marker' /tmp/uid.json | sed 's/^/uid: /'
sed "s/^/stderr: /" /tmp/err.txt /tmp/uid.txt
