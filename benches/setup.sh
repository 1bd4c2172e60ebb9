# Shared by the whole-gateway benchmarks (sourced, not run): the tools they need (wrk, nginx and
# redis-server from Debian when missing), a release build, a scratch directory with every
# process started there stopped on exit (nginx by its configs), and free loopback ports.
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet
BIN=target/release/xumm-gate
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "$work"/*.conf; do [ -e "$c" ] && "$NGINX" -p "$work" -c "$c" -s stop 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# nginx_conf NAME WORKERS SERVERS: starts an nginx with these server blocks (access log off
# unless a server turns it on), its files in the scratch directory.
mkdir -p "$work/logs"
nginx_conf() {
  cat > "$work/$1.conf" <<NGINX
worker_processes $2;
error_log $work/logs/$1.log warn;
pid $work/$1.pid;
events { worker_connections 4096; }
http {
  access_log off;
  $3
}
NGINX
  "$NGINX" -p "$work" -c "$work/$1.conf"
}

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
CLIENT_ID=bench-client; CLIENT_SECRET=bench-secret
COOKIE_SECRET=$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')

# gate_toml FILE PORT ADMIN-PORT WORKERS SERVER-LINES SESSION-LINES [MORE]: a gateway config in
# front of the upstream at $UP, signing in with the development provider at $IDP.
gate_toml() {
  cat > "$1" <<TOML
[server]
listen = "127.0.0.1:$2"
admin_listen = "127.0.0.1:$3"
workers = $4
public_url = "http://127.0.0.1:$2"
$5
[log]
level = "warn"
[provider]
issuer = "http://127.0.0.1:$IDP"
client_id = "$CLIENT_ID"
client_secret = "$CLIENT_SECRET"
[session]
cookie_secrets = ["$COOKIE_SECRET"]
$6
[[upstream]]
path = "/"
url = "http://127.0.0.1:$UP"
${7:-}
TOML
}
