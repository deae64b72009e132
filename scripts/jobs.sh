# Sourced by the scripts that run independent jobs at once (scripts/fuzz,
# scripts/vm-hook-test); each job leaves its own result file to be read
# after `wait`.

# start_job MAX COMMAND [ARG..]: starts COMMAND in the background as soon
# as fewer than MAX (at least 1) of this shell's jobs are running.
start_job() {
    local max=$1
    shift
    ((max >= 1)) || max=1
    while (($(jobs -rp | wc -l) >= max)); do wait -n || true; done
    "$@" &
}
