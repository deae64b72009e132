#!/bin/sh
# The guest half of scripts/vm-hook-test (busybox sh, run by /init).
#
# Starts tetragond on the private bus /init started, then runs each case in
# enforce mode and again in monitor mode (a TOML sidecar `mode = "monitor"`
# next to the policy): write the policy from /usr/share/tetragond-vm/policies
# into the policy folder, wait until `tetra tp list` says it is enabled in
# that mode, run tetragond-testbin, check what it printed, how it ended and
# the policy's counters (NENFORCE grows in enforce, NMONITOR in monitor, the
# other one stays), then delete the policy and wait until it is gone.
#
# Output, one line each (the host script parses them):
#   GUEST-TEST <case>/<mode> PASS (<seconds> s)
#   GUEST-TEST <case>/<mode> FAIL <what was seen>
#   GUEST-EVENT <line of the events file>  (after the cases, all of them)
#   GUEST-SUMMARY <passed> <failed>
# After a FAIL: `tetra tp list` and the daemon's log tail, indented.
# Every case runs even when earlier ones fail.

TB=/usr/bin/tetragond-testbin
SHARE=/usr/share/tetragond-vm
PDIR=/tmp/policies.d
STATE=/tmp/state
LOG=/tmp/tetragond.log
BUS=unix:path=/run/dbus/bus.sock
CG=/sys/fs/cgroup/tetragond-test
# Seconds to wait for a policy to load (BPF verification is slow under TCG).
WAIT=${POLICY_WAIT:-30}
passed=0
failed=0

tetra() { /usr/bin/tetra --bus "$BUS" "$@"; }

now() { cut -d. -f1 /proc/uptime; }

# A child that exited stays a zombie until waited for: kill -0 still works.
# Alive: its status reads and says neither zombie (Z) nor dead (X: being
# reaped, for an instant, which once read as alive after a Z had not).
alive() { grep -q '^State:[[:space:]]*[^ZX[:space:]]' "/proc/$1/status" 2>/dev/null; }

# `state|mode|npost|nenforce|nmonitor|nratelimited|error` of the policy named $1 from
# `tetra tp list -o json` (pretty-printed: objects at 2 spaces, keys at 4);
# empty when it is not listed.
snapshot() {
    tetra tp list -o json 2>/dev/null | awk -v want="$1" '
        /^  \{/ { split("", v); next }
        /^  \}/ {
            if (v["name"] == want) {
                printf "%s|%s|%s|%s|%s|%s|%s\n", v["state"], v["mode"], v["npost"], v["nenforce"], v["nmonitor"], v["nratelimited"], v["error"]
                exit
            }
            next
        }
        /^    "[a-z_]+": / {
            line = $0
            sub(/^    "/, "", line)
            key = line
            sub(/".*/, "", key)
            val = line
            sub(/^[a-z_]+": /, "", val)
            sub(/,$/, "", val)
            if (val ~ /^".*"$/) val = substr(val, 2, length(val) - 2)
            v[key] = val
        }'
}

# Sets S_STATE S_MODE S_NPOST S_NENFORCE S_NMONITOR S_NRATELIMITED S_ERROR
# for policy $1.
read_snapshot() {
    snap=$(snapshot "$1")
    S_STATE= S_MODE= S_NPOST=0 S_NENFORCE=0 S_NMONITOR=0 S_NRATELIMITED=0 S_ERROR=
    [ -n "$snap" ] || return 1
    IFS='|' read -r S_STATE S_MODE S_NPOST S_NENFORCE S_NMONITOR S_NRATELIMITED S_ERROR <<EOF
$snap
EOF
    return 0
}

counters() { echo "npost=$S_NPOST nenforce=$S_NENFORCE nmonitor=$S_NMONITOR"; }

# --- one test case ------------------------------------------------------------
CASE=
ERRS=
STARTED=0

begin() {
    CASE=$1
    ERRS=
    STARTED=$(now)
    LOG_FROM=$(($(wc -l <"$LOG" 2>/dev/null || echo 0) + 1))
    : >/tmp/case-list.txt
}

# Records a problem of the current case (one line, whatever the input).
bad() {
    msg=$(printf '%s' "$*" | tr '\r\n' '  ')
    ERRS="${ERRS:+$ERRS; }$msg"
}

# For a failed case: `tetra tp list` while its policy was still loaded.
snap_list() {
    tetra tp list >/tmp/case-list.txt 2>&1
}

debug_dump() {
    echo "  --- tetra tp list (before the policy was deleted)"
    sed 's/^/  | /' /tmp/case-list.txt
    echo "  --- tetragond log during the case (last 20 lines)"
    tail -n +"$LOG_FROM" "$LOG" | tail -n 20 | tr -d '\033' | sed 's/^/  | /'
}

finish() {
    if [ -z "$ERRS" ]; then
        echo "GUEST-TEST $CASE PASS ($(($(now) - STARTED)) s)"
        passed=$((passed + 1))
    else
        echo "GUEST-TEST $CASE FAIL $ERRS"
        failed=$((failed + 1))
        debug_dump
    fi
}

# expect WANT_OUTPUT WANT_STATUS COMMAND...: runs COMMAND (30 s at most) and
# checks its stdout (all lines joined by spaces; an empty WANT_OUTPUT
# accepts any) and its exit status (137: killed by SIGKILL).
expect() {
    want=$1
    want_status=$2
    shift 2
    OUT=$(timeout 30 "$@" 2>/tmp/expect.err)
    ST=$?
    OUT=$(echo $OUT)
    if [ "$ST" != "$want_status" ] || { [ -n "$want" ] && [ "$OUT" != "$want" ]; }; then
        err=$(head -c 200 /tmp/expect.err | tr '\n' ' ')
        if [ "$want_status" = 137 ]; then
            want_text="killed by SIGKILL (status 137)"
        else
            want_text="'$want' status $want_status"
        fi
        bad "'$*' printed '$OUT' exit status $ST${err:+ stderr '$err'}, want $want_text"
    fi
}

# load NAME SOURCE MODE: puts SOURCE in the policy folder as NAME.yaml (with
# a NAME.toml sidecar for monitor; the helper PID substituted) and waits
# until NAME is enabled in MODE (any mode when MODE is empty).
load() {
    name=$1
    src=$2
    mode=$3
    rm -f "$PDIR/$name.yaml" "$PDIR/$name.toml"
    if [ "$mode" = monitor ]; then
        # Dotfiles are ignored by the daemon: write, then rename into place.
        echo 'mode = "monitor"' >"$PDIR/.$name.toml.tmp"
        mv "$PDIR/.$name.toml.tmp" "$PDIR/$name.toml"
    fi
    sed -e "s/4194304/${HELPER_PID:-4194304}/" "$src" >"$PDIR/.$name.yaml.tmp"
    mv "$PDIR/.$name.yaml.tmp" "$PDIR/$name.yaml"
    deadline=$(($(now) + WAIT))
    while :; do
        if read_snapshot "$name"; then
            if [ "$S_STATE" = enabled ] && { [ -z "$mode" ] || [ "$S_MODE" = "$mode" ]; }; then
                return 0
            fi
            case "$S_STATE" in *error*) break ;; esac
        fi
        [ "$(now)" -lt "$deadline" ] || break
        sleep 0.2
    done
    case "$S_STATE" in
        *error*) bad "policy $name: state '$S_STATE' mode '$S_MODE' error '$S_ERROR'" ;;
        *) bad "policy $name not enabled${mode:+ in $mode} within ${WAIT} s: state '${S_STATE:-not listed}' mode '$S_MODE' error '$S_ERROR'" ;;
    esac
    return 1
}

# unload NAME: deletes NAME.yaml and its sidecar, waits until it is gone.
unload() {
    rm -f "$PDIR/$1.yaml" "$PDIR/$1.toml"
    deadline=$(($(now) + WAIT))
    while [ -n "$(snapshot "$1")" ]; do
        if [ "$(now)" -ge "$deadline" ]; then
            bad "policy $1 still listed ${WAIT} s after its file was deleted"
            return 1
        fi
        sleep 0.2
    done
}

# run_case NAME MODE TEST [SETUP [CLEANUP]]: one case in one mode. TEST gets
# the mode; the policy is tests/vm/hooks/policies/NAME.yaml.
run_case() {
    name=$1
    mode=$2
    test_fn=$3
    setup_fn=$4
    cleanup_fn=$5
    begin "$name/$mode"
    [ -z "$setup_fn" ] || $setup_fn
    if load "$name" "$SHARE/policies/$name.yaml" "$mode"; then
        before_enforce=$S_NENFORCE
        before_monitor=$S_NMONITOR
        $test_fn "$mode"
        # Counters: the action's own counter grows (give the daemon 5 s to
        # publish), the other mode's stays.
        i=0
        while :; do
            read_snapshot "$name"
            if [ "$mode" = enforce ]; then grown=$S_NENFORCE base=$before_enforce; else grown=$S_NMONITOR base=$before_monitor; fi
            [ "${grown:-0}" -gt "$base" ] && break
            [ $i -ge 25 ] && break
            sleep 0.2
            i=$((i + 1))
        done
        if [ "$mode" = enforce ]; then
            [ "${S_NENFORCE:-0}" -gt "$before_enforce" ] || bad "NENFORCE did not grow ($(counters), was $before_enforce)"
            [ "${S_NMONITOR:-0}" -eq "$before_monitor" ] || bad "NMONITOR grew in enforce mode ($(counters))"
        else
            [ "${S_NMONITOR:-0}" -gt "$before_monitor" ] || bad "NMONITOR did not grow ($(counters), was $before_monitor)"
            [ "${S_NENFORCE:-0}" -eq "$before_enforce" ] || bad "NENFORCE grew in monitor mode ($(counters))"
        fi
    fi
    [ -z "$ERRS" ] || snap_list
    [ -z "$cleanup_fn" ] || $cleanup_fn
    unload "$name"
    finish
}

both_modes() {
    for m in enforce monitor; do
        run_case "$1" "$m" "$2" "$3" "$4"
    done
}

# --- what this kernel cannot serve --------------------------------------------
# has_feature NAME: the daemon's `kernel features:` log line says NAME=yes.
has_feature() { grep -q "kernel features:.* $1=yes" "$LOG"; }

# reason_in FILE: the reason of S_ERROR when it is placed in FILE
# (FILE:LINE:COL: REASON); else the whole error, marked unplaced.
reason_in() {
    case "$S_ERROR" in
        "$1:"[0-9]*:[0-9]*": "*) echo "$S_ERROR" | sed "s|^$1:[0-9]*:[0-9]*: ||" ;;
        *) echo "unplaced: $S_ERROR" ;;
    esac
}

# without_place FILE TEXT: TEXT without a leading `FILE:LINE:COL: ` or `FILE: `.
without_place() { echo "$2" | sed "s|^$1:[0-9]*:[0-9]*: ||; s|^$1: ||"; }

# The policy corpus (tests/corpus): each file loads or is refused as its
# first line says (`# expect: load`, `refuse: TEXT`, `kernel`: must load
# where the BPF LSM is active, may be refused elsewhere, or `feature NAME`:
# loads where the kernel has NAME, refused elsewhere), and `tetra tp
# validate`, which runs the daemon's compile, agrees with the daemon
# loading it from its folder: both accept, or both give the same reason at
# the same line and column. A file that is enabled is then triggered (its
# `# trigger:` line, run by sh with $TB the test binary and /tmp/corpus/tool
# a copy of it) and must write an event of its `# event:` kind, which the
# host checks with all the others against the schema. One case for the
# whole corpus.
# this_kernels FILE: the path of this kernel's FILE under $SHARE/modules
# (its version's: 6.1 for 6.1.x); empty when there is none.
this_kernels() {
    for m in "$SHARE"/modules/*/"$1"; do
        v=$(basename "$(dirname "$m")")
        case "$(uname -r)" in "$v".*) echo "$m" ;; esac
    done
}

corpus_case() {
    begin corpus
    mkdir -p /tmp/corpus && cp "$TB" /tmp/corpus/tool
    # This kernel's module (its version's, 6.1 for 6.1.x), for module hooks.
    module=$(this_kernels module.ko)
    [ -n "$module" ] && cp "$module" /tmp/corpus/module.ko
    [ -f /tmp/corpus/module.ko ] || bad "no module for kernel $(uname -r) in $SHARE/modules"
    n=0
    for f in "$SHARE"/corpus/*.yaml; do
        name=$(basename "$f" .yaml)
        want=$(head -1 "$f" | sed 's/^# expect: //')
        cp "$f" "$PDIR/.$name.yaml.tmp" && mv "$PDIR/.$name.yaml.tmp" "$PDIR/$name.yaml"
        deadline=$(($(now) + WAIT))
        while ! { read_snapshot "$name" && { [ "$S_STATE" = enabled ] || [ "$S_STATE" = load_error ]; }; } && [ "$(now)" -lt "$deadline" ]; do
            sleep 0.2
        done
        daemon=
        # (S_ERROR is the JSON string's text: its quotes stay escaped.)
        [ "$S_STATE" = enabled ] || daemon=$(without_place "$PDIR/$name.yaml" "${S_ERROR:-state ${S_STATE:-not listed}}" | sed 's/\\"/"/g')
        validated=$(tetra tp validate "$f" 2>&1 >/dev/null) && validated=
        validated=$(without_place "$f" "$validated")
        [ "$validated" = "$daemon" ] || bad "$name: validate says '$validated', the daemon '$daemon'"
        case "$want" in
            load) [ -z "$daemon" ] || bad "$name: refused: $daemon" ;;
            kernel)
                if has_feature bpf_lsm_active; then
                    [ -z "$daemon" ] || bad "$name: refused here: $daemon"
                fi
                ;;
            feature\ *)
                if has_feature "${want#feature }"; then
                    [ -z "$daemon" ] || bad "$name: refused with ${want#feature }: $daemon"
                else
                    [ -n "$daemon" ] || bad "$name: loaded without ${want#feature }"
                fi
                ;;
            refuse:*)
                case "$daemon" in
                    *"${want#refuse: }"*) ;;
                    *) bad "$name: '${daemon:-loaded}', want a refusal naming '${want#refuse: }'" ;;
                esac
                ;;
        esac
        echo "GUEST-INFO corpus/$name: ${daemon:-enabled}"
        [ -n "$daemon" ] || corpus_trigger "$f" "$name"
        unload "$name"
        n=$((n + 1))
    done
    [ "$n" -ge 30 ] || bad "only $n corpus files"
    finish
}

# corpus_trigger FILE NAME: runs the file's trigger, then waits for an event
# of its kind from policy NAME.
corpus_trigger() {
    trigger=$(sed -n '2,3s/^# trigger: //p' "$1")
    kind=$(sed -n '2,4s/^# event: //p' "$1")
    if [ -z "$trigger" ] || [ -z "$kind" ]; then
        bad "$2: enabled, and no '# trigger:' and '# event:' lines"
        return
    fi
    TB=$TB sh -c "$trigger" >/dev/null 2>&1
    deadline=$(($(now) + 10))
    while ! cat /tmp/events.log* 2>/dev/null | grep -q "^{\"$kind\":{.*\"policy_name\":\"$2\""; do
        if [ "$(now)" -ge "$deadline" ]; then
            bad "$2: no $kind event 10 s after: $trigger"
            return
        fi
        sleep 0.2
    done
    echo "GUEST-INFO corpus/$2: $kind after: $trigger"
    # Each `# matches: REGEX` of the leading comment lines (as the host
    # test reads them) must match one of the policy's events.
    # (Read from a file, not a pipe: `bad` must run in this shell.)
    sed -n '/^#/!q; s/^# matches: //p' "$1" >/tmp/corpus-matches
    while IFS= read -r re; do
        deadline=$(($(now) + 10))
        until cat /tmp/events.log* 2>/dev/null | grep "^{\"$kind\":{.*\"policy_name\":\"$2\"" | grep -Eq -- "$re"; do
            if [ "$(now)" -ge "$deadline" ]; then
                bad "$2: no $kind event matching: $re"
                break
            fi
            sleep 0.2
        done
    done </tmp/corpus-matches
    # ... and each `# never: REGEX` none of them.
    sed -n '/^#/!q; s/^# never: //p' "$1" >/tmp/corpus-never
    while IFS= read -r re; do
        if cat /tmp/events.log* 2>/dev/null | grep "\"policy_name\":\"$2\"" | grep -Eq -- "$re"; then
            bad "$2: an event it must not post: $re"
        fi
    done </tmp/corpus-never
}

# refused NAME SOURCE REASON: on a kernel without what the policy needs, it
# must be listed load_error with exactly REASON, placed at the line and
# column of its hook (FILE:LINE:COL: REASON), and print GUEST-REFUSED NAME,
# so the host's events check expects none of its events.
refused() {
    name=$1
    begin "$name/refused"
    rm -f "$PDIR/$name.yaml" "$PDIR/$name.toml"
    cp "$2" "$PDIR/.$name.yaml.tmp" && mv "$PDIR/.$name.yaml.tmp" "$PDIR/$name.yaml"
    deadline=$(($(now) + WAIT))
    while ! { read_snapshot "$name" && [ "$S_STATE" = load_error ]; } && [ "$(now)" -lt "$deadline" ]; do
        sleep 0.2
    done
    if [ "$S_STATE" != load_error ]; then
        bad "policy $name: state '${S_STATE:-not listed}', want load_error"
    elif [ "$(reason_in "$PDIR/$name.yaml")" != "$3" ]; then
        bad "policy $name: error '$S_ERROR', want '$PDIR/$name.yaml:LINE:COL: $3'"
    else
        echo "GUEST-REFUSED $name"
    fi
    [ -z "$ERRS" ] || snap_list
    unload "$name"
    finish
}

# The refusals' exact texts (compile/lsm.rs, namespaces.rs, compile/uprobe.rs).
LSM_REFUSAL="the BPF LSM is not active on this kernel (lsm=$(cat /sys/kernel/security/lsm), from /sys/kernel/security/lsm): add \`bpf\` to the \`lsm=\` boot parameter"
UPROBE_REFUSAL="uprobes need BPF cookies (bpf_get_attach_cookie, Linux 5.15), which this kernel lacks"
# uprobe_refusal FILE: the refusal of the policy's first uprobe (compile/uprobe.rs).
uprobe_refusal() {
    path=$(sed -n 's/^ *- path: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$1" | head -1)
    echo "uprobes[0] $path: $UPROBE_REFUSAL"
}
SCOPE_REFUSAL="namespaced policies need bpf_get_current_ancestor_cgroup_id in tracing programs, which this kernel lacks (Linux 5.10 has it for cgroup programs only)"

# lsm_case NAME TEST HOOK: both modes where the BPF LSM is active, else the
# refusal naming the kernel's lsm= list.
lsm_case() {
    if has_feature bpf_lsm_active; then
        both_modes "$1" "$2"
    else
        echo "GUEST-INFO $1: the BPF LSM is not active here: the refusal is checked"
        refused "$1" "$SHARE/policies/$1.yaml" "lsmhooks[0] $3: $LSM_REFUSAL"
    fi
}

# ima_case NAME TEST HOOK: both modes where the kernel can take IMA hashes
# (ima_file_hash); elsewhere the refusal naming what it lacks.
IMA_REFUSAL="imaHash needs sleepable LSM programs calling bpf_ima_file_hash (Linux 5.18), LSM links with BPF cookies (5.19) and a kernel built with IMA (CONFIG_IMA); see \`tetra status\`"
ima_case() {
    if ! has_feature bpf_lsm_active || has_feature ima_file_hash; then
        lsm_case "$@"
    else
        echo "GUEST-INFO $1: no IMA hashes here: the refusal is checked"
        refused "$1" "$SHARE/policies/$1.yaml" "lsmhooks[0] $3: $IMA_REFUSAL"
    fi
}

# uprobe_case NAME TEST: both modes where uprobes have BPF cookies (5.15).
uprobe_case() {
    if has_feature attach_cookie; then
        both_modes "$1" "$2"
    else
        echo "GUEST-INFO $1: no BPF cookies here: the refusal is checked"
        refused "$1" "$SHARE/policies/$1.yaml" "$(uprobe_refusal "$SHARE/policies/$1.yaml")"
    fi
}

# --- the cases ----------------------------------------------------------------

# 1. LSM file_open, Override -13 on /tmp/secret*.
t_lsm_file_open() {
    if [ "$1" = enforce ]; then
        expect "error 13" 0 $TB open /tmp/secret/f
    else
        expect "opened" 0 $TB open /tmp/secret/f
    fi
    expect "opened" 0 $TB open /tmp/other
}

# 1b. The enforced open of 1 while a real-time thread on the same CPU
# wakes every few dozen microseconds and opens another file, through the
# same LSM program: on a preemptible kernel (6.18's lazy model) it preempts
# that program mid-run, and runs it itself, on the same CPU. Every open of
# /tmp/secret/f must still be refused: a program's verdict is its own,
# whoever ran in between.
RACE_OPENS=1000
t_lsm_preempt() {
    out=$(timeout 300 $TB pin 0 race-open /tmp/secret/f /tmp/other $RACE_OPENS 2>&1)
    out=$(echo $out)
    echo "GUEST-INFO lsm-preempt: $out"
    case "$out" in
        "leaked 0 of $RACE_OPENS interrupted "[1-9]*) ;;
        *) bad "'pin 0 race-open' printed '$out', want 'leaked 0 of $RACE_OPENS' and some interruptions" ;;
    esac
}

# 1c. The same race through a kprobe Override on security_file_open,
# both threads opening the denied file. Where the BPF LSM runs, the
# Override is served by the LSM program of file_open (the kernel runs it
# whoever else is inside it); else by fentry and fmod_ret, and the kernel
# does not run an fentry program on a CPU where it is running already (the
# real-time thread preempting the other inside it: its open would go
# through; 5.10 preempts nothing there). Every denied open must fail.
t_override_preempt() {
    out=$(timeout 300 $TB pin 0 race-open /tmp/secret/f /tmp/secret/f $RACE_OPENS 2>&1)
    out=$(echo $out)
    echo "GUEST-INFO override-preempt: $out"
    case "$out" in
        "leaked 0 of $RACE_OPENS interrupted 0") ;;
        *) bad "'pin 0 race-open' printed '$out', want 'leaked 0 of $RACE_OPENS interrupted 0'" ;;
    esac
}

# skipped_runs: the kernel_skipped drops `tetra status` reports (0: none).
skipped_runs() {
    tetra status 2>/dev/null | sed -n 's/.*kernel_skipped=\([0-9]*\).*/\1/p' | grep . || echo 0
}

# 1d. What the kernel skips is reported: the race on a Post-only fentry
# hook (`kernel_functions = "fentry"`), each thread opening its own file
# under /tmp/secret. Every open is an event, or a run the kernel skipped,
# counted as the drop `kernel_skipped` (the programs' recursion_misses,
# Linux 5.12 on; 5.10 counts none and, preempting nothing there, skips
# none).
t_fentry_skipped() {
    before=$(skipped_runs)
    out=$(timeout 300 $TB pin 0 race-open /tmp/secret/f /tmp/secret/g $RACE_OPENS 2>&1)
    out=$(echo $out)
    case "$out" in
        "leaked $RACE_OPENS of $RACE_OPENS interrupted "[0-9]*) ;;
        *) bad "'pin 0 race-open' printed '$out', want every open made" ; return ;;
    esac
    set -- $out
    opens=$((RACE_OPENS + $6))
    # Events and the drop report (made once a second) settle.
    sleep 3
    events=$(cat /tmp/events.log* 2>/dev/null | grep -c '"policy_name":"fentry-skipped"')
    skipped=$(($(skipped_runs) - before))
    missing=$((opens - events))
    echo "GUEST-INFO fentry-skipped: $opens opens, $events events, $missing missing, kernel_skipped $skipped"
    [ "$missing" -le "$skipped" ] || bad "$missing events missing, $skipped counted as kernel_skipped"
}

# 2. LSM bprm_check_security, Override -13 on /tmp/denied-bin.
t_lsm_bprm() {
    if [ "$1" = enforce ]; then
        expect "error 13" 0 $TB exec /tmp/denied-bin probe 1
    else
        expect "survived" 0 $TB exec /tmp/denied-bin probe 1
    fi
    expect "survived" 0 $TB exec /tmp/allowed-bin probe 1
}

# 2b. Post imaHash: the exec of /tmp/ima-denied refused (enforce) with its
# program's hash in the event, which the companion taking it returns the
# verdict after; an mmap_file event with the mapped file's hash.
t_lsm_ima() {
    if [ "$1" = enforce ]; then
        expect "error 13" 0 $TB exec /tmp/ima-denied probe 1
    else
        expect "survived" 0 $TB exec /tmp/ima-denied probe 1
    fi
    expect "mapped" 0 $TB map-exec /tmp/ima/hashed
    ima_posted bprm_check_security /tmp/ima-denied
    ima_posted mmap_file /tmp/ima/hashed
}

# ima_posted HOOK FILE: an event of HOOK carries FILE's hash, in the
# algorithm IMA chose (busybox's ALGOsum computes it here).
ima_posted() {
    posted "\"function_name\":\"$1\".*\"ima_hash\":\"" "$1 event with an ima_hash"
    got=$(cat /tmp/events.log* | grep "\"function_name\":\"$1\"" | grep -o '"ima_hash":"[a-z0-9]*:[0-9a-f]*"' | tail -1)
    got=${got#\"ima_hash\":\"}
    got=${got%\"}
    algo=${got%%:*}
    want="$algo:$("${algo}sum" "$2" 2>/dev/null | cut -d' ' -f1)"
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
        echo "GUEST-INFO $1: ima_hash $got"
    else
        bad "$1: ima_hash '$got', want '$want'"
    fi
}

# 3. LSM socket_connect, Override -1 on 127.0.0.0/8 port 4242.
t_lsm_connect() {
    if [ "$1" = enforce ]; then
        expect "error 1" 0 $TB connect 127.0.0.1 4242
    else
        expect "connected" 0 $TB connect 127.0.0.1 4242
    fi
    expect "connected" 0 $TB connect 127.0.0.1 4243
}

# 3b. LSM path_truncate on a `path` arg, Override -1 on /tmp/trunc/.
t_lsm_truncate() {
    if [ "$1" = enforce ]; then
        expect "error 1" 0 $TB truncate /tmp/trunc/f
    else
        expect "truncated" 0 $TB truncate /tmp/trunc/f
    fi
    expect "truncated" 0 $TB truncate /tmp/other
}

# 4. kprobe security_file_permission, Override -1 on /tmp/perm*: the LSM
# hook file_permission's program where the BPF LSM runs, else an fentry
# program decides and an fmod_ret program returns the errno.
t_kprobe_override() {
    if [ "$1" = enforce ]; then
        expect "error 1" 0 $TB read /tmp/perm/f
    else
        expect "read" 0 $TB read /tmp/perm/f
    fi
    expect "read" 0 $TB read /tmp/other
    if has_feature bpf_lsm_active; then
        grep -q "LSM hook file_permission served by program lsm_" "$LOG" ||
            bad "the log does not say security_file_permission's Override is served by the LSM hook file_permission"
    else
        grep -q "fentry security_file_permission served by program fentry_[0-9a-z]*\( (site [0-9]*)\)\{0,1\} and an fmod_ret program" "$LOG" ||
            bad "the log does not say security_file_permission is served by fentry + fmod_ret"
    fi
}

# 4b. kprobe security_inode_copy_up_xattr, Override argError 1 (Tetragon's
# "discard the xattr") on trusted.secret: overlayfs copies a file up without
# it, whichever value this kernel's overlayfs takes for that (1 before Linux
# 6.12, -ECANCELED since); other xattrs are copied. The xattr's name is the
# hook's first parameter on 5.10 and 6.1, its second on 6.12 and 6.18 (a
# dentry was put first in 2024): the policy is made for this kernel, and
# the other layout is refused at its arg, by BTF.
OVL=/tmp/ovl
copy_up_policy() {
    case "$(uname -r)" in
        5.* | 6.1.*) sed 's/index: 1/index: 0/' "$SHARE/policies/kprobe-copy-up.yaml" ;;
        *) cat "$SHARE/policies/kprobe-copy-up.yaml" ;;
    esac
}
copy_up_mount() {
    mkdir -p $OVL && mount -t tmpfs tmpfs $OVL && mkdir $OVL/lower $OVL/upper $OVL/work $OVL/merged ||
        bad "cannot make $OVL"
    echo data >$OVL/lower/f
    expect "set" 0 $TB setxattr $OVL/lower/f trusted.secret s
    expect "set" 0 $TB setxattr $OVL/lower/f trusted.kept k
    mount -t overlay overlay -o lowerdir=$OVL/lower,upperdir=$OVL/upper,workdir=$OVL/work $OVL/merged ||
        bad "cannot mount overlayfs on $OVL/merged"
}
copy_up_unmount() {
    umount $OVL/merged
    umount $OVL
}
t_kprobe_copy_up() {
    chmod 600 $OVL/merged/f || bad "chmod (the copy-up) failed"
    if [ "$1" = enforce ]; then
        expect "error 61" 0 $TB getxattr $OVL/upper/f trusted.secret
    else
        expect "value s" 0 $TB getxattr $OVL/upper/f trusted.secret
    fi
    expect "value k" 0 $TB getxattr $OVL/upper/f trusted.kept
}
copy_up_case() {
    overlay=$(this_kernels overlay.ko)
    [ -z "$overlay" ] || insmod "$overlay" || echo "GUEST-INFO insmod $overlay failed (built in?)"
    copy_up_policy >/tmp/kprobe-copy-up.yaml
    cp /tmp/kprobe-copy-up.yaml "$SHARE/policies/kprobe-copy-up.yaml"
    both_modes kprobe-copy-up t_kprobe_copy_up copy_up_mount copy_up_unmount
    case "$(uname -r)" in
        5.* | 6.1.*)
            sed 's/index: 0/index: 1/; s/name: kprobe-copy-up/name: copy-up-other/' /tmp/kprobe-copy-up.yaml >/tmp/copy-up-other.yaml
            want="kprobes[0] security_inode_copy_up_xattr: arg 1: function security_inode_copy_up_xattr has no argument 1 in its BTF prototype"
            ;;
        *)
            sed 's/index: 1/index: 0/; s/name: kprobe-copy-up/name: copy-up-other/' /tmp/kprobe-copy-up.yaml >/tmp/copy-up-other.yaml
            want="kprobes[0] security_inode_copy_up_xattr: arg 0: type string reads characters through a pointer; argument 0 is struct dentry * on this kernel (see its BTF); type dentry reads it"
            ;;
    esac
    refused copy-up-other /tmp/copy-up-other.yaml "$want"
}

# 5. kprobe tcp_connect, Sigkill on destination port 4244.
t_kprobe_sigkill() {
    if [ "$1" = enforce ]; then
        expect "" 137 $TB connect 127.0.0.1 4244
    else
        expect "connected" 0 $TB connect 127.0.0.1 4244
    fi
    expect "connected" 0 $TB connect 127.0.0.1 4243
}

# 5b. The same served by an fentry program (the daemon's log says which).
t_kprobe_fentry() {
    t_kprobe_sigkill "$1"
    grep -q "fentry tcp_connect served by program fentry_" "$LOG" ||
        bad "the log does not say tcp_connect is served by an fentry program"
}

# 5c. A return probe with entry args (fexit, or a kretprobe before 5.19):
# security_file_open returned 0 for a file under /tmp/fexit, Sigkill at
# the return.
t_kprobe_return() {
    if [ "$1" = enforce ]; then
        expect "" 137 $TB open /tmp/fexit/f
    else
        expect "opened" 0 $TB open /tmp/fexit/f
    fi
    expect "opened" 0 $TB open /tmp/other
    # Before trampoline cookies (5.19), a kretprobe: fexit there takes slots.
    if has_feature trampoline_cookies; then served="fexit security_file_open served by program fexit_"; else served="kretprobe security_file_open served by program kprobe_"; fi
    grep -q "$served" "$LOG" ||
        bad "the log does not say '$served'"
}

# 5d. More kernel functions than the kprobe program slots (8): twelve, in
# one policy, each posting for a busybox copy only. All are served by
# kprobe_any (by the probed address), and each must post. (Not vfs_rmdir:
# on Debian 11's 5.10, rmdir(2) does not reach its kprobe: inlined into
# do_rmdir there, it seems.)
MANY_FUNCTIONS="vfs_mkdir security_inode_rmdir vfs_unlink vfs_symlink vfs_link vfs_rename vfs_read vfs_write do_filp_open do_truncate do_exit wake_up_new_task"
# What the many-targets cases trigger, all from one busybox copy.
many_actions() {
    B=/tmp/manybin/busybox
    $B mkdir /tmp/many/d
    $B rmdir /tmp/many/d
    $B sh -c 'echo x >/tmp/many/f; echo y >/tmp/many/f'
    $B wc -c /tmp/many/f >/dev/null
    $B sh -c 'read x </tmp/many/f'
    $B chmod 600 /tmp/many/f
    $B ln -s f /tmp/many/s
    $B ln /tmp/many/f /tmp/many/h
    $B mv /tmp/many/h /tmp/many/h2
    $B rm /tmp/many/h2 /tmp/many/s /tmp/many/f
    $B sh -c "$B true; :"
}

# many_posted POLICY WHAT PROGRAM NAMES...: the daemon's log says each of
# NAMES ("WHAT NAME") is served by PROGRAM, and each posted an event of
# POLICY.
many_posted() {
    policy=$1
    what=$2
    program=$3
    shift 3
    for f in "$@"; do
        grep -q "$what $f served by program $program" "$LOG" ||
            bad "the log does not say $what $f is served by $program"
        posted "\"function_name\":\"$f\".*\"policy_name\":\"$policy\"" "$policy event for $f"
    done
}

# posted PATTERN WHAT: an event matching PATTERN is written within 10 s;
# else WHAT is reported missing.
posted() {
    i=0
    while ! cat /tmp/events.log* 2>/dev/null | grep -q "$1"; do
        [ $i -ge 50 ] && { bad "no $2"; return; }
        sleep 0.2
        i=$((i + 1))
    done
}

t_kprobe_many() {
    many_actions
    # shellcheck disable=SC2086
    many_posted kprobe-many kprobe kprobe_any $MANY_FUNCTIONS
    # From 6.6 the kernel says where it put each probe, and kprobe_any is
    # listed there whatever it is; before, it cannot say.
    v=$(uname -r | sed 's/^\([0-9]*\)\.\([0-9]*\).*/\1 \2/')
    set -- $v
    if [ "$1" -gt 6 ] || { [ "$1" -eq 6 ] && [ "$2" -ge 6 ]; }; then said="the kernel says the probe is at 0x"; else said="the kernel does not say where the probe is"; fi
    for f in $MANY_FUNCTIONS; do
        grep -q "kprobe $f served by program kprobe_any (site [0-9]*; $said" "$LOG" ||
            bad "the log does not say '$said' for $f"
    done
}

# many_case NAME TEST: the policy loads and TEST passes, posting.
many_case() {
    begin "$1/post"
    if load "$1" "$SHARE/policies/$1.yaml" ""; then
        "$2"
    fi
    [ -z "$ERRS" ] || snap_list
    unload "$1"
    finish
}

# slots_refused NAME TEXT: without trampoline cookies (before 5.19) the
# policy needs more slot programs than there are: load_error naming the
# limit, and nothing of it attached.
slots_refused() {
    begin "$1/refused"
    cp "$SHARE/policies/$1.yaml" "$PDIR/.$1.yaml.tmp" && mv "$PDIR/.$1.yaml.tmp" "$PDIR/$1.yaml"
    deadline=$(($(now) + WAIT))
    while ! { read_snapshot "$1" && [ "$S_STATE" = load_error ]; } && [ "$(now)" -lt "$deadline" ]; do
        sleep 0.2
    done
    case "$S_STATE/$S_ERROR" in
        "load_error/"*"$2"*) echo "GUEST-REFUSED $1" ;;
        *) bad "policy $1: state '${S_STATE:-not listed}' error '$S_ERROR', want load_error naming '$2'" ;;
    esac
    [ -z "$ERRS" ] || snap_list
    unload "$1"
    finish
}

# 5e. More LSM hooks than the LSM program slots (8): twelve, each posting
# for the busybox copy, all served by lsm_any where links carry cookies.
MANY_LSM_HOOKS="file_open file_permission inode_create inode_mkdir inode_rmdir inode_unlink inode_symlink inode_link inode_rename bprm_check_security task_alloc inode_setattr"
t_lsm_many() {
    many_actions
    # shellcheck disable=SC2086
    many_posted lsm-many "LSM hook" lsm_any $MANY_LSM_HOOKS
}

# 5f. More return probes than the fexit program slots (4): six, served by
# fexit_any where links carry cookies.
t_fexit_many() {
    many_actions
    if has_feature trampoline_cookies; then
        set -- fexit fexit_any
    elif has_feature attach_cookie; then
        set -- kretprobe kprobe_by_cookie
    else
        set -- kretprobe kprobe_from_stub
    fi
    many_posted fexit-many "$1" "$2" vfs_mkdir security_inode_rmdir vfs_unlink vfs_symlink vfs_link vfs_rename
}

# 5g. A hundred policies, each on a kernel function of its own, all
# served by kprobe_any (sites, not slots): all enabled at once, then all
# gone. The functions: the first hundred security_* ones tracefs can
# trace, built in (not in a module), and named by no other function.
HUNDRED=100
hundred_functions() {
    for t in /sys/kernel/tracing /sys/kernel/debug/tracing; do
        [ -r "$t/available_filter_functions" ] && break
    done
    awk 'NF == 3 && $3 ~ /^security_/ { n[$3]++ } END { for (f in n) if (n[f] == 1) print f }' /proc/kallsyms >/tmp/unique-security
    grep -E '^security_[a-z0-9_]+$' "$t/available_filter_functions" |
        awk 'NR == FNR { u[$1] = 1; next } ($1 in u) && !seen[$1]++' /tmp/unique-security - |
        head -n $HUNDRED
}

# hundred_state STATE: how many hundred-* policies `tetra tp list` shows
# in STATE.
hundred_state() {
    tetra tp list -o json 2>/dev/null | awk -v want="$1" '
        /^  \{/ { name = ""; state = ""; next }
        /^  \}/ { if (name ~ /^hundred-/ && state == want) n++; next }
        /^    "name": / { name = $2; gsub(/[",]/, "", name) }
        /^    "state": / { state = $2; gsub(/[",]/, "", state) }
        END { print n + 0 }'
}

# hundred_policy NAME FUNCTION: a Post policy on FUNCTION for a binary
# that never runs.
hundred_policy() {
    printf '%s\n' \
        "apiVersion: cilium.io/v1alpha1" \
        "kind: TracingPolicy" \
        "metadata:" \
        "  name: $1" \
        "spec:" \
        "  kprobes:" \
        "  - call: \"$2\"" \
        "    syscall: false" \
        "    selectors:" \
        "    - matchBinaries:" \
        "      - operator: In" \
        "        values: [\"/nonexistent/hundred\"]" \
        "      matchActions:" \
        "      - action: Post"
}

hundred_case() {
    begin kprobe-hundred/enabled
    names=$(hundred_functions)
    found=$(echo "$names" | grep -c .)
    if [ "$found" -lt $HUNDRED ]; then
        bad "fewer than $HUNDRED traceable security_* functions here: $found"
    else
        i=0
        for f in $names; do
            hundred_policy "hundred-$i" "$f" >"$PDIR/.hundred-$i.yaml.tmp"
            mv "$PDIR/.hundred-$i.yaml.tmp" "$PDIR/hundred-$i.yaml"
            i=$((i + 1))
        done
        deadline=$(($(now) + 3 * WAIT))
        while [ "$(hundred_state enabled)" -lt $HUNDRED ] && [ "$(now)" -lt "$deadline" ]; do
            sleep 1
        done
        n=$(hundred_state enabled)
        [ "$n" -eq $HUNDRED ] || bad "$n of $HUNDRED one-function policies enabled; load_error: $(hundred_state load_error)"
        for f in $names; do
            grep -q "kprobe $f served by program kprobe_any" "$LOG" ||
                bad "the log does not say $f is served by kprobe_any"
        done
    fi
    [ -z "$ERRS" ] || snap_list
    rm -f "$PDIR"/hundred-*.yaml
    deadline=$(($(now) + 3 * WAIT))
    while [ "$(hundred_state enabled)" -gt 0 ] && [ "$(now)" -lt "$deadline" ]; do
        sleep 1
    done
    [ "$(hundred_state enabled)" -eq 0 ] || bad "one-function policies still listed after their files went"
    finish
}

# 5h. More non-syscall tracepoints than the 8 numbered programs there once
# were: twelve (tp-many.yaml), fired by the busybox copy (its forks, execs,
# exits, waits, allocations), each posting: served by tp_generic_any where
# tracepoint links carry a cookie (5.15 on), else each through a stub of
# its own (Debian 11's 5.10).
MANY_TRACEPOINTS="sched/sched_process_fork task/task_newtask sched/sched_wakeup_new sched/sched_process_exec task/task_rename sched/sched_process_exit sched/sched_process_wait signal/signal_generate sched/sched_switch kmem/kmalloc kmem/kfree kmem/mm_page_alloc"
t_tp_many() {
    many_actions
    if has_feature attach_cookie; then program=tp_generic_any; else program=tp_generic_from_stub; fi
    tracepoints_posted tp-many "" "$program"
}

# tracepoints_posted POLICY RAW PROGRAM: each of $MANY_TRACEPOINTS is
# served by PROGRAM as the log says (RAW: "raw " for raw tracepoints,
# named by their event), and posted an event of POLICY.
tracepoints_posted() {
    for tp in $MANY_TRACEPOINTS; do
        if [ -n "$2" ]; then named=${tp#*/}; else named=$tp; fi
        grep -q "${2}tracepoint $named served by program $3" "$LOG" ||
            bad "the log does not say ${2}tracepoint $named is served by $3"
        posted "\"subsys\":\"${tp%/*}\",\"event\":\"${tp#*/}\".*\"policy_name\":\"$1\"" "$1 event for $tp"
    done
}

# 5i. The same twelve as raw tracepoints (raw-tp-many.yaml), more than the
# 8 numbered tp_btf programs there once were: served by tp_btf_any where
# raw tracepoint links carry a cookie (6.10 on), else each through a stub
# of its own (some, kmalloc and kfree, fire in interrupts over another's).
t_raw_tp_many() {
    many_actions
    if has_feature raw_tracepoint_cookies; then program=tp_btf_any; else program=raw_tp_from_stub; fi
    tracepoints_posted raw-tp-many "raw " "$program"
}

trampolines_many_cases() {
    if ! has_feature bpf_lsm_active; then
        echo "GUEST-INFO lsm-many: the BPF LSM is not active here: the refusal is checked"
        refused lsm-many "$SHARE/policies/lsm-many.yaml" "lsmhooks[0] file_open: $LSM_REFUSAL"
    elif has_feature trampoline_cookies; then
        many_case lsm-many t_lsm_many
    else
        slots_refused lsm-many "at most 8 distinct lsm targets can be hooked at once"
    fi
    # Without trampoline cookies (before 5.19) fexit would take one of 4
    # numbered slots per function: return probes are kretprobes there.
    many_case fexit-many t_fexit_many
}

# 6. uprobe on the test binary's tetragond_testbin_probe, Sigkill on 42.
t_uprobe_sigkill() {
    if [ "$1" = enforce ]; then
        expect "" 137 $TB probe 42
    else
        expect "survived" 0 $TB probe 42
    fi
    expect "survived" 0 $TB probe 7
}

# 7a. matchBinaries In /tmp/bin-a, Sigkill on getppid.
t_sel_binaries() {
    if [ "$1" = enforce ]; then
        expect "" 137 /tmp/bin-a syscall 110
    else
        expect "survived" 0 /tmp/bin-a syscall 110
    fi
    expect "survived" 0 /tmp/bin-b syscall 110
}

# 7b. matchPIDs In [helper shell] followForks: the helper's testbin child
# matches, a testbin started here does not.
start_helper() {
    rm -f /tmp/helper.pid /tmp/helper.go /tmp/helper.out /tmp/helper.status
    sh -c 'echo $$ >/tmp/helper.pid
        while [ ! -e /tmp/helper.go ]; do sleep 0.1; done
        timeout 30 /usr/bin/tetragond-testbin syscall 140 >/tmp/helper.out 2>&1
        echo $? >/tmp/helper.status' &
    i=0
    while [ ! -s /tmp/helper.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    HELPER_PID=$(cat /tmp/helper.pid 2>/dev/null)
    [ -n "$HELPER_PID" ] || bad "the helper shell did not start"
}
stop_helper() {
    touch /tmp/helper.go
    i=0
    while [ ! -s /tmp/helper.status ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    HELPER_PID=
}
t_sel_pids() {
    touch /tmp/helper.go
    i=0
    while [ ! -s /tmp/helper.status ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    hst=$(cat /tmp/helper.status 2>/dev/null)
    hout=$(echo $(cat /tmp/helper.out 2>/dev/null))
    if [ "$1" = enforce ]; then
        [ "$hst" = 137 ] || bad "testbin started by the helper shell (PID $HELPER_PID) printed '$hout' exit status '${hst:-none}', want killed (137)"
    else
        [ "$hst" = 0 ] && [ "$hout" = survived ] ||
            bad "testbin started by the helper shell (PID $HELPER_PID) printed '$hout' exit status '${hst:-none}', want 'survived' 0"
    fi
    expect "survived" 0 $TB syscall 140
}

# 7c. matchNamespaces Mnt In host_ns: a testbin under `unshare -m` survives.
t_sel_namespaces() {
    if [ "$1" = enforce ]; then
        expect "" 137 $TB syscall 140
    else
        expect "survived" 0 $TB syscall 140
    fi
    expect "survived" 0 unshare -m $TB syscall 140
}

# 7d. matchCapabilities Effective In CAP_SYS_ADMIN: a testbin that dropped
# its capabilities survives.
t_sel_caps() {
    if [ "$1" = enforce ]; then
        expect "" 137 $TB syscall 140
    else
        expect "survived" 0 $TB syscall 140
    fi
    expect "survived" 0 $TB dropcaps syscall 140
}

# 8. TracingPolicyNamespaced in namespace test (= cgroup $CG in the daemon
# configuration): a testbin inside the cgroup is killed, one outside is not.
t_namespaced() {
    if [ "$1" = enforce ]; then
        expect "" 137 sh -c "echo 0 >$CG/cgroup.procs && exec $TB syscall 140"
    else
        expect "survived" 0 sh -c "echo 0 >$CG/cgroup.procs && exec $TB syscall 140"
    fi
    expect "survived" 0 $TB syscall 140
}

# 9. Every shipped example policy (etc/policies.d) loads and is triggered:
# the LSM, kprobe and socket examples once (their events are checked on
# the host: check-events' events-example-* cases); the Post-only ones with
# one input that must post and one that must not (ex_post: events and
# NPOST); deny-unshare-tool in monitor, then enforce (ex_unshare).
exercise_example() {
    case "$1" in
        deny-exec-forbidden)
            mkdir -p /etc/tetragond/forbidden
            cp $TB /etc/tetragond/forbidden/testbin
            expect "error 1" 0 $TB exec /etc/tetragond/forbidden/testbin probe 1
            expect "survived" 0 $TB exec /tmp/allowed-bin probe 1
            rm -rf /etc/tetragond/forbidden
            ;;
        watch-shadow-access)
            expect "read" 0 $TB read /etc/shadow
            expect "read" 0 $TB read /tmp/other
            ;;
        watch-outbound-tcp)
            # Not loopback by address, yet local: nothing listens there.
            expect "error 111" 0 $TB connect 192.0.2.1 4243
            expect "connected" 0 $TB connect 127.0.0.1 4243
            ;;
        audit-kernel-modules)
            # delete_module(NULL, 0): EFAULT, harmless.
            ex_post "$TB syscall 110" "$TB syscall 176"
            ;;
        deny-unshare-tool)
            ex_unshare
            ;;
        trace-bash-readline)
            # bash -i reads its commands with readline (a pipe is enough).
            echo exit >/tmp/ex-stdin
            ex_post "/bin/bash --norc -c true" "/bin/bash --norc -i" at-least
            ;;
        watch-ptrace)
            # ptrace(-1): EIO. The policy exempts /usr/bin/strace.
            cp $TB /usr/bin/strace
            ex_post "/usr/bin/strace args 101 -1" "$TB args 101 -1"
            rm -f /usr/bin/strace
            ;;
        watch-setuid-root)
            ex_post "$TB setuid 65534" "$TB setuid 0"
            ;;
        watch-sigkill-senders)
            # No such process: ESRCH.
            ex_post "$TB args 62 4000000 15" "$TB args 62 4000000 9"
            ;;
    esac
}
# example_refusal STEM: the refusal the example must get on this kernel, if any.
example_refusal() {
    case "$1" in
        deny-exec-forbidden) has_feature bpf_lsm_active || echo "lsmhooks[0] bprm_check_security: $LSM_REFUSAL" ;;
        trace-bash-readline) has_feature attach_cookie || uprobe_refusal "$SHARE/examples/$1.yaml" ;;
    esac
}
examples() {
    for f in "$SHARE"/examples/*.yaml "$SHARE"/examples/*.yml; do
        [ -f "$f" ] || continue
        file=$(basename "$f")
        stem=${file%.*}
        name=$(sed -n '/^metadata:/,/^[a-z]/s/^  name: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$f" | head -1)
        begin "examples/$file"
        [ -f "$SHARE/examples/$stem.toml" ] && cp "$SHARE/examples/$stem.toml" "$PDIR/"
        cp "$f" "$PDIR/.$file.tmp" && mv "$PDIR/.$file.tmp" "$PDIR/$file"
        deadline=$(($(now) + WAIT))
        while :; do
            if read_snapshot "$name"; then
                [ "$S_STATE" = enabled ] && break
                case "$S_STATE" in *error*) break ;; esac
            fi
            [ "$(now)" -lt "$deadline" ] || break
            sleep 0.2
        done
        want=$(example_refusal "$stem")
        if [ -n "$want" ]; then
            if [ "$S_STATE" = load_error ] && [ "$(reason_in "$PDIR/$file")" = "$want" ]; then
                echo "GUEST-REFUSED $name"
                echo "GUEST-INFO examples/$file: refused as expected on this kernel: $want"
            else
                bad "policy $name: state '${S_STATE:-not listed}' error '$S_ERROR', want load_error '$want'"
                snap_list
            fi
        elif [ "$S_STATE" = enabled ]; then
            exercise_example "$stem"
        else
            bad "policy $name not enabled (waited up to ${WAIT} s): state '${S_STATE:-not listed}' mode '$S_MODE' error '$S_ERROR'"
            snap_list
        fi
        rm -f "$PDIR/$file" "$PDIR/$stem.toml"
        deadline=$(($(now) + WAIT))
        while [ -n "$(snapshot "$name")" ] && [ "$(now)" -lt "$deadline" ]; do sleep 0.2; done
        finish
    done
}

# --- socket operators in the kernel (issue 14) --------------------------------
# tests/vm/hooks/policies/sock-ops.yaml: one selector (lane) per operator on
# tcp_connect's `sock` argument, each lane limited by matchBinaries to a copy
# of the test binary named /tmp/sk/LANE. Per operator, one connect that
# must match (killed, 137) and one that must not (its own output, 0), both
# through the same lane, so an operator that is always true or always false
# fails. Listener: 127.0.0.1:4243 only; other addresses and ports refuse.
SK_LANES="saddr notsaddr daddr notdaddr sport notsport dport notdport sportpriv notsportpriv dportpriv notdportpriv family protocol protocol-udp"

# sk_op OPERATOR LANE MATCH_ARGS NOMATCH_OUTPUT NOMATCH_ARGS: the arguments
# are `connect`'s (IP PORT [SRC_IP [SRC_PORT]]).
sk_op() {
    begin "sock-op/$1"
    if [ "$SK_LOADED" = 1 ]; then
        expect "" 137 /tmp/sk/$2 connect $3
        expect "$4" 0 /tmp/sk/$2 connect $5
    else
        bad "the sock-ops policy did not load"
    fi
    finish
}

sock_ops() {
    mkdir -p /tmp/sk
    for lane in $SK_LANES; do cp $TB /tmp/sk/$lane; done
    begin sock-ops/load
    SK_LOADED=0
    if load sock-ops "$SHARE/policies/sock-ops.yaml" enforce; then
        SK_LOADED=1
        before=$S_NENFORCE
        echo "GUEST-INFO sock-ops: $(grep -o 'tcp_connect served by [a-z_ 0-9]*' "$LOG" | tail -1)"
    fi
    [ -z "$ERRS" ] || snap_list
    finish
    # Addresses: 127.0.0.0/8 is all local; a bind to 127.0.2.7 sets the source.
    sk_op SAddr saddr "127.0.0.1 4243 127.0.2.7" connected "127.0.0.1 4243 127.0.0.1"
    sk_op NotSAddr notsaddr "127.0.0.1 4243 127.0.2.7" connected "127.0.0.1 4243 127.0.0.1"
    sk_op DAddr daddr "127.0.3.9 4243" connected "127.0.0.1 4243"
    sk_op NotDAddr notdaddr "127.0.3.9 4243" connected "127.0.0.1 4243"
    # Source ports bound explicitly (each used once per boot).
    sk_op SPort sport "127.0.0.1 4243 127.0.0.1 40001" connected "127.0.0.1 4243 127.0.0.1 40002"
    sk_op NotSPort notsport "127.0.0.1 4243 127.0.0.1 40004" connected "127.0.0.1 4243 127.0.0.1 40003"
    sk_op DPort dport "127.0.0.1 4246" connected "127.0.0.1 4243"
    sk_op NotDPort notdport "127.0.0.1 4246" connected "127.0.0.1 4243"
    sk_op SPortPriv sportpriv "127.0.0.1 4243 127.0.0.1 1001" connected "127.0.0.1 4243"
    sk_op NotSPortPriv notsportpriv "127.0.0.1 4243" connected "127.0.0.1 4243 127.0.0.1 1002"
    sk_op DPortPriv dportpriv "127.0.0.1 1003" connected "127.0.0.1 4243"
    sk_op NotDPortPriv notdportpriv "127.0.0.1 4243" "error 111" "127.0.0.1 1003"
    sk_op Family family "::1 4243" connected "127.0.0.1 4243"
    # tcp_connect sees TCP sockets only: the must-not-match side is a lane
    # whose Protocol is IPPROTO_UDP, with the same TCP connect.
    begin sock-op/Protocol
    if [ "$SK_LOADED" = 1 ]; then
        expect "" 137 /tmp/sk/protocol connect 127.0.0.1 4243
        expect connected 0 /tmp/sk/protocol-udp connect 127.0.0.1 4243
    else
        bad "the sock-ops policy did not load"
    fi
    finish
    # Each kill above was this policy's: 14 must-match connects, 14 enforcements.
    begin sock-ops/counters
    if [ "$SK_LOADED" = 1 ]; then
        i=0
        while read_snapshot sock-ops && [ "${S_NENFORCE:-0}" -lt $((before + 14)) ] && [ $i -lt 25 ]; do
            sleep 0.2
            i=$((i + 1))
        done
        [ "${S_NENFORCE:-0}" -eq $((before + 14)) ] || bad "NENFORCE is ${S_NENFORCE:-?}, want $((before + 14)) ($(counters))"
        [ "${S_NMONITOR:-0}" -eq 0 ] || bad "NMONITOR grew in enforce mode ($(counters))"
    else
        bad "the sock-ops policy did not load"
    fi
    unload sock-ops
    finish
    rm -rf /tmp/sk
}

# --- Signal and NoPost on each hook kind (issue 14) ---------------------------
# sig_case NAME SIGNAL_CMD NOPOST_CMD OTHER_OUTPUT OTHER_CMD: the policy
# tests/vm/hooks/policies/NAME.yaml has a Signal (SIGUSR1) selector that
# SIGNAL_CMD matches and a Sigkill + NoPost selector that NOPOST_CMD
# matches. SIGNAL_CMD must end by signal 10 (status 138) with its event
# (action KPROBE_ACTION_SIGNAL) in the events file; NOPOST_CMD must end
# by signal 9 (137) and leave no event at all: it runs first, so once
# SIGNAL_CMD's event (same ring buffer, same writer) is in the file,
# anything NOPOST_CMD had posted would be too. OTHER_CMD matches neither.
# Counters: NENFORCE +2, NPOST +1 (the Signal event only).
events_of_pid() { # PID: event lines whose process is PID
    cat /tmp/events.log* 2>/dev/null | grep "\"process\":{\"exec_id\":\"[^\"]*\",\"pid\":$1,"
}
sig_case() {
    name=$1
    begin "$name/enforce"
    if load "$name" "$SHARE/policies/$name.yaml" enforce; then
        post0=$S_NPOST enf0=$S_NENFORCE
        rm -f /tmp/sig-s.pid /tmp/sig-n.pid
        expect "" 137 sh -c 'echo $$ >/tmp/sig-n.pid; exec "$@"' sh $3
        expect "" 138 sh -c 'echo $$ >/tmp/sig-s.pid; exec "$@"' sh $2
        expect "$4" 0 $5
        npid=$(cat /tmp/sig-n.pid 2>/dev/null)
        spid=$(cat /tmp/sig-s.pid 2>/dev/null)
        deadline=$(($(now) + 10))
        while [ -z "$(events_of_pid "$spid" | grep "\"policy_name\":\"$name\"")" ] && [ "$(now)" -lt "$deadline" ]; do
            sleep 0.2
        done
        sline=$(events_of_pid "$spid" | grep "\"policy_name\":\"$name\"" | head -1)
        if [ -z "$sline" ]; then
            bad "no event of policy $name for the Signal run (pid $spid) within 10 s"
        else
            case "$sline" in
                *'"action":"KPROBE_ACTION_SIGNAL"'*) ;;
                *) bad "the Signal run's event has another action: $(echo "$sline" | grep -o '"action":"[A-Z_]*"')" ;;
            esac
            nlines=$(events_of_pid "$npid" | wc -l)
            [ "$nlines" = 0 ] || bad "NoPost run (pid $npid) has $nlines event lines: $(events_of_pid "$npid" | head -1 | head -c 300)"
        fi
        i=0
        while read_snapshot "$name" && { [ "${S_NENFORCE:-0}" -lt $((enf0 + 2)) ] || [ "${S_NPOST:-0}" -lt $((post0 + 1)) ]; } && [ $i -lt 25 ]; do
            sleep 0.2
            i=$((i + 1))
        done
        [ "${S_NENFORCE:-0}" -eq $((enf0 + 2)) ] || bad "NENFORCE ${S_NENFORCE:-?}, want $((enf0 + 2)) ($(counters))"
        [ "${S_NPOST:-0}" -eq $((post0 + 1)) ] || bad "NPOST ${S_NPOST:-?}, want $((post0 + 1)): one Signal event, none for NoPost ($(counters))"
    fi
    [ -z "$ERRS" ] || snap_list
    unload "$name"
    finish
}
sig_nopost() {
    mkdir -p /tmp/sig-s /tmp/sig-n
    echo s >/tmp/sig-s/f
    echo n >/tmp/sig-n/f
    sig_case sig-tracepoint "$TB args 36 7771" "$TB args 36 7772" survived "$TB args 36 7773"
    sig_case sig-raw "$TB syscall 140" "$TB syscall 121" survived "$TB syscall 110"
    sig_case sig-tp-btf "$TB syscall 140" "$TB syscall 121" survived "$TB syscall 110"
    # Linux 6.10 on: one program by cookie; before, a stub of its own.
    begin sig-tp-btf/program
    if has_feature raw_tracepoint_cookies; then program='tp_btf_any (site [0-9]*)'; else program='raw_tp_from_stub (site [0-9]*, through a stub of its own)'; fi
    grep -q "raw tracepoint sys_enter served by program $program" "$LOG" ||
        bad "no 'raw tracepoint sys_enter served by program $program' in the log: $(grep 'raw tracepoint' "$LOG" | tail -2)"
    finish
    sig_case sig-kprobe "$TB connect 127.0.0.1 4247" "$TB connect 127.0.0.1 4248" connected "$TB connect 127.0.0.1 4243"
    if has_feature bpf_lsm_active; then
        sig_case sig-lsm "$TB open /tmp/sig-s/f" "$TB open /tmp/sig-n/f" opened "$TB open /tmp/other"
    else
        refused sig-lsm "$SHARE/policies/sig-lsm.yaml" "lsmhooks[0] file_open: $LSM_REFUSAL"
    fi
    if has_feature attach_cookie; then
        sig_case sig-uprobe "$TB probe 43" "$TB probe 44" survived "$TB probe 45"
    else
        refused sig-uprobe "$SHARE/policies/sig-uprobe.yaml" "$(uprobe_refusal "$SHARE/policies/sig-uprobe.yaml")"
    fi
}

# --- Post rateLimit, in the kernel (issues 10, 13) -------------------------------
# rate-raw posts the test binary's sched_get_priority_max (146) at most once
# a minute per process: two runs of 50 calls give NPOST 2 and NRATELIMITED
# 98 (without the kernel's check: NPOST 100).
rate_limit_case() {
    name=rate-raw
    begin "$name"
    if load "$name" "$SHARE/policies/$name.yaml" ""; then
        expect survived 0 $TB syscall 146 50
        expect survived 0 $TB syscall 146 50
        i=0
        while read_snapshot "$name" && [ $((S_NPOST + S_NRATELIMITED)) -lt 100 ] && [ $i -lt 25 ]; do
            sleep 0.2
            i=$((i + 1))
        done
        [ "$S_NPOST" = 2 ] || bad "NPOST $S_NPOST, want 2: one event per process ($(counters) nratelimited=$S_NRATELIMITED)"
        [ "$S_NRATELIMITED" = 98 ] || bad "NRATELIMITED $S_NRATELIMITED, want 98 ($(counters))"
    fi
    [ -z "$ERRS" ] || snap_list
    unload "$name"
    finish
}

# --- the examples that only post, triggered (issue 14) ------------------------
# run_noting PIDFILE CMD..: runs CMD (30 s at most, stdin /tmp/ex-stdin)
# with its PID written to PIDFILE; sets ST.
run_noting() {
    f=$1
    shift
    rm -f "$f"
    timeout 30 sh -c 'echo $$ >"$0"; exec "$@"' "$f" "$@" </tmp/ex-stdin >/dev/null 2>&1
    ST=$?
}
# ex_post NOMATCH_CMD MATCH_CMD [at-least]: the loaded example $name (Post
# only: monitor_only, there is no enforce or monitor to switch) posts no
# event for NOMATCH_CMD (run first) and one for MATCH_CMD (exactly one, or
# at least one with `at-least`); NPOST grows by as much, NENFORCE and
# NMONITOR stay 0. Absence is asserted only once MATCH_CMD's event is in
# the file (same ring buffer, same writer).
ex_post() {
    read_snapshot "$name"
    post0=$S_NPOST
    [ "$S_MODE" = monitor_only ] || bad "mode '$S_MODE', want monitor_only"
    run_noting /tmp/ex-n.pid $1
    [ "$ST" = 0 ] || bad "'$1' exit status $ST, want 0"
    run_noting /tmp/ex-m.pid $2
    [ "$ST" = 0 ] || bad "'$2' exit status $ST, want 0"
    : >/tmp/ex-stdin
    npid=$(cat /tmp/ex-n.pid 2>/dev/null)
    mpid=$(cat /tmp/ex-m.pid 2>/dev/null)
    deadline=$(($(now) + 10))
    while [ -z "$(events_of_pid "$mpid" | grep "\"policy_name\":\"$name\"")" ] && [ "$(now)" -lt "$deadline" ]; do
        sleep 0.2
    done
    nm=$(events_of_pid "$mpid" | grep -c "\"policy_name\":\"$name\"")
    if [ "$nm" = 0 ]; then
        bad "no event of $name for '$2' (pid $mpid) within 10 s"
    else
        nn=$(events_of_pid "$npid" | grep -c "\"policy_name\":\"$name\"")
        [ "$nn" = 0 ] || bad "'$1' (pid $npid) has $nn events of $name, want none"
    fi
    i=0
    while read_snapshot "$name" && [ "${S_NPOST:-0}" -lt $((post0 + nm)) ] && [ $i -lt 25 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    if [ "$3" = at-least ]; then
        [ "$nm" -ge 1 ] || bad "want at least one event for '$2'"
    else
        [ "$nm" -le 1 ] || bad "$nm events of $name for '$2', want 1"
    fi
    [ "${S_NPOST:-0}" -eq $((post0 + nm)) ] || bad "NPOST ${S_NPOST:-?}, want $((post0 + nm)) ($(counters))"
    [ "${S_NENFORCE:-0}" = 0 ] && [ "${S_NMONITOR:-0}" = 0 ] || bad "enforcement counted for a Post-only policy ($(counters))"
    echo "GUEST-INFO examples/$name: $nm event(s) for '$2', none for '$1'; $(counters)"
}
# deny-unshare-tool: monitor by its own policy-mode, then enforce by
# SetMode: /usr/bin/unshare survives then is killed; unshare(2) from
# another binary is never counted.
ex_unshare() {
    read_snapshot "$name"
    [ "$S_MODE" = monitor ] || bad "mode '$S_MODE' before SetMode, want monitor (the policy's option)"
    m0=$S_NMONITOR e0=$S_NENFORCE
    expect "survived" 0 $TB syscall 272
    expect "" 0 /usr/bin/unshare -u /bin/true
    tetra tp set-mode "$name" enforce >/dev/null 2>&1 || bad "tetra tp set-mode $name enforce failed"
    i=0
    while read_snapshot "$name" && [ "$S_MODE" != enforce ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$S_MODE" = enforce ] || bad "mode '$S_MODE' after SetMode, want enforce"
    m1=$S_NMONITOR
    [ "${m1:-0}" -eq $((m0 + 1)) ] || bad "NMONITOR ${m1:-?} after the monitor run, want $((m0 + 1)) ($(counters))"
    expect "survived" 0 $TB syscall 272
    expect "" 137 /usr/bin/unshare -u /bin/true
    i=0
    while read_snapshot "$name" && [ "${S_NENFORCE:-0}" -lt $((e0 + 1)) ] && [ $i -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
    [ "${S_NENFORCE:-0}" -eq $((e0 + 1)) ] || bad "NENFORCE ${S_NENFORCE:-?}, want $((e0 + 1)) ($(counters))"
    [ "${S_NMONITOR:-0}" -eq "$m1" ] || bad "NMONITOR grew in enforce mode ($(counters))"
    echo "GUEST-INFO examples/$name: monitor then enforce; $(counters)"
}

# --- the verifier's counts through ftrace (kernels before 5.16) -----------------
# tetragond logs each program's instruction count from the kernel's
# verified_insns (Linux 5.16). Before that the kernel keeps the count only in
# the verifier's env (env->insn_processed: the "processed N insns" of the
# verifier log, the figure verified_insns later reports), and aya drops the
# log of a program that loads. So on such a kernel a kprobe event (ftrace,
# no BPF) on a function bpf_check() calls once per program after the whole
# program, global functions included, was verified, with the env as first
# argument, records that count and env->prog->aux->name. The offsets come
# from the kernel's BTF (btf-offset, tetragond's BTF reader).
VSTAT_EVENT=tetragond_verified
# Where the counts come from: daemon (verified_insns) or ftrace.
VSTAT=
# Why the ftrace route could not be set up (empty when it was).
VSTAT_ERR=
TRACEFS=
# After verification, env first (fixup_bpf_calls was later renamed
# do_misc_fixups; convert_ctx_accesses runs just before it). Only a
# function that is a symbol (not inlined) can be probed.
VSTAT_FUNCS="fixup_bpf_calls do_misc_fixups convert_ctx_accesses"

# The kprobe event's definition; or why there is none, with status 1.
vstat_probe() {
    fn=
    for f in $VSTAT_FUNCS; do
        if grep -q " [tT] $f\$" /proc/kallsyms; then
            fn=$f
            break
        fi
    done
    if [ -z "$fn" ]; then
        echo "none of $VSTAT_FUNCS is in /proc/kallsyms (inlined?)"
        return 1
    fi
    if ! insns=$(/usr/bin/btf-offset bpf_verifier_env insn_processed 2>&1) ||
        ! prog=$(/usr/bin/btf-offset bpf_verifier_env prog 2>&1) ||
        ! aux=$(/usr/bin/btf-offset bpf_prog aux 2>&1) ||
        ! name=$(/usr/bin/btf-offset bpf_prog_aux name 2>&1); then
        echo "btf-offset: $insns $prog $aux $name"
        return 1
    fi
    # :string reads the characters at the last address (aux->name is an array).
    echo "p:$VSTAT_EVENT $fn insns=+$insns(%di):u32 name=+$name(+$aux(+$prog(%di))):string"
}

# Before the daemon first starts: picks the route, sets up the event.
vstat_setup() {
    if /usr/bin/btf-offset bpf_prog_aux verified_insns >/dev/null 2>&1; then
        VSTAT=daemon
        return
    fi
    VSTAT=ftrace
    for TRACEFS in /sys/kernel/tracing /sys/kernel/debug/tracing; do
        [ -w "$TRACEFS/kprobe_events" ] && break
    done
    if [ ! -w "$TRACEFS/kprobe_events" ]; then
        VSTAT_ERR="no kprobe_events in tracefs"
        return
    fi
    if ! def=$(vstat_probe); then
        VSTAT_ERR=$def
        return
    fi
    echo "GUEST-INFO verifier counts through ftrace: $def"
    if ! echo "$def" >>"$TRACEFS/kprobe_events" 2>/tmp/vstat.err ||
        ! echo 1 >"$TRACEFS/events/kprobes/$VSTAT_EVENT/enable" 2>>/tmp/vstat.err; then
        VSTAT_ERR="kprobe event refused: $(tr '\n' ' ' </tmp/vstat.err) $(tail -3 "$TRACEFS/error_log" 2>/dev/null | tr '\n' ' ')"
    fi
}

# The ftrace counts, one line per program in the daemon's shape:
#   program NAME verified (N instructions processed, ...)
# the largest of its loads. The kernel keeps 15 characters of a name: one
# that is the start of exactly one name the daemon logged is given that name.
vstat_ftrace_counts() {
    echo 0 >"$TRACEFS/events/kprobes/$VSTAT_EVENT/enable"
    grep -o 'program [a-z_0-9]* verified (' "$LOG" | awk '{ print $2 }' | sort -u >/tmp/vstat-daemon
    sed -n "s/.* $VSTAT_EVENT: .* insns=\([0-9]*\) name=\"\([^\"]*\)\".*/\2 \1/p" "$TRACEFS/trace" >/tmp/vstat-trace
    awk '
        FILENAME == "/tmp/vstat-daemon" { daemon[$1] = 1; next }
        {
            name = $1 == "" || NF < 2 ? "unnamed" : $1
            n = NF < 2 ? $1 : $2
            if (!(name in max) || n + 0 > max[name]) max[name] = n + 0
            loads[name]++
        }
        END {
            for (k in max) {
                full = k
                hits = 0
                for (d in daemon)
                    if (d == k || (length(k) == 15 && substr(d, 1, 15) == k)) { hits++; cand = d }
                if (hits == 1) full = cand
                printf "program %s verified (%d instructions processed; ftrace, largest of %d load%s)\n", full, max[k], loads[k], loads[k] == 1 ? "" : "s"
            }
        }' /tmp/vstat-daemon /tmp/vstat-trace | sort
}

# The daemon's programs without an ftrace count (none, when it worked).
vstat_missing() {
    grep -o 'program [a-z_0-9]* verified' "$1" | awk '{ print $2 }' | sort -u >/tmp/vstat-counted
    grep -vxF -f /tmp/vstat-counted /tmp/vstat-daemon | tr '\n' ' '
}

# --- the daemon ---------------------------------------------------------------
# start_daemon CASE [CONFIG LINES]: starts tetragond with the [namespaces]
# table (and the extra top-level lines) and waits until it answers.
start_daemon() {
    begin "$1"
    { [ -z "$2" ] || printf '%s\n' "$2"; printf '[namespaces]\ntest = ["%s"]\n' "$CG"; } >/tmp/tetragond.toml
    NO_COLOR=1 TETRAGOND_LOG=${TETRAGOND_LOG:-info} /usr/bin/tetragond --config /tmp/tetragond.toml \
        --policy-dir "$PDIR" --state-dir "$STATE" --bus "$BUS" \
        --events-file /tmp/events.log --events-socket /tmp/events.sock 2>>"$LOG" &
    DAEMON=$!
    deadline=$(($(now) + 60))
    until tetra tp list >/dev/null 2>&1; do
        if ! alive $DAEMON; then
            bad "tetragond exited before answering on the bus"
            break
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            bad "tetragond did not answer 'tetra tp list' within 60 s"
            break
        fi
        sleep 0.2
    done
    finish
}

# stop_daemon NAME: SIGTERM, then it must exit cleanly within 30 s. Under
# QEMU's TCG the kernel's part of the teardown (detaching every link, RCU
# grace periods) has taken over 10 s once in a few runs: past 10 s, the
# kernel stacks of its threads are printed, and the time it took always.
stop_daemon() {
    begin "$1"
    kill -TERM $DAEMON
    i=0
    while alive $DAEMON && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
        if [ $i = 100 ] && alive $DAEMON; then
            for t in /proc/$DAEMON/task/*; do
                echo "GUEST-INFO $1: 10 s after SIGTERM, thread ${t##*/} ($(cat $t/comm 2>/dev/null)): $(tr '\n' ' ' <$t/stack 2>/dev/null)"
            done
        fi
    done
    echo "GUEST-INFO $1: tetragond ran $((i / 10)).$((i % 10)) s after SIGTERM"
    if alive $DAEMON; then
        bad "tetragond still running 30 s after SIGTERM"
    else
        wait $DAEMON
        st=$?
        [ $st = 0 ] || bad "tetragond exited with status $st after SIGTERM"
    fi
    finish
}

mkdir -p "$PDIR" "$STATE" "$CG"
: >"$LOG"
: >/tmp/ex-stdin
vstat_setup
start_daemon daemon-start
if [ "$failed" -gt 0 ]; then
    echo "GUEST-SUMMARY $passed $failed"
    exit 0
fi
tetra status 2>&1 | sed 's/^/GUEST-INFO status: /'

# --- fixtures -----------------------------------------------------------------
mkdir -p /tmp/secret /tmp/perm /tmp/fexit /tmp/trunc
echo trunc >/tmp/trunc/f
echo fexit >/tmp/fexit/f
echo secret >/tmp/secret/f
echo secret >/tmp/secret/g
echo perm >/tmp/perm/f
echo other >/tmp/other
for b in denied-bin allowed-bin bin-a bin-b ima-denied; do cp $TB /tmp/$b; done
mkdir -p /tmp/ima
echo "hash me" >/tmp/ima/hashed
mkdir -p /tmp/manybin /tmp/many
cp /bin/busybox /tmp/manybin/busybox
# For the examples watch-shadow-access and watch-outbound-tcp.
[ -e /etc/shadow ] || printf 'root:*:20000:0:99999:7:::\n' >/etc/shadow
ip addr add 192.0.2.1/32 dev lo
for port in 4242 4243 4244; do
    $TB listen $port >/tmp/listen-$port.out 2>&1 &
done
i=0
while [ $i -lt 50 ]; do
    [ "$(cat /tmp/listen-4242.out /tmp/listen-4243.out /tmp/listen-4244.out 2>/dev/null | grep -c listening)" = 3 ] && break
    sleep 0.1
    i=$((i + 1))
done

# --- run ----------------------------------------------------------------------
lsm_case lsm-file-open t_lsm_file_open file_open
if has_feature bpf_lsm_active; then
    run_case lsm-preempt enforce t_lsm_preempt
fi
run_case override-preempt enforce t_override_preempt
# A stress run, not part of the suite: RACE_ROUNDS=N on the guest's
# command line (VM_HOOK_APPEND) runs those races N times more and stops.
if [ -n "$RACE_ROUNDS" ]; then
    r=0
    while [ "$r" -lt "$RACE_ROUNDS" ]; do
        if has_feature bpf_lsm_active; then
            run_case lsm-preempt enforce t_lsm_preempt
        fi
        run_case override-preempt enforce t_override_preempt
        r=$((r + 1))
    done
    echo "GUEST-SUMMARY $passed $failed"
    exit 0
fi
lsm_case lsm-bprm t_lsm_bprm bprm_check_security
ima_case lsm-ima t_lsm_ima bprm_check_security
lsm_case lsm-connect t_lsm_connect socket_connect
lsm_case lsm-truncate t_lsm_truncate path_truncate
both_modes kprobe-override t_kprobe_override
copy_up_case
both_modes kprobe-sigkill t_kprobe_sigkill
both_modes kprobe-return t_kprobe_return
many_case kprobe-many t_kprobe_many
hundred_case
trampolines_many_cases
many_case tp-many t_tp_many
many_case raw-tp-many t_raw_tp_many
uprobe_case uprobe-sigkill t_uprobe_sigkill
both_modes sel-binaries t_sel_binaries
both_modes sel-pids t_sel_pids start_helper stop_helper
both_modes sel-namespaces t_sel_namespaces
both_modes sel-caps t_sel_caps
if has_feature ancestor_cgroup_id; then
    both_modes namespaced t_namespaced
else
    echo "GUEST-INFO namespaced: no cgroup ancestry in tracing programs here: the refusal is checked"
    refused namespaced "$SHARE/policies/namespaced.yaml" "$SCOPE_REFUSAL"
fi
sock_ops
sig_nopost
rate_limit_case
examples

corpus_case

# What was exported and dropped, by reason: an event the host then misses
# is explained here.
tetra status 2>&1 | grep -E '^ *events:' | sed 's/^/GUEST-INFO final status: /'
stop_daemon daemon-stop
# The verifier's work per program on this kernel (its limit is 1,000,000):
# the daemon's counts, or the ftrace event's before Linux 5.16.
if [ "$VSTAT" = ftrace ] && [ -z "$VSTAT_ERR" ]; then
    vstat_ftrace_counts >/tmp/verifier-counts
else
    grep -o 'program [a-z_0-9]* verified ([^)]*)' "$LOG" | sort -u >/tmp/verifier-counts
fi
sed 's/^/GUEST-INFO /' /tmp/verifier-counts
# Each program stays under half that limit; a kernel that gave no count
# fails (the case never passes on nothing).
begin verifier-headroom
counted=$(grep -o 'program [a-z_0-9]* verified ([0-9]* instructions' /tmp/verifier-counts | tr -d '(' | sort -u)
if [ -n "$VSTAT_ERR" ]; then
    bad "no verified_insns here and no ftrace route to the counts: $VSTAT_ERR"
elif [ -z "$counted" ]; then
    bad "no per-program instruction counts ($VSTAT route)"
else
    over=$(echo "$counted" | awk '$4 > 500000 { printf "%s=%s ", $2, $4 }')
    [ -z "$over" ] || bad "over half the verifier's limit of 1,000,000: $over"
    if [ "$VSTAT" = ftrace ]; then
        missing=$(vstat_missing /tmp/verifier-counts)
        [ -z "$missing" ] || bad "the daemon verified programs ftrace saw no count of: $missing"
    fi
fi
finish

# --- kernel functions as fentry programs ----------------------------------------
# Debian's kernels have kprobes, so kernel-function hooks are kprobes by
# default; `kernel_functions = "fentry"` makes them BPF trampolines. The
# same tcp_connect Sigkill, now as an fentry program.
start_daemon daemon-fentry-start 'kernel_functions = "fentry"'
both_modes kprobe-fentry t_kprobe_fentry
sig_case sig-fentry "$TB connect 127.0.0.1 4249" "$TB connect 127.0.0.1 4250" connected "$TB connect 127.0.0.1 4243"
many_case fentry-skipped t_fentry_skipped
stop_daemon daemon-fentry-stop

# --- return probes as kretprobes ---------------------------------------------------
# `kernel_functions = "kprobe"` makes return probes kretprobes (fexit
# otherwise, where trampoline links carry cookies): six at once, more than
# the four kretprobe slots there were, all served by kprobe_by_cookie where
# perf-event links carry a BPF cookie (5.15 on), before that each by a stub
# of its own entering kprobe_from_stub.
t_kretprobe_many() {
    many_actions
    if has_feature attach_cookie; then program=kprobe_by_cookie; else program=kprobe_from_stub; fi
    many_posted kretprobe-many kretprobe $program vfs_mkdir security_inode_rmdir vfs_unlink vfs_symlink vfs_link vfs_rename
}
start_daemon daemon-kprobe-start 'kernel_functions = "kprobe"'
many_case kretprobe-many t_kretprobe_many
stop_daemon daemon-kprobe-stop

# --- the events file, for the host ----------------------------------------------
# Every line the daemon wrote (oldest rotated file first), each prefixed
# `GUEST-EVENT `, between GUEST-EVENTS-BEGIN and `GUEST-EVENTS-END <lines>`:
# scripts/vm-hook-test extracts them and checks them against
# docs/events.schema.json with tetragond-tests' check-events.
events_files=
for i in 9 8 7 6 5 4 3 2 1; do
    [ -f "/tmp/events.log.$i" ] && events_files="$events_files /tmp/events.log.$i"
done
[ -f /tmp/events.log ] && events_files="$events_files /tmp/events.log"
echo "GUEST-EVENTS-BEGIN"
nevents=0
if [ -n "$events_files" ]; then
    cat $events_files | sed 's/^/GUEST-EVENT /'
    nevents=$(cat $events_files | wc -l)
fi
echo "GUEST-EVENTS-END $nevents"

echo "GUEST-SUMMARY $passed $failed"
