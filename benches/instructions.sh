#!/usr/bin/env bash
# Instructions per signed-in request, counted by valgrind (callgrind) over every thread of the
# gateway (workers, the log flusher, the trace exporter): this build with its access log on, off,
# and with tracing at 1%; and BASELINE's build, when given, with its access log off and on. Requests per
# second on a shared machine drift by 10-40% from one run to the next (other tenants); a count of
# instructions does not, so a cost of 1-5% shows here when `load.sh` cannot resolve it.
# Instructions are not time (cache misses and system calls are not in them): load.sh stays the
# measure of speed, this one of what a feature adds to each request.
# Usage: [BASELINE=older/xumm-gate] [REQUESTS=5000] benches/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
# shellcheck source=benches/setup.sh
. benches/setup.sh
REQUESTS=${REQUESTS:-5000}
CONNS=${CONNS:-1}   # one connection: each request the same path through the event loop (with more, how many
                    # requests one wakeup finds varies from run to run by about 2% of the count)
UP=$(port); IDP=$(port)
nginx_conf upstream 1 "server { listen 127.0.0.1:$UP; location / { return 200 \"hello from upstream\\n\"; } }"
"$BIN" dev-provider --listen "127.0.0.1:$IDP" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" >/dev/null 2>&1 &
pids+=($!)

# count NAME BIN LEVEL [MORE-TOML]: instructions per signed-in request of BIN with log.level
# LEVEL ("info" writes an access line per request), counted over REQUESTS requests after a
# warm-up (start-up, sign-in and first connections are not counted).
count() {
  local gw adm pid cookie total
  gw=$(port); adm=$(port)
  gate_toml "$work/$1.toml" "$gw" "$adm" 1 "" "" "${4:-}"
  sed -i "s/^level = \"warn\"/level = \"$3\"/" "$work/$1.toml"
  valgrind --tool=callgrind --callgrind-out-file="$work/$1.callgrind" "$2" run --config "$work/$1.toml" 2>"$work/$1.log" >/dev/null &
  pid=$!
  pids+=($pid)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$adm/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  cookie=$(python3 benches/login.py "http://127.0.0.1:$gw" rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh)
  python3 benches/requests.py "http://127.0.0.1:$gw/" 500 "$cookie"
  callgrind_control --zero "$pid" >/dev/null 2>&1
  python3 benches/requests.py "http://127.0.0.1:$gw/" "$REQUESTS" "$cookie" "$CONNS"
  callgrind_control --dump "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The dump after the zeroing: its "totals:" line is the instructions (Ir) since then.
  total=$(awk '/^totals:/ {print $2}' "$(ls -t "$work/$1.callgrind"* | grep -v '\.callgrind$' | head -1)")
  printf '%-30s %8d instructions/request\n' "$1" "$((total / REQUESTS))" >&2
  echo "$((total / REQUESTS))"
}

echo "valgrind --tool=callgrind, $REQUESTS signed-in requests over $CONNS connection(s), gateway workers=1" >&2
ON=$(count access-log-on "$BIN" info)
OFF=$(count access-log-off "$BIN" warn)
TRACED=$(count tracing-1pc "$BIN" info "$(printf '\n[tracing]\notlp_endpoint = "http://127.0.0.1:%s/v1/traces"\nsample_ratio = 0.01\n' "$UP")")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "access log on / off: $(ratio "$ON" "$OFF") of the instructions" >&2
echo "tracing 1% / off (access log on): $(ratio "$TRACED" "$ON")" >&2
if [ -n "${BASELINE:-}" ]; then
  BASE=$(count baseline-access-log-off "$BASELINE" warn)
  BASE_ON=$(count baseline-access-log-on "$BASELINE" info)
  echo "this build / baseline (access log off): $(ratio "$OFF" "$BASE")" >&2
  echo "this build / baseline (access log on): $(ratio "$ON" "$BASE_ON")" >&2
fi
