# Runs inside a Debian 12 system booted by boot-system.sh, with ig's .deb and the test gadgets
# (gadgets.tar: trace_open, kprobe_open, fentry_open) in /work: installs the .deb with apt,
# starts the service, creates a detached instance, restarts the service and checks the instance
# came back and still traces, runs the test gadgets through the hardened service, then prints
# the unit's journal. Every result is one `key: value` line for tests/system_vm.rs (the
# journal's lines behind "journal: ").
echo "release: $(uname -r)"
echo "init: $(cat /proc/1/comm)"

# Waits up to $1 s for the daemon to answer `ig list`.
answers() {
    i=0
    while [ "$i" -lt "$(($1 * 2))" ]; do
        ig list >/dev/null 2>&1 && return 0
        sleep 0.5
        i=$((i + 1))
    done
    return 1
}
# Waits up to $1 s for instance $2 to be listed as Running.
running() {
    i=0
    while [ "$i" -lt "$(($1 * 2))" ]; do
        ig list 2>/dev/null | grep -E "[[:space:]]$2[[:space:]]" | grep -q Running && return 0
        sleep 0.5
        i=$((i + 1))
    done
    return 1
}

deb=$(ls /work/ig_*.deb)
echo "deb: $(basename "$deb")"
DEBIAN_FRONTEND=noninteractive apt install -y "./$(basename "$deb")" >/tmp/apt.log 2>&1
echo "apt-exit: $?"
sed 's/^/apt: /' /tmp/apt.log | tail -n 15
echo "ig-path: $(command -v ig)"
# --man=no: the VM has no man-db (the pages are checked as files below).
systemd-analyze verify --man=no /usr/lib/systemd/system/ig.service >/tmp/verify.txt 2>&1
echo "verify-exit: $?"
sed 's/^/verify: /' /tmp/verify.txt
echo "enabled-after-install: $(systemctl is-enabled ig 2>&1)"
echo "active-after-install: $(systemctl is-active ig 2>&1)"
for f in /usr/lib/systemd/system/ig.service /usr/share/man/man1/ig.1.gz /usr/share/man/man1/ig-daemon.1.gz \
    /usr/share/bash-completion/completions/ig /usr/share/zsh/vendor-completions/_ig \
    /usr/share/fish/vendor_completions.d/ig.fish; do
    [ -s "$f" ] && echo "installed: $f"
done

systemctl start ig
echo "start-exit: $?"
answers 60 && echo "answers: yes" || echo "answers: no"
echo "active: $(systemctl is-active ig)"
echo "socket: $(stat -c '%U:%G %a' /run/ig/ig.socket 2>&1)"
echo "runtime-dir: $(stat -c '%U:%G %a' /run/ig 2>&1)"
echo "state-dir: $(stat -c '%U:%G %a' /var/lib/ig 2>&1)"
pid1=$(systemctl show -p MainPID --value ig)
echo "capeff: $(awk '/^CapEff/ {print $2}' /proc/"$pid1"/status)"
echo "nonewprivs: $(awk '/^NoNewPrivs/ {print $2}' /proc/"$pid1"/status)"

ig run trace_exec --detach --name execs --host >/tmp/detach.out 2>/tmp/detach.err
echo "detach-exit: $?"
sed 's/^/detach-stderr: /' /tmp/detach.err
running 60 && echo "running-before-restart: yes" || echo "running-before-restart: no"
ig list | sed 's/^/list-before: /'

systemctl restart ig
echo "restart-exit: $?"
answers 60 && echo "answers-after-restart: yes" || echo "answers-after-restart: no"
pid2=$(systemctl show -p MainPID --value ig)
[ "$pid1" != "$pid2" ] && echo "new-pid: yes" || echo "new-pid: no"
running 120 && echo "running-after-restart: yes" || echo "running-after-restart: no"
ig list | sed 's/^/list-after: /'

# The resumed instance traces: an exec after the restart reaches `ig attach`.
ig attach execs -o json >/tmp/attach.json 2>/tmp/attach.err &
attach=$!
# (The pattern as JSON prints it: grep's own exec, which has it escaped, does not match.)
seen='"args":["/bin/echo","vm-after-restart"]'
i=0
while [ $i -lt 120 ] && ! grep -qF "$seen" /tmp/attach.json; do
    /bin/echo vm-after-restart >/dev/null
    sleep 0.5
    i=$((i + 1))
done
kill -INT $attach 2>/dev/null
wait $attach
grep -m 1 -F "$seen" /tmp/attach.json | sed 's/^/attach: /'
sed 's/^/attach-stderr: /' /tmp/attach.err | head -n 5

# Each kind of program through the service's capabilities: detached, then an open of a marker
# until `ig attach` shows it.
IG_STORE=/var/lib/ig/oci-store ig image import /work/gadgets.tar >/dev/null 2>/tmp/import.err
echo "import-exit: $?"
sed 's/^/import-stderr: /' /tmp/import.err
for g in trace_open kprobe_open fentry_open; do
    ig run "vm/$g:v1" --verify-image=false --detach --name "$g" --host >/dev/null 2>/tmp/$g.err
    echo "detach-exit $g: $?"
    sed "s/^/detach-stderr $g: /" /tmp/$g.err
    ig attach "$g" -o json >/tmp/$g.json 2>/dev/null &
    attach=$!
    seen="\"fname\":\"/tmp/vm-marker-$g\""
    i=0
    while [ $i -lt 60 ] && kill -0 $attach 2>/dev/null && ! grep -qF "$seen" /tmp/$g.json; do
        cat "/tmp/vm-marker-$g" 2>/dev/null
        sleep 0.5
        i=$((i + 1))
    done
    kill -INT $attach 2>/dev/null
    wait $attach
    grep -m 1 -F "$seen" /tmp/$g.json | sed "s/^/event $g: /"
    ig delete "$g" >/dev/null
done

echo "restarts: $(systemctl show -p NRestarts --value ig)"
journalctl -u ig --no-pager -o cat | sed 's/^/journal: /'
systemd-analyze security ig 2>/dev/null | tail -n 1 | sed 's/^/security: /'
