#!/usr/bin/env bash
# Many live sessions: the gateway's resident memory with COUNT sessions (memory store, Redis
# store), and the cost of an L1 miss (a signed-in request whose session is only in Redis) against
# an L1 hit, as wrk latency percentiles.
# Usage: benches/sessions.sh [count=100000] [duration=10s] [connections=32]
# Installs wrk, nginx and redis-server from Debian when missing. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
DUR=${2:-10s}
CONNS=${3:-32}

# shellcheck source=benches/setup.sh
. benches/setup.sh
UP=$(port); IDP=$(port); REDIS=$(port)

"$BIN" dev-provider --listen "127.0.0.1:$IDP" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" >/dev/null 2>&1 &
pids+=($!)
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
# The upstream: nginx with a constant answer (as in load.sh), so the gateway is what is measured.
mkdir -p "$work/logs"
cat > "$work/upstream.conf" <<NGINX
worker_processes 1;
error_log $work/logs/upstream.log warn;
pid $work/upstream.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
NGINX
"$NGINX" -p "$work" -c "$work/upstream.conf"

# gateway NAME SESSION-LINES: writes its config, starts it, prints "port admin-port pid" (it runs
# in a subshell: the caller adds the pid to those stopped on exit).
gateway() {
  local gw admin
  gw=$(port); admin=$(port)
  gate_toml "$work/$1.toml" "$gw" "$admin" 1 "sign_in_per_minute = 0" "max_entries = 1000000
$2"
  "$BIN" run --config "$work/$1.toml" 2>"$work/$1.log" &
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$gw $admin $!"
}
read -r MEM_PORT _ MEM_PID < <(gateway memory "")
read -r RED_PORT _ RED_PID < <(gateway redis "store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS\"")
# The same sessions (same Redis, same cookie keys), kept in L1 for 1 s only: nearly every request
# of a run over all sessions is an L1 miss.
read -r MISS_PORT _ MISS_PID < <(gateway redis-miss "store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS\"
l1_ttl = \"1s\"")
pids+=("$MEM_PID" "$RED_PID" "$MISS_PID")

rss() { awk '/VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$1/status"; }
echo "resident memory at start: memory store $(rss "$MEM_PID"), redis store $(rss "$RED_PID")" >&2

t0=$(date +%s)
python3 benches/sessions.py "http://127.0.0.1:$MEM_PORT" "$COUNT" "$work/memory.cookies"
python3 benches/sessions.py "http://127.0.0.1:$RED_PORT" "$COUNT" "$work/redis.cookies"
echo "signed in $COUNT + $COUNT sessions in $(( $(date +%s) - t0 )) s; redis keys: $(redis-cli -p "$REDIS" dbsize)" >&2

# A wrk script that sends each request with the next cookie of the file (each thread starts
# elsewhere in it).
cat > "$work/cookies.lua" <<'LUA'
local cookies, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do cookies[#cookies + 1] = line end
  i = math.random(#cookies)
end
function request()
  i = i % #cookies + 1
  return wrk.format("GET", "/", { ["Cookie"] = cookies[i] })
end
LUA
# Sessions read from Redis so far (each is an L1 miss of one of the Redis-store gateways).
getex() { redis-cli -p "$REDIS" info commandstats | awk -F'[=,:]' '/^cmdstat_getex:/ {print $3}' | grep . || echo 0; }
run() { # name url cookie-file
  local out g0 reqs
  g0=$(getex)
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$work/cookies.lua" "$2" -- "$3")
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: some answers were not 2xx" >&2; grep "Non-2xx" <<<"$out" >&2; fi
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-34s %10s req/s  p50 %-8s p90 %-8s p99 %-8s L1 misses %s%%\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="90%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(awk -v m="$(( $(getex) - g0 ))" -v n="$reqs" 'BEGIN { printf "%.0f", 100 * m / n }')" >&2
}
echo "wrk -t1 -c$CONNS -d$DUR over all $COUNT sessions, one cookie after another" >&2
run "memory store (all hits)" "http://127.0.0.1:$MEM_PORT/" "$work/memory.cookies"
run "redis store, l1_ttl 10s" "http://127.0.0.1:$RED_PORT/" "$work/redis.cookies"
sleep 2
run "redis store, l1_ttl 1s (L1 misses)" "http://127.0.0.1:$MISS_PORT/" "$work/redis.cookies"
echo "resident memory with $COUNT live sessions: memory store $(rss "$MEM_PID"); redis store right after touching every session (all in L1) $(rss "$RED_PID"); redis store with l1_ttl 1s $(rss "$MISS_PID")" >&2
