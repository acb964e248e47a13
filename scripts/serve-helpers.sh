# Sourced by the scripts that drive `lora serve` (test-server, test-lm-eval, bench-server):
# starting it on a free loopback port, stopping it, and the Python environment of the clients
# that talk to it. Expects $root, $lora and a fail function.

# python_with MODULE PIP_SPEC: sets $python to the clients' environment (.build/server-venv),
# installing PIP_SPEC there when MODULE does not import. Nothing else needs Python.
python_with() {
    local venv="$root/.build/server-venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c "import $1" 2>/dev/null || "$venv/bin/pip" install -q "$2"
    python="$venv/bin/python"
}

# start_server LOG ARGS…: runs `lora serve --port 0 ARGS…` with its output in LOG, waits
# (60 s at most) for it to be ready, and sets $server (its pid) and $port (the bound port).
start_server() {
    local log=$1
    shift
    "$lora" serve --port 0 "$@" >"$log" 2>&1 &
    server=$!
    for _ in $(seq 600); do
        grep -q '^ready:' "$log" && break
        kill -0 "$server" 2>/dev/null || fail "the server exited: $(tail -3 "$log")"
        sleep 0.1
    done
    grep -q '^ready:' "$log" || fail "the server did not become ready in 60 s"
    port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$log")
}

# stop_server: stops the server start_server started, if it runs (its exit status by signal
# is not the script's).
stop_server() {
    if [ -n "${server:-}" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
}
