# Waiting for the daemon from the benchmark scripts (sourced, not run) without taking the CPU they measure: on this
# 2-core machine, polling /health every 0.1 s through a python3 (~115 ms of CPU each) took about half a core from the
# fold being timed, and a curl every 0.05 s (~10 ms each) a fifth of one (Docs/performance.md, "What the benchmark
# scripts' polling cost").
#   WAIT_ADMIN_SOCKET   the daemon's admin socket (required)

# A top-level number field of a JSON document: json_number DOCUMENT FIELD.
json_number() {
    local rest=${1#*\"$2\":}
    echo "${rest%%[,\}]*}"
}

# Returns once the projections hold the log head: one request per wait, `?after=HEAD` on a contact read that
# answers as soon as they do (404: the contact is made up) or after `read_after_timeout` (504), then /health again,
# since the head may have moved meanwhile (delivery outcomes).
wait_caught_up() {
    local status head
    while true; do
        status=$(curl -sf --unix-socket "$WAIT_ADMIN_SOCKET" http://x/health)
        head=$(json_number "$status" log_head)
        [ "$(json_number "$status" projected)" -ge "$head" ] && return
        curl -s -o /dev/null --unix-socket "$WAIT_ADMIN_SOCKET" "http://x/v1/contacts/~wait?after=$head" || sleep 0.2
    done
}

# Returns once the rebuild under way (or the last one) is done: four polls a second (~4 % of one core).
wait_rebuilt() {
    until curl -s --unix-socket "$WAIT_ADMIN_SOCKET" http://x/v1/rebuild | grep -q '"done"'; do sleep 0.25; done
}
