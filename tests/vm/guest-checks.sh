#!/bin/bash
# Runs inside the Debian 12 guest booted by scripts/vm-systemd-test, as the
# oneshot tetragond-vm-checks.service ordered after tetragond.service, with
# the package installed the way an administrator would (dpkg -i).
#
# Prints one `GUEST-CHECK PASS|FAIL <name>` line per check, details indented
# below it, and last `GUEST-RESULT SUCCESS|FAILURE`: the host reads these
# lines from the second serial port and decides on them alone.
#
# Checks run in order and build on each other (the policy written by "kill"
# is the one later checks switch, reload, stop and purge).
set -euo pipefail

MANAGER=(org.tetragond.Tetragond1 /org/tetragond/Tetragond1 org.tetragond.Tetragond1.Manager)
TESTBIN=/usr/local/bin/tetragond-testbin
# getpgrp on x86-64: harmless, and the policy matches only the test binary,
# so nothing else in the guest is killed.
NR=111
POLICY=vm-kill
POLICY_FILE=/etc/policies.d/$POLICY.yaml
DEB=$(ls /root/tetragond_*_amd64.deb)
# The same package with a higher version (scripts/vm-systemd-test makes it):
# installing it is an upgrade in dpkg's terms (prerm upgrade, postinst
# configure OLD-VERSION, which restarts the service).
UPGRADE_DEB=$(ls /root/upgrade/tetragond_*_amd64.deb 2>/dev/null || true)
# Where the daemon pins its programs' links, one folder per generation.
PINS=/sys/fs/bpf/tetragond
# The kill must follow the copy of the file without any command. The bound is
# loose on purpose: under TCG the first policy's program load (the verifier,
# emulated) alone takes seconds, where hardware takes well under one. The
# measured time is printed either way.
KILL_WITHIN_MS=${KILL_WITHIN_MS:-8000}
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

passed=0
failed=0

note() { echo "    $*"; }
indent() { sed 's/^/    | /'; }

# expect DESCRIPTION COMMAND...: runs COMMAND; on failure says what was expected.
expect() {
    local what=$1
    shift
    if "$@"; then
        return 0
    fi
    note "expected: $what"
    return 1
}

# check NAME FUNCTION: one reported check. (set -e does not apply inside a
# function called as a condition, so check functions `|| return 1` explicitly.)
check() {
    local name=$1 start
    start=$(date +%s%N)
    if "$2"; then
        echo "GUEST-CHECK PASS $name ($(ms_since "$start") ms)"
        passed=$((passed + 1))
    else
        echo "GUEST-CHECK FAIL $name"
        failed=$((failed + 1))
    fi
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s.
wait_until() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@"; do
        (($(date +%s) < deadline)) || return 1
        sleep 0.1
    done
}

# Runs the test binary once: prints `killed`, `survived` or what else happened.
testbin() {
    local out rc=0
    out=$("$TESTBIN" syscall "$NR" 2>&1) || rc=$?
    if ((rc == 137)); then
        echo killed
    elif ((rc == 0)) && [[ $out == survived ]]; then
        echo survived
    else
        echo "exit=$rc output=$out"
    fi
}
testbin_is() { [[ $(testbin) == "$1" ]]; }

# The policy's row of `tetra tp list -o json`, as JSON.
policy_json() { tetra tp list -o json | jq -c ".[] | select(.name == \"$POLICY\")"; }
policy_field() { policy_json | jq -r ".$1"; }

main_pid() { systemctl show -p MainPID --value tetragond; }
is_active() { systemctl is-active --quiet tetragond; }

# Kernel ids of the BPF programs a process holds open.
prog_ids_of() { grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -un; }
# Of those ids, the ones the kernel still has.
still_loaded() {
    local id
    for id in "$@"; do
        bpftool prog show id "$id" >/dev/null 2>&1 && echo "$id"
    done
    return 0
}

# stop_service: `systemctl stop tetragond`, bounded at 120 s. Past 15 s the
# kernel stacks of tetragond's and tetragond-unload's threads are printed
# (what a slow stop waits on), and the time it took always.
stop_service() {
    local start pids p p2 t said=0
    start=$(date +%s%N)
    systemctl stop tetragond &
    p=$!
    while kill -0 "$p" 2>/dev/null; do
        if ((said == 0 && $(ms_since "$start") > 15000)); then
            said=1
            pids="$(main_pid) $(systemctl show -p MainPID --value tetragond-unload) $(pgrep -x tetragond | tr '\n' ' ')"
            for p2 in $pids; do
                [[ $p2 == 0 ]] && continue
                for t in /proc/"$p2"/task/*; do
                    note "15 s into the stop: $p2/${t##*/} ($(cat "$t"/comm 2>/dev/null), $(awk '/^State/{print $2}' "$t"/status 2>/dev/null)): $(tr '\n' ' ' <"$t"/stack 2>/dev/null)"
                done
            done
            journal_dump 15
        fi
        if (($(ms_since "$start") > 120000)); then
            note "systemctl stop still waiting after 120 s"
            kill "$p" 2>/dev/null
            return 1
        fi
        sleep 0.2
    done
    wait "$p" || return 1
    note "systemctl stop took $(ms_since "$start") ms"
}

journal_dump() { journalctl -u tetragond -u tetragond-unload -b --no-pager -o short-monotonic | tail -n "${1:-25}" | indent; }

# Generation folders under $PINS, space separated (empty: none).
generations() { ls "$PINS" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
# Kernel ids of the loaded BPF programs that are ours, by name (the kernel
# keeps 15 characters): what `bpftool prog` would show of tetragond.
OUR_PROGS='^(tp_raw_sys|tp_syscalls|tp_generic|tp_btf_|raw_tp_from|task_(exec|fork|exit|free)|u(ret)?probe_disp|kprobe_(by_cook|from_st)|(kprobe|fentry|fexit|lsm)_any|fentry_[0-9]|fexit_[0-9]|lsm_[0-9]|probe_(fentry|lsm|overri)|ima_(file|bprm)|tetragond_(ret|tp|kp|raw))'
our_progs() { bpftool prog show -j | jq -r ".[] | select((.name // \"\") | test(\"$OUR_PROGS\")) | \"\\(.id):\\(.name)\"" | tr '\n' ' ' | sed 's/ $//'; }
no_progs_of_ours() { [[ -z $(our_progs) ]]; }

# A victim making the forbidden call in a loop, in the background: one line
# per attempt in $VICTIM_LOG (k: killed by SIGKILL, s: survived, xN: exit N)
# until $VICTIM_STOP exists.
VICTIM_LOG=/tmp/victim.log
VICTIM_STOP=/tmp/victim.stop
victim_start() {
    rm -f "$VICTIM_STOP"
    : >"$VICTIM_LOG"
    (
        while [[ ! -e $VICTIM_STOP ]]; do
            rc=0
            "$TESTBIN" syscall "$NR" >/dev/null 2>&1 || rc=$?
            if ((rc == 137)); then echo k; elif ((rc == 0)); then echo s; else echo "x$rc"; fi
        done >>"$VICTIM_LOG"
    ) &
    VICTIM_PID=$!
}
victim_stop() {
    touch "$VICTIM_STOP"
    wait "$VICTIM_PID" 2>/dev/null || true
}
# Lines of the victim log so far (a phase is the lines between two marks).
victim_mark() { wc -l <"$VICTIM_LOG"; }
# victim_count FROM TO WHAT: attempts with outcome WHAT between two marks.
victim_count() {
    if (($2 <= $1)); then echo 0; return; fi
    sed -n "$(($1 + 1)),$2p" "$VICTIM_LOG" | grep -c "^$3\$" || true
}
# victim_wait N: waits for N more attempts (at most 120 s).
victim_wait() {
    local target=$(($(victim_mark) + $1)) deadline=$(($(date +%s) + 120))
    while (($(victim_mark) < target && $(date +%s) < deadline)); do sleep 0.2; done
}

# --- the checks ----------------------------------------------------------------

check_active() {
    expect "tetragond.service active (it is $(systemctl is-active tetragond))" is_active || { journal_dump; return 1; }
    expect "the start-up line 'tetragond ready' in journalctl -u tetragond" \
        wait_until 5 sh -c "journalctl -u tetragond -b -o cat | grep -q 'tetragond ready'" || { journal_dump; return 1; }
    note "StatusText: $(systemctl show -p StatusText --value tetragond)"
    # Native journal fields (not stdout lines) show the journald logger is
    # on: tracing-journald sends _TRANSPORT=journal with PRIORITY (INFO is
    # 5), TARGET and CODE_FILE; a line on stderr would be _TRANSPORT=stdout
    # with none of them.
    local entry fields
    entry=$(journalctl -u tetragond -b -o json | jq -c 'select((.MESSAGE | type) == "string" and (.MESSAGE | test("tetragond ready")))' | head -1)
    fields=$(jq -r '"\(._TRANSPORT) \(.PRIORITY) \(.TARGET // "-" | split("::")[0]) \(.CODE_FILE != null) \(._SYSTEMD_UNIT)"' <<<"$entry" 2>/dev/null)
    note "journal entry of 'tetragond ready': _TRANSPORT PRIORITY TARGET CODE_FILE? _SYSTEMD_UNIT = $fields"
    expect "'tetragond ready' sent to journald natively: 'journal 5 tetragond true tetragond.service', it is '$fields'" \
        test "$fields" = "journal 5 tetragond true tetragond.service"
}

check_unit_verifies() {
    # --man=no: the image has no man(1); the pages themselves are checked on the host.
    expect "systemd-analyze verify to pass on the installed unit" \
        systemd-analyze verify --man=no /lib/systemd/system/tetragond.service
}

check_kill() {
    cat >"/etc/policies.d/.$POLICY.yaml.tmp" <<EOF
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: $POLICY
spec:
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: syscall64
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["$NR"]
      matchBinaries:
      - operator: In
        values: ["$TESTBIN"]
      matchActions:
      - action: Sigkill
EOF
    expect "the test binary to survive before the policy exists" testbin_is survived || return 1
    local start ms
    start=$(date +%s%N)
    # A rename, as editors and configuration management do: one complete file.
    mv "/etc/policies.d/.$POLICY.yaml.tmp" "$POLICY_FILE"
    expect "the test binary killed within 10 s of the copy" wait_until 10 testbin_is killed || { journal_dump; return 1; }
    ms=$(ms_since "$start")
    note "killed ${ms} ms after the file appeared (no command run)"
    expect "the kill within ${KILL_WITHIN_MS} ms" test "$ms" -le "$KILL_WITHIN_MS" || return 1
    note "tetra: $(policy_json)"
    expect "mode enforce in tetra tp list" test "$(policy_field mode)" = enforce
}

check_monitor() {
    expect "busctl SetMode to succeed as root" busctl call "${MANAGER[@]}" SetMode sss "" "$POLICY" monitor || return 1
    expect "the test binary to survive in monitor mode" testbin_is survived || return 1
    local row
    row=$(policy_json)
    note "tetra: $row"
    expect "mode monitor, mode_source runtime" \
        test "$(jq -r '.mode + "/" + .mode_source' <<<"$row")" = monitor/runtime
}

check_reload() {
    local pid
    pid=$(main_pid)
    expect "systemctl reload to return 0 within 60 s" timeout 60 systemctl reload tetragond || { journal_dump; return 1; }
    expect "tetragond still active after the reload" is_active || return 1
    expect "the same main process after the reload" test "$(main_pid)" = "$pid" || return 1
    expect "a 'reloaded:' line in the journal" sh -c "journalctl -u tetragond -b -o cat | grep -q 'reloaded:'" || { journal_dump; return 1; }
    note "journal: $(journalctl -u tetragond -b -o cat | grep 'reloaded:' | tail -1)"
    note "after reload the mode is $(policy_field mode) ($(policy_field mode_source))"
    # A changed sidecar is read again by the reload: drop the run-time mode,
    # change the sidecar, reload, and the sidecar's mode is the one in force.
    expect "ResetMode as root" busctl call "${MANAGER[@]}" ResetMode ss "" "$POLICY" || return 1
    printf 'mode = "monitor"\n' > "/etc/policies.d/$POLICY.toml"
    expect "systemctl reload after the sidecar change" timeout 60 systemctl reload tetragond || return 1
    expect "mode monitor from the sidecar after the reload" \
        test "$(policy_field mode)/$(policy_field mode_source)" = monitor/sidecar || return 1
    expect "the test binary to survive (sidecar monitor)" testbin_is survived || return 1
    # Back to the state the next checks expect: the sidecar gone, monitor set at run time.
    rm -f "/etc/policies.d/$POLICY.toml"
    expect "SetMode monitor again" busctl call "${MANAGER[@]}" SetMode sss "" "$POLICY" monitor
}

check_unprivileged() {
    local err before
    before=$(policy_field mode)
    if err=$("${NOBODY[@]}" busctl call "${MANAGER[@]}" SetMode sss "" "$POLICY" enforce 2>&1); then
        note "expected: SetMode as uid 65534 denied, but it succeeded"
        return 1
    fi
    note "SetMode as nobody: $err"
    if err=$("${NOBODY[@]}" busctl call "${MANAGER[@]}" Reload 2>&1); then
        note "expected: Reload as uid 65534 denied, but it succeeded"
        return 1
    fi
    note "Reload as nobody: $err"
    expect "the mode unchanged ($before)" test "$(policy_field mode)" = "$before" || return 1
    local out
    out=$("${NOBODY[@]}" tetra tp list 2>&1) || { note "tetra tp list as nobody failed: $out"; return 1; }
    expect "tetra tp list as nobody to show $POLICY" grep -q "$POLICY" <<<"$out" || return 1
    note "tetra tp list as nobody:"
    indent <<<"$out"
    # Properties (Get/GetAll) are open to every user in the bus policy.
    out=$("${NOBODY[@]}" tetra status 2>&1) || { note "tetra status as nobody failed: $out"; return 1; }
    note "tetra status as nobody:"
    indent <<<"$out"
}

check_watchdog() {
    # The daemon must ping the watchdog (WatchdogSec=30 in the unit); without
    # pings systemd kills it after 30 s and Restart= starts a new one.
    local pid usec started now waited
    pid=$(main_pid)
    usec=$(systemctl show -p WatchdogUSec --value tetragond)
    started=$(systemctl show -p ExecMainStartTimestampMonotonic --value tetragond)
    now=$(awk '{printf "%d", $1 * 1000000}' /proc/uptime)
    # Stay until the process has lived 1.5 watchdog periods.
    waited=$((45 - (now - started) / 1000000))
    ((waited > 0)) && sleep "$waited"
    note "WatchdogUSec=$usec, waited ${waited} s; NRestarts=$(systemctl show -p NRestarts --value tetragond)"
    note "last ping (WatchdogTimestampMonotonic): $(systemctl show -p WatchdogTimestampMonotonic --value tetragond) us"
    expect "no automatic restart since boot" test "$(systemctl show -p NRestarts --value tetragond)" = 0 || { journal_dump 15; return 1; }
    expect "the same main process ($pid) 45 s after its start" test "$(main_pid)" = "$pid" || { journal_dump 15; return 1; }
    expect "still active" is_active
}

check_stop_start() {
    local pid ids left
    pid=$(main_pid)
    mapfile -t ids < <(prog_ids_of "$pid")
    expect "the daemon to hold BPF programs" test "${#ids[@]}" -gt 0 || return 1
    note "programs held by $pid: ${ids[*]}"
    note "pinned: generation $(generations): $(ls "$PINS"/*/ 2>/dev/null | tr '\n' ' ')"
    expect "one pinned generation while running (have: $(generations))" \
        sh -c "test \$(ls $PINS | wc -l) -eq 1" || return 1
    expect "systemctl stop to succeed" stop_service || return 1
    left=$(still_loaded "${ids[@]}" | tr '\n' ' ')
    expect "none of them loaded after stop (left: $left)" test -z "$left" || return 1
    expect "no pinned generation after stop (have: $(generations))" test -z "$(generations)" || return 1
    expect "bpftool prog to show none of ours after stop (shows: $(our_progs))" \
        wait_until 10 no_progs_of_ours || return 1
    expect "the test binary to survive with the daemon stopped" testbin_is survived || return 1
    expect "systemctl start to succeed" systemctl start tetragond || { journal_dump; return 1; }
    expect "active again" is_active || return 1
    # The run-time mode is kept in the state folder (StateDirectory=, writable
    # under ProtectSystem=strict): it must outlive the process.
    local row
    row=$(policy_json)
    note "after restart: $row"
    expect "the run-time monitor mode kept across the restart" \
        test "$(jq -r '.mode + "/" + .mode_source' <<<"$row")" = monitor/runtime || return 1
    note "state: $(ls /var/lib/tetragond)"
    expect "the test binary to survive (still monitor)" testbin_is survived || return 1
    expect "tetra tp reset-mode to succeed" tetra tp reset-mode "$POLICY" || return 1
    expect "the policy enforced again once the run-time mode is dropped" wait_until 10 testbin_is killed
}

check_tracefs_missing() {
    # On systems where nothing mounts tracefs the daemon mounts it: that must
    # work inside the unit's sandbox (it lands in the service's own mount
    # namespace). Mask systemd's mount unit so Wants= cannot bring it back.
    expect "systemctl stop" stop_service || return 1
    systemctl mask --runtime --quiet sys-kernel-tracing.mount
    umount /sys/kernel/tracing 2>/dev/null || true
    local rc=0
    if mountpoint -q /sys/kernel/tracing; then
        note "could not unmount /sys/kernel/tracing"
        rc=1
    else
        systemctl start tetragond || rc=1
        if ((rc == 0)); then
            is_active || rc=1
            wait_until 10 testbin_is killed || { note "policy not enforced without a host tracefs"; rc=1; }
            :
            mountpoint -q /sys/kernel/tracing && note "(host namespace now has tracefs too)"
        fi
        journalctl -u tetragond -b -o cat | grep -i 'tracefs\|mount' | tail -5 | sed 's/^/    journal: /'
        ((rc == 0)) || journal_dump 15
    fi
    systemctl unmask --runtime --quiet sys-kernel-tracing.mount
    systemctl start sys-kernel-tracing.mount || true
    return "$rc"
}

check_security() {
    local out
    out=$(SYSTEMD_COLORS=0 COLUMNS=160 systemd-analyze security --no-pager tetragond.service 2>&1) || true
    echo "=== systemd-analyze security BEGIN"
    echo "$out"
    echo "=== systemd-analyze security END"
    note "$(grep 'Overall exposure level' <<<"$out")"
    # The README says 2.2: the number, not the phrase.
    local score
    score=$(sed -n 's/.*Overall exposure level for tetragond\.service: \([0-9][0-9.]*\).*/\1/p' <<<"$out" | head -1)
    expect "an overall exposure level of at most 2.2 (the README's figure), it is '${score:-missing}'" \
        awk -v s="$score" 'BEGIN { exit !(s != "" && s + 0 <= 2.2) }'
}

check_reinstall_restarts() {
    # Same version over itself: postinst configure with the old version as $2,
    # which is the upgrade path (restart, not just start).
    local pid
    pid=$(main_pid)
    expect "dpkg -i over the installed package" dpkg -i "$DEB" >/tmp/dpkg-reinstall.log 2>&1 ||
        { indent </tmp/dpkg-reinstall.log; return 1; }
    expect "active after the upgrade" wait_until 30 is_active || return 1
    expect "a new main process (restarted on upgrade)" test "$(main_pid)" != "$pid"
}

check_no_gap() {
    # A victim loops on the forbidden call while the daemon is killed with
    # SIGKILL (systemd restarts it: Restart=on-failure), restarted with
    # systemctl, and upgraded with dpkg -i of a newer version: every attempt
    # must be killed. The programs are pinned, so the kernel enforces with
    # no daemon at all, and each start loads its own generation before it
    # removes the previous one.
    [[ -n $UPGRADE_DEB ]] || { note "no /root/upgrade/*.deb (scripts/vm-systemd-test makes it)"; return 1; }
    expect "the policy enforced to begin with" wait_until 10 testbin_is killed || return 1
    local pid gen m0 m1 m2 m3 m4 phase name from to rc=0
    victim_start
    victim_wait 5
    m0=$(victim_mark)

    # 1. kill -9, then systemd's automatic restart.
    pid=$(main_pid)
    gen=$(generations)
    note "kill -9 $pid (generation $gen)"
    kill -9 "$pid"
    victim_wait 10
    note "daemon dead, $(victim_count "$m0" "$(victim_mark)" k) attempts killed meanwhile; state $(systemctl show -p ActiveState,SubState --value tetragond | tr '\n' ' ')"
    expect "systemd to restart it (Restart=on-failure)" \
        wait_until 120 sh -c "systemctl is-active --quiet tetragond && test \"\$(systemctl show -p MainPID --value tetragond)\" != $pid" || rc=1
    note "restarted as $(main_pid), NRestarts=$(systemctl show -p NRestarts --value tetragond), generation $(generations)"
    expect "one generation, a new one (was $gen, now $(generations))" \
        sh -c "test \"\$(ls $PINS | wc -l)\" = 1 && test \"\$(ls $PINS)\" != '$gen'" || rc=1
    victim_wait 5
    m1=$(victim_mark)

    # 2. systemctl restart.
    pid=$(main_pid)
    gen=$(generations)
    expect "systemctl restart" timeout 120 systemctl restart tetragond || rc=1
    expect "a new main process after the restart" test "$(main_pid)" != "$pid" || rc=1
    expect "one generation, a new one (was $gen, now $(generations))" \
        sh -c "test \"\$(ls $PINS | wc -l)\" = 1 && test \"\$(ls $PINS)\" != '$gen'" || rc=1
    expect "the stopping daemon saw the restart job and kept its pins" \
        sh -c "journalctl -u tetragond -b -o cat | grep -q 'stopping for a restart'" || rc=1
    victim_wait 5
    m2=$(victim_mark)

    # 3. dpkg -i of a newer version: postinst restarts the service.
    pid=$(main_pid)
    gen=$(generations)
    local before after
    before=$(dpkg-query -W -f='${Version}' tetragond)
    expect "dpkg -i $(basename "$UPGRADE_DEB")" dpkg -i "$UPGRADE_DEB" >/tmp/dpkg-upgrade.log 2>&1 ||
        { indent </tmp/dpkg-upgrade.log; rc=1; }
    after=$(dpkg-query -W -f='${Version}' tetragond)
    note "upgraded $before -> $after"
    expect "a newer version installed" dpkg --compare-versions "$after" gt "$before" || rc=1
    expect "active after the upgrade" wait_until 60 is_active || rc=1
    expect "a new main process after the upgrade" test "$(main_pid)" != "$pid" || rc=1
    expect "one generation, a new one (was $gen, now $(generations))" \
        sh -c "test \"\$(ls $PINS | wc -l)\" = 1 && test \"\$(ls $PINS)\" != '$gen'" || rc=1
    victim_wait 5
    m3=$(victim_mark)
    victim_stop
    m4=$(victim_mark)

    local k s x
    for phase in "kill -9 + automatic restart:$m0:$m1" "systemctl restart:$m1:$m2" "dpkg -i (upgrade):$m2:$m3" "overall:0:$m4"; do
        IFS=: read -r name from to <<<"$phase"
        k=$(victim_count "$from" "$to" k)
        s=$(victim_count "$from" "$to" s)
        x=$((to - from - k - s))
        note "$name: $k attempts killed, $s survived, $x other"
    done
    s=$(victim_count 0 "$m4" s)
    k=$(victim_count 0 "$m4" k)
    expect "every attempt killed ($s survived, $((m4 - k - s)) ended otherwise)" test "$s" = 0 -a "$k" = "$m4" || rc=1
    expect "the victim ran throughout (at least 40 attempts, had $m4)" test "$m4" -ge 40 || rc=1
    note "journal: $(journalctl -u tetragond -b -o cat | grep -E 'took over|stays pinned|earlier run' | tail -4 | tr '\n' '|')"
    ((rc == 0)) || journal_dump 40
    return "$rc"
}

check_stop_after_crash() {
    # kill -9, then `systemctl stop` while systemd waits to restart it: no
    # ExecStopPost= would run then; tetragond-unload.service (stopped with
    # tetragond.service through PartOf=) removes what the dead daemon left.
    local pid
    pid=$(main_pid)
    kill -9 "$pid"
    sleep 0.3
    note "after kill -9: $(systemctl show -p ActiveState,SubState --value tetragond | tr '\n' ' ')"
    expect "still enforced with the daemon dead" testbin_is killed || return 1
    expect "systemctl stop" stop_service || return 1
    # `systemctl stop` waits for tetragond.service's job; the companion's
    # stop job, of the same transaction, ends right after it.
    expect "no pinned generation after the stop (have: $(generations))" \
        wait_until 20 sh -c "test -z \"\$(ls $PINS 2>/dev/null)\"" || { journal_dump; return 1; }
    note "journal of tetragond-unload: $(journalctl -u tetragond-unload -b -o cat | tail -3 | tr '\n' '|')"
    expect "bpftool prog to show none of ours (shows: $(our_progs))" wait_until 10 no_progs_of_ours || return 1
    expect "the test binary to survive" testbin_is survived || return 1
    expect "systemctl start" systemctl start tetragond || { journal_dump; return 1; }
    expect "enforced again" wait_until 10 testbin_is killed
}

check_stop_unloads() {
    # The acceptance's last step: after `systemctl stop`, bpftool prog shows
    # none of ours, and nothing is pinned.
    local before
    before=$(our_progs)
    note "ours before the stop: $before"
    expect "programs of ours loaded while running" test -n "$before" || return 1
    expect "systemctl stop" stop_service || return 1
    expect "no pinned generation (have: $(generations))" test -z "$(generations)" || return 1
    expect "bpftool prog to show none of ours (shows: $(our_progs))" wait_until 10 no_progs_of_ours || return 1
    note "bpftool prog after the stop: $(bpftool prog show | grep -c '^[0-9]*:') programs, none of ours"
    expect "the test binary to survive" testbin_is survived || return 1
    # Back to running for the purge check.
    expect "systemctl start" systemctl start tetragond || { journal_dump; return 1; }
    expect "enforced again" wait_until 10 testbin_is killed
}

check_purge() {
    local ids left
    mapfile -t ids < <(prog_ids_of "$(main_pid)")
    expect "dpkg --purge tetragond" dpkg --purge tetragond >/tmp/dpkg-purge.log 2>&1 ||
        { indent </tmp/dpkg-purge.log; return 1; }
    indent </tmp/dpkg-purge.log
    expect "the service not running" sh -c '! systemctl is-active --quiet tetragond' || return 1
    left=$(still_loaded "${ids[@]}" | tr '\n' ' ')
    expect "no BPF program of the purged daemon loaded (left: $left)" test -z "$left" || return 1
    local d
    for d in /var/lib/tetragond /var/log/tetragond /etc/tetragond /usr/bin/tetragond; do
        expect "$d removed by purge" test ! -e "$d" || return 1
    done
    expect "the policy file, not the package's, left in place" test -f "$POLICY_FILE" || return 1
    expect "the test binary to survive with the package purged" testbin_is survived || return 1
    expect "dpkg -i again" dpkg -i "$DEB" >/tmp/dpkg-install.log 2>&1 ||
        { indent </tmp/dpkg-install.log; return 1; }
    expect "postinst to start the service" wait_until 30 is_active || { journal_dump; return 1; }
    expect "enabled again" systemctl is-enabled --quiet tetragond || return 1
    expect "the policy enforced after reinstall" wait_until 10 testbin_is killed
}

echo "GUEST-INFO $(uname -r), $(systemctl --version | head -1), package $(dpkg-query -W -f='${Version}' tetragond)"
check active check_active
check unit-verifies check_unit_verifies
check kill check_kill
check monitor check_monitor
check reload check_reload
check unprivileged check_unprivileged
check watchdog check_watchdog
check stop-start check_stop_start
check tracefs-missing check_tracefs_missing
check security check_security
check reinstall-restarts check_reinstall_restarts
check no-gap check_no_gap
check stop-after-crash check_stop_after_crash
check stop-unloads check_stop_unloads
check purge check_purge

echo "GUEST-CHECKS $passed passed, $failed failed"
if ((failed == 0)); then
    echo "GUEST-RESULT SUCCESS"
else
    echo "GUEST-RESULT FAILURE"
    echo "    journalctl -u tetragond (last lines):"
    journal_dump 40
fi
