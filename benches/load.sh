#!/usr/bin/env bash
# Whole-gateway load benchmark: upstream direct, nginx plain reverse proxy, xumm-gate (public route,
# signed in with the memory store, signed in with the Redis store: a redis-server of its own), then
# a route with two ledger conditions (cached) against one without (LEDGER=0 skips it), the access
# log's cost (ACCESS=0 skips it), tracing's (TRACING=0), this build against BASELINE's, then TLS. Access logs are on, as in real deployments: nginx's
# (combined, buffer=64k) and the gateway's (info level, to a file).
# Usage: [WORKERS=1] [ROUNDS=3] [BASELINE=older/xumm-gate] benches/load.sh [duration=10s] [connections=32]
# Installs nginx and wrk from Debian when missing. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
CONNS=${2:-32}
WORKERS=${WORKERS:-1}   # gateway worker threads = nginx worker_processes
ROUNDS=${ROUNDS:-3}     # nginx / public / signed-in runs, in turn
PERF=${PERF:-}          # perf arguments, e.g. PERF="record -F 2999 -o /tmp/perf.data": perf <args>
                        # -p <gateway pid> runs during the signed-in run

# shellcheck source=benches/setup.sh
. benches/setup.sh
UP=$(port); NG=$(port); GW=$(port); ADMIN=$(port); IDP=$(port); GWR_PORT=$(port); ADMIN_R=$(port); REDIS=$(port); GWQ=$(port); ADMIN_Q=$(port)

# Upstream: its own nginx process (one worker) serving a small static response, so that nginx the
# proxy and xumm-gate both reach it across processes, as they reach a real app. (Were it a server
# block inside the proxy's own nginx, nginx would answer itself in the same event loop.)
nginx_conf upstream 1 "server { listen 127.0.0.1:$UP; location / { return 200 \"hello from upstream\\n\"; } }"
nginx_conf proxy "$WORKERS" "upstream app { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NG; access_log $work/logs/proxy-access.log combined buffer=64k flush=1s;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

# The ledger node stand-in of the tests (xrpl.js data): a route needing two trust lines of its
# "rich" account, judged from the cache on every signed-in request.
[ -d tests/browser/node_modules/xrpl ] || (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
coproc LEDGER_NODE { cd tests/browser && exec node ledger.mjs; }
pids+=($LEDGER_NODE_PID)
read -r LEDGER_DATA <&"${LEDGER_NODE[0]}"
ledger() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$LEDGER_DATA" "$1"; }
ISSUER=$(ledger 'd["accounts"]["issuer"]'); RICH=$(ledger 'd["accounts"]["rich"]'); SOLO=$(ledger 'd["solo"]')
gate_toml "$work/gate.toml" "$GW" "$ADMIN" "$WORKERS" "" "" "[[route]]
path = \"/public\"
public = true

[[route]]
path = \"/held\"
[route.require]
all = [ { trustline = { currency = \"$SOLO\", issuer = \"$ISSUER\", min_balance = \"100\" } }, { trustline = { currency = \"USD\", issuer = \"$ISSUER\" } } ]

[ledger.MAINNET]
urls = [\"http://127.0.0.1:$(ledger 'd["port"]')/\"]
cache_ttl = \"1h\""
# Access lines at info level (to the file stderr goes to, as under systemd or a container
# runtime); the same gateway without them, for the access log's cost.
sed -e "s/127.0.0.1:$GW\"/127.0.0.1:$GWQ\"/; s/127.0.0.1:$ADMIN\"/127.0.0.1:$ADMIN_Q\"/" "$work/gate.toml" >"$work/gate-quiet.toml"
sed -i 's/^level = "warn"/level = "info"/' "$work/gate.toml"
# The same gateway with its sessions in Redis (signed-in requests are served from its L1).
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
sed -e "s/127.0.0.1:$GW\"/127.0.0.1:$GWR_PORT\"/; s/127.0.0.1:$ADMIN\"/127.0.0.1:$ADMIN_R\"/" \
    -e "s|^\[session\]|[session]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:$REDIS\"|" "$work/gate.toml" >"$work/gate-redis.toml"
"$BIN" dev-provider --listen "127.0.0.1:$IDP" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" >/dev/null 2>&1 &
pids+=($!)
"$BIN" run --config "$work/gate.toml" 2>"$work/gate.log" &
GATE_PID=$!
pids+=($GATE_PID)
"$BIN" run --config "$work/gate-redis.toml" 2>"$work/gate-redis.log" &
GATE_R_PID=$!
pids+=($GATE_R_PID)
"$BIN" run --config "$work/gate-quiet.toml" 2>"$work/gate-quiet.log" &
GATE_Q_PID=$!
pids+=($GATE_Q_PID)
for a in "$ADMIN" "$ADMIN_R" "$ADMIN_Q"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$a/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done
COOKIE=$(python3 benches/login.py "http://127.0.0.1:$GW" rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh)
curl -sf -H "Cookie: $COOKIE" "http://127.0.0.1:$GW/" >/dev/null || { echo "signed-in request failed" >&2; exit 1; }
COOKIE_R=$(python3 benches/login.py "http://127.0.0.1:$GWR_PORT" rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh)
curl -sf -H "Cookie: $COOKIE_R" "http://127.0.0.1:$GWR_PORT/" >/dev/null || { echo "signed-in request (redis) failed" >&2; exit 1; }

# CPU time (user + system, in clock ticks) of some processes, from /proc; utime: user only (the
# share of a request's cost the gateway's own code decides: the rest is the kernel's TCP).
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
utime() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
per_req() { awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN { printf "%.1f", t * 1000000 / hz / n }'; }
workers_of() { pgrep -f "nginx: worker process" -P "$(cat "$work/$1.pid")" | tr '\n' ' '; }
PROXY_PIDS=$(workers_of proxy); UPSTREAM_PIDS=$(workers_of upstream)

GATE_PIDS="$GATE_PID $GATE_R_PID"
run() { # name url [wrk args]: prints req/s, latency and the CPU each process spent per request
  local out rps p50 p99 reqs g0 p0 u0 g1 p1 u1 gu0 gu1
  # shellcheck disable=SC2086 # pid lists
  g0=$(ticks $GATE_PIDS); p0=$(ticks $PROXY_PIDS); u0=$(ticks $UPSTREAM_PIDS); gu0=$(utime $GATE_PIDS)
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" --latency "${@:3}" "$2")
  # shellcheck disable=SC2086
  g1=$(ticks $GATE_PIDS); p1=$(ticks $PROXY_PIDS); u1=$(ticks $UPSTREAM_PIDS); gu1=$(utime $GATE_PIDS)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-22s %10s req/s  p50 %-8s p99 %-8s cpu/req us: xumm-gate %5.1f (user %4.1f), nginx proxy %5.1f, upstream %5.1f\n' \
    "$1" "$rps" "$p50" "$p99" "$(per_req $((g1 - g0)) "$reqs")" "$(per_req $((gu1 - gu0)) "$reqs")" "$(per_req $((p1 - p0)) "$reqs")" "$(per_req $((u1 - u0)) "$reqs")" >&2
  echo "$rps"
}
echo "wrk -t1 -c$CONNS -d$DUR, gateway workers=$WORKERS, nginx worker_processes=$WORKERS, $ROUNDS rounds" >&2
run "upstream direct" "http://127.0.0.1:$UP/" >/dev/null
# This machine's speed drifts by +-15% within a minute, so nginx and xumm-gate take turns, round
# after round; each round's ratio compares runs seconds apart, and the median round is reported.
ratios=()
for round in $(seq "$ROUNDS"); do
  echo "round $round" >&2
  # the order rotates each round, so no contender always runs right after another
  for turn in $(seq 0 3); do
    case $(( (turn + round) % 4 )) in
      0) NGX=$(run "nginx proxy" "http://127.0.0.1:$NG/") ;;
      1) GWR=$(run "xumm-gate (public)" "http://127.0.0.1:$GW/public/") ;;
      2)
        if [ -n "$PERF" ] && [ "$round" = 1 ]; then
          # shellcheck disable=SC2086 # PERF is a list of arguments
          perf $PERF -p "$GATE_PID" -- sleep "${DUR%s}" 2>"$work/perf.txt" &
          PERF_PID=$!
        fi
        GWS=$(run "xumm-gate (signed in)" "http://127.0.0.1:$GW/" -H "Cookie: $COOKIE")
        if [ -n "$PERF" ] && [ "$round" = 1 ]; then wait "$PERF_PID" || true; cat "$work/perf.txt" >&2; fi
        ;;
      3) GWX=$(run "xumm-gate (redis store)" "http://127.0.0.1:$GWR_PORT/" -H "Cookie: $COOKIE_R") ;;
    esac
  done
  ratios+=("$(awk -v n="$NGX" -v p="$GWR" -v s="$GWS" -v x="$GWX" 'BEGIN { printf "%.3f %.3f %.3f", p / n, s / n, x / s }')")
done
printf '%s\n' "${ratios[@]}" | awk '{ p[NR] = $1; s[NR] = $2; x[NR] = $3; printf "round %d ratio xumm-gate/nginx: public %.2f, signed in %.2f; redis store/memory store signed in %.2f\n", NR, $1, $2, $3 }
  END { n = asort(p); asort(s); asort(x); m = int((n + 1) / 2); printf "median ratio xumm-gate/nginx: public %.2f, signed in %.2f; redis store/memory store, signed in: %.2f\n", p[m], s[m], x[m] }' >&2

# A against B in turns, round after round: "versus TITLE A-LABEL A-URL A-COOKIE B-LABEL B-URL
# B-COOKIE" prints each round's B / A and the median.
versus() {
  local rs=() a b round turn
  for round in $(seq "$ROUNDS"); do
    echo "$1 round $round" >&2
    for turn in 0 1; do
      case $(( (turn + round) % 2 )) in
        0) a=$(run "$2" "$3" -H "Cookie: $4") ;;
        1) b=$(run "$5" "$6" -H "Cookie: $7") ;;
      esac
    done
    rs+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')")
  done
  printf '%s\n' "${rs[@]}" | awk -v t="$1" -v a="$2" -v b="$5" '{ r[NR] = $1; printf "%s round %d ratio (%s) / (%s): %.2f\n", t, NR, b, a, $1 }
    END { n = asort(r); m = int((n + 1) / 2); printf "median ratio %s, (%s) / (%s): %.2f\n", t, b, a, r[m] }' >&2
}

# Ledger conditions: signed in as the stand-in's account, a route with two conditions (judged
# from the cache) against the route without any.
if [ "${LEDGER:-1}" = 1 ]; then
  COOKIE_L=$(python3 benches/login.py "http://127.0.0.1:$GW" "$RICH")
  curl -sf -H "Cookie: $COOKIE_L" "http://127.0.0.1:$GW/held/" >/dev/null || { echo "ledger route refused the holder" >&2; exit 1; }
  GATE_PIDS="$GATE_PID"
  versus ledger "signed in, no conditions" "http://127.0.0.1:$GW/" "$COOKIE_L" "signed in, 2 ledger conditions" "http://127.0.0.1:$GW/held/" "$COOKIE_L"
fi

# The access log's cost: the same signed-in request on the gateway writing an access line per
# request (info) and on one that does not (warn).
if [ "${ACCESS:-1}" = 1 ]; then
  COOKIE_Q=$(python3 benches/login.py "http://127.0.0.1:$GWQ" rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh)
  GATE_PIDS="$GATE_PID $GATE_Q_PID"
  versus "access log" "signed in, access log off" "http://127.0.0.1:$GWQ/" "$COOKIE_Q" "signed in, access log on" "http://127.0.0.1:$GW/" "$COOKIE"
  echo "access lines written: $(grep -c 'request' "$work/gate.log" || true)" >&2
fi

# Another gateway beside the first, from its config with other ports: "sibling NAME BIN
# [EXTRA-TOML]" starts BIN, waits until it is ready and signs in; sets SIB_URL, SIB_COOKIE and
# SIB_PID. (A baseline build may not know keys added since: those lines are left out.)
sibling() {
  local port admin conf="$work/gate-$1.toml"
  port=$(port); admin=$(port)
  sed -e "s/127.0.0.1:$GW\"/127.0.0.1:$port\"/; s/127.0.0.1:$ADMIN\"/127.0.0.1:$admin\"/" -e '/^audit = /d' "$work/gate.toml" >"$conf"
  printf '%s' "${3:-}" >>"$conf"
  "$2" run --config "$conf" 2>"$work/gate-$1.log" &
  SIB_PID=$!
  pids+=($SIB_PID)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  SIB_URL="http://127.0.0.1:$port/"
  SIB_COOKIE=$(python3 benches/login.py "http://127.0.0.1:$port" rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh)
}

# Tracing's cost: the same gateway exporting spans for 1% of requests (OTLP/HTTP, to the
# upstream nginx standing in for a collector) against it with tracing off. TRACING=0 skips it.
if [ "${TRACING:-1}" = 1 ]; then
  sibling traced "$BIN" "$(printf '\n[tracing]\notlp_endpoint = "http://127.0.0.1:%s/v1/traces"\nsample_ratio = 0.01\n' "$UP")"
  GATE_PIDS="$GATE_PID $SIB_PID"
  versus tracing "signed in, tracing off" "http://127.0.0.1:$GW/" "$COOKIE" "signed in, tracing on (1%)" "$SIB_URL" "$SIB_COOKIE"
fi

# This build against an earlier one (BASELINE=path/to/its/xumm-gate): the same config and
# signed-in request, for what a change costs (request ids and metrics: within 3%).
if [ -n "${BASELINE:-}" ]; then
  sibling base "$BASELINE"
  GATE_PIDS="$GATE_PID $SIB_PID"
  versus baseline "signed in, baseline build" "$SIB_URL" "$SIB_COOKIE" "signed in, this build" "http://127.0.0.1:$GW/" "$COOKIE"
fi

# HTTPS: nginx terminating TLS in front of the same upstream against xumm-gate's own TLS listener
# (signed in, sessions in the Redis store above so the same cookie works), with the same ECDSA
# P-256 certificate: keep-alive throughput, and new connections (a full TLS handshake for every
# request: "Connection: close"). TLS=0 skips it.
if [ "${TLS:-1}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
  NGS=$(port); GWS_PORT=$(port); ADMIN_S=$(port)
  nginx_conf tls "$WORKERS" "upstream app { server 127.0.0.1:$UP; keepalive 64; }
  ssl_session_cache shared:SSL:10m;
  server { listen 127.0.0.1:$NGS ssl; ssl_certificate $work/tls.crt; ssl_certificate_key $work/tls.key; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  sed -e "s/127.0.0.1:$GWR_PORT\"/127.0.0.1:$GWS_PORT\"/; s/127.0.0.1:$ADMIN_R\"/127.0.0.1:$ADMIN_S\"/" \
      -e "s|http://127.0.0.1:$GWS_PORT|https://127.0.0.1:$GWS_PORT|" "$work/gate-redis.toml" >"$work/gate-tls.toml"
  printf '\n[server.tls]\ncert = "%s"\nkey = "%s"\n' "$work/tls.crt" "$work/tls.key" >>"$work/gate-tls.toml"
  "$BIN" run --config "$work/gate-tls.toml" 2>"$work/gate-tls.log" &
  GATE_S_PID=$!
  pids+=($GATE_S_PID)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN_S/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sfk -H "Cookie: $COOKIE_R" "https://127.0.0.1:$GWS_PORT/" >/dev/null || { echo "signed-in request over TLS failed" >&2; cat "$work/gate-tls.log" >&2; exit 1; }
  GATE_PIDS="$GATE_S_PID"; PROXY_PIDS=$(workers_of tls)
  tls_ratios=()
  for round in $(seq "$ROUNDS"); do
    echo "TLS round $round" >&2
    for turn in $(seq 0 3); do
      case $(( (turn + round) % 4 )) in
        0) NK=$(run "nginx TLS keep-alive" "https://127.0.0.1:$NGS/") ;;
        1) GK=$(run "xumm-gate TLS signed in" "https://127.0.0.1:$GWS_PORT/" -H "Cookie: $COOKIE_R") ;;
        2) NH=$(run "nginx TLS handshakes" "https://127.0.0.1:$NGS/" -H "Connection: close") ;;
        3) GH=$(run "xumm-gate TLS handshakes" "https://127.0.0.1:$GWS_PORT/" -H "Cookie: $COOKIE_R" -H "Connection: close") ;;
      esac
    done
    tls_ratios+=("$(awk -v nk="$NK" -v gk="$GK" -v nh="$NH" -v gh="$GH" 'BEGIN { printf "%.3f %.3f", gk / nk, gh / nh }')")
  done
  printf '%s\n' "${tls_ratios[@]}" | awk '{ k[NR] = $1; h[NR] = $2; printf "TLS round %d ratio xumm-gate/nginx: signed in keep-alive %.2f, new connections %.2f\n", NR, $1, $2 }
    END { n = asort(k); asort(h); m = int((n + 1) / 2); printf "median TLS ratio xumm-gate/nginx: signed in keep-alive %.2f, new connections (handshakes) %.2f\n", k[m], h[m] }' >&2
fi
