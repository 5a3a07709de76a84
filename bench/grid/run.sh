#!/usr/bin/env bash
# `npm run bench:grid`: what an annotator waits for. Real Chromium, in a network namespace
# behind a 40 ms round trip, loads a labeling page with a grid of 200 distinct 64 KiB PNG
# images; the page times itself from navigation start to the last image decoded. Side by
# side in one run, rounds interleaved (order rotated each round), a fresh browser profile
# per page load, TLS everywhere:
#
#   nginx-h1          nginx over HTTP/1.1 serving the same files, no checks
#   nginx-h2          nginx over HTTP/2, no checks: the limit
#   keyhole-h1-local  Keyhole, server.http2: false, local provider
#   keyhole-h2-local  Keyhole, server.http2: true,  local provider
#   keyhole-h1-http   Keyhole, server.http2: false, http provider → nginx upstream (BasicAuth injected)
#   keyhole-h2-http   Keyhole, server.http2: true,  http provider → nginx upstream
#
# Every round checks the protocol the browser really negotiated (Resource Timing
# nextHopProtocol of the page and of all 200 images) against the contender's claim: a
# Keyhole that does not offer h2 fails its h2 rounds, it is never shown as HTTP/2.
# Writes a table to stdout, the "## Browser grid" section of bench/RESULTS.md, raw JSON in
# bench/grid/results.json (and bench/.work/grid/raw.jsonl).
#
#   npm run bench:grid                      7 rounds + 1 warm-up round, about 3 minutes
#   QUICK=1 npm run bench:grid              2 rounds + 1 warm-up: does everything work?
#   ROUNDS=15 GRID_CONTENDERS="nginx-h2 keyhole-h2-local" npm run bench:grid
#
# Knobs: ROUNDS (7), WARMUP (1), IMAGES (200), SIZE (65536), DELAY_MS (20, each way: RTT is
# twice it), GRID_CONTENDERS, PROXY_CPU (0: nginx and Keyhole), LOAD_CPU (1: the page/upstream
# nginx), BROWSER_CPUS (unset: Chromium, the curl probe and the delay unpinned), GRID_PORT_BASE (19700), KEYHOLE_REF (run Keyhole's src/
# from this commit instead of the working tree), DELAY_MODE (auto|netem|nfqueue),
# RESULTS_MD (bench/RESULTS.md), RESULTS_JSON (bench/grid/results.json), TIMEOUT_MS (60000).
#
# Needs root (network namespace, veth, tc/iptables), chromium, nginx, python3 (the NFQUEUE
# delay), iptables (installed with apt-get when missing). Everything it starts is stopped on
# exit, also on Ctrl-C; the namespace, the veth pair and the iptables rule are removed.
set -uo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$BENCH/lib.sh"
G=$BENCH/grid
GW=${GRID_WORK:-$W/grid}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then d_rounds=2; else d_rounds=7; fi
ROUNDS=${ROUNDS:-$d_rounds}; WARMUP=${WARMUP:-1}
IMAGES=${IMAGES:-200}; SIZE=${SIZE:-65536}; DELAY_MS=${DELAY_MS:-20}; TIMEOUT_MS=${TIMEOUT_MS:-60000}
GRID_CONTENDERS=${GRID_CONTENDERS:-"nginx-h1 nginx-h2 keyhole-h1-local keyhole-h2-local keyhole-h1-http keyhole-h2-http"}
DELAY_MODE=${DELAY_MODE:-auto}
RESULTS_MD=${RESULTS_MD:-$BENCH/RESULTS.md}; RESULTS_JSON=${RESULTS_JSON:-$G/results.json}
CHROMIUM_BIN=${CHROMIUM_BIN:-/usr/bin/chromium}
# Chromium (and the curl probe, the delay) run on BROWSER_CPUS: unpinned by default, as on an
# annotator's machine (a browser squeezed onto one core of two is what it would measure).
BROWSER_CPUS=${BROWSER_CPUS:-}
BPIN=""; [ -n "$BROWSER_CPUS" ] && BPIN="taskset -c $BROWSER_CPUS"

NS=keyhole-grid; VR=khg0; VN=khg1           # the browser's namespace; veth end in the root namespace / in NS
HOST_IP=10.250.77.1; NS_IP=10.250.77.2      # a private /30
Q_IN=7701; Q_OUT=7702                       # NFQUEUE numbers: browser→servers (root ns), servers→browser (NS)
PB=${GRID_PORT_BASE:-19700}
P_PAGE=$PB; P_NGINX_H1=$((PB + 1)); P_NGINX_H2=$((PB + 2)); P_KH1=$((PB + 3)); P_KH2=$((PB + 4))
RAWG=$GW/raw.jsonl
KH=$GW/keyhole                              # the Keyhole source snapshot that runs

mkdir -p "$W/logs" "$GW/run" "$GW/logs" "$GW/www/img" "$GW/nginx-tmp"
rm -f "$RAWG"
PIDS_NGINX=""; PIDS_KH=""; PIDS_DELAY=""; IPT=""; RULE_IN=0
glog() { printf '[grid %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_pid() { kill -TERM "$1" 2>/dev/null; local i; for i in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; kill -KILL "$1" 2>/dev/null; }
teardown_net() {
  if [ -n "$IPT" ]; then while $IPT -t raw -D PREROUTING -i "$VR" -j NFQUEUE --queue-num "$Q_IN" 2>/dev/null; do :; done; fi
  ip netns del "$NS" 2>/dev/null    # takes its veth end, its rules and its qdiscs along
  ip link del "$VR" 2>/dev/null
  return 0
}
cleanup() {
  local p
  for p in $PIDS_KH $PIDS_NGINX; do stop_pid "$p"; done
  for p in $PIDS_DELAY; do stop_pid "$p"; done
  teardown_net
  local left; left=$(ss -ltnH 2>/dev/null | awk '{print $4}' | grep -E ":($P_PAGE|$P_NGINX_H1|$P_NGINX_H2|$P_KH1|$P_KH2|$((P_KH1 + ADMIN_OFFSET))|$((P_KH2 + ADMIN_OFFSET)))\$")
  [ -z "$left" ] || glog "WARNING: still listening after cleanup: $left"
}
trap cleanup EXIT
trap 'glog "interrupted"; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root: network namespaces, veth, tc/iptables"
cd "$ROOT" || die "no repo root"

# --- tools ----------------------------------------------------------------------------
[ -x "$CHROMIUM_BIN" ] || die "$CHROMIUM_BIN is missing: apt-get install -y chromium"
command -v nginx >/dev/null && command -v curl >/dev/null || apt_install nginx curl || die "cannot install nginx/curl"
command -v python3 >/dev/null || apt_install python3 || die "cannot install python3"
nginx -V 2>&1 | grep -q http_v2_module || die "this nginx has no http_v2_module"

# --- Keyhole: a snapshot of src/ (the working tree, or KEYHOLE_REF), run from source -------
snapshot() { # ref ("" = working tree)
  rm -rf "$KH"; mkdir -p "$KH"
  if [ -z "$1" ]; then cp -r "$ROOT/src" "$ROOT/package.json" "$KH/" || return 1
  else git -C "$ROOT" archive "$1" src package.json | tar -x -C "$KH" || return 1; fi
  ln -s "$ROOT/node_modules" "$KH/node_modules"
}
kh() { node $KEYHOLE_NODE_FLAGS "$KH/src/cli.ts" "$@"; }
if [ -n "${KEYHOLE_REF:-}" ]; then
  snapshot "$KEYHOLE_REF" || die "cannot take src/ at $KEYHOLE_REF"
  BUILT_FROM="commit $(git -C "$ROOT" rev-parse --short "$KEYHOLE_REF")"
else
  snapshot "" || die "cannot copy src/"
  BUILT_FROM="$(git -C "$ROOT" rev-parse --short HEAD) + working tree ($(git -C "$ROOT" status --short -- src | wc -l) changed files under src/)"
fi
kh --version >/dev/null 2>&1 || { glog "the working tree's Keyhole does not start (kh --version): running HEAD's src/"; snapshot HEAD || die "cannot take HEAD"; BUILT_FROM="commit $(git -C "$ROOT" rev-parse --short HEAD) (working tree did not start)"; }
glog "Keyhole: $BUILT_FROM, run as node $KEYHOLE_NODE_FLAGS src/cli.ts serve"

# --- certificates (a CA made for this run), secrets ---------------------------------------
rm -rf "$GW/certs"
kh certs --dir "$GW/certs" --host "$HOST_IP" --host localhost >"$GW/logs/certs.log" 2>&1 || die "keyhole certs failed (see $GW/logs/certs.log)"
SPKI=$(openssl x509 -in "$GW/certs/server.pem" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))' >"$GW/run/hs256.secret"
node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("base64url"))' >"$GW/run/admin.token"
printf 'pass' >"$GW/run/upstream.password"

keyhole_yaml() { # name port http2-line
  cat >"$GW/run/$1.yaml" <<YAML
# Keyhole as the grid benchmark runs it: TLS, token verified (HS256 + iss/aud/exp, cached),
# scope checked, revocation (memory), one audit line per request, metrics; the page comes
# from the app front (the "labeling app" is the page nginx), the images from the data route.
server:
  listen: { host: $HOST_IP, port: $2 }
  tls: { cert: $GW/certs/server.pem, key: $GW/certs/server-key.pem }
  publicUrl: https://$HOST_IP:$2
$3
admin:
  listen: { host: 127.0.0.1, port: $(($2 + ADMIN_OFFSET)) }
  token: \${file:$GW/run/admin.token}
auth:
  issuer: keyhole-grid
  audience: keyhole
  keys:
    - kid: grid
      algorithms: [HS256]
      secret: \${file:$GW/run/hs256.secret}
revocation: { store: memory }
log: { level: info, audit: true }
app:
  upstream: http://127.0.0.1:$P_PAGE
providers:
  - name: grid-local
    kind: local
    match: local://grid/
    root: $GW/www/img
  - name: grid-http
    kind: http
    match: https://data.grid/img/
    baseUrl: http://127.0.0.1:$P_PAGE/img/
    allowPrivateNetworks: true
    auth: { type: basic, username: user, password: "\${file:$GW/run/upstream.password}" }
YAML
  echo "$GW/run/$1.yaml"
}
# server.http2 is being added: a build that does not know the key refuses it. Then both
# configs leave it out (that build serves HTTP/1.1 only) and the h2 rounds say so.
H2KEY=1
Y1=$(keyhole_yaml keyhole-h1 "$P_KH1" '  http2: false'); Y2=$(keyhole_yaml keyhole-h2 "$P_KH2" '  http2: true')
if ! kh check-config "$Y1" "$Y2" >"$GW/logs/check-config.log" 2>&1; then
  if grep -q 'http2' "$GW/logs/check-config.log"; then
    H2KEY=0; glog "this Keyhole does not know server.http2 ($(grep -m1 http2 "$GW/logs/check-config.log")): both Keyholes run without it"
    Y1=$(keyhole_yaml keyhole-h1 "$P_KH1" ''); Y2=$(keyhole_yaml keyhole-h2 "$P_KH2" '')
    kh check-config "$Y1" "$Y2" >"$GW/logs/check-config.log" 2>&1 || { cat "$GW/logs/check-config.log" >&2; die "grid config refused"; }
  else cat "$GW/logs/check-config.log" >&2; die "grid config refused"; fi
fi
TOKEN=$(kh token --config "$Y1" --sub grid-annotator --scope local://grid/ --scope https://data.grid/img/ --ttl 14400 2>"$GW/logs/token.log") || { cat "$GW/logs/token.log" >&2; die "keyhole token failed"; }

# --- data: images (made once), pages ------------------------------------------------------
node "$G/make-data.mjs" "$GW/www" "$IMAGES" "$SIZE" "$TOKEN" >&2 || die "make-data failed"

# --- servers ------------------------------------------------------------------------------
cat >"$GW/run/nginx-common.inc" <<CONF
access_log off;
sendfile on;
tcp_nopush on;
tcp_nodelay on;
keepalive_timeout 120s;
server_tokens off;
types { text/html html; image/png png; }
default_type application/octet-stream;
client_body_temp_path $GW/nginx-tmp/body;
proxy_temp_path $GW/nginx-tmp/proxy;
fastcgi_temp_path $GW/nginx-tmp/fastcgi;
uwsgi_temp_path $GW/nginx-tmp/uwsgi;
scgi_temp_path $GW/nginx-tmp/scgi;
CONF
# The page server (Keyhole's app upstream) and the http provider's storage (BasicAuth), on loopback.
cat >"$GW/run/page.conf" <<CONF
worker_processes 1;
pid $GW/run/page.pid;
error_log $GW/logs/page.err warn;
events { worker_connections 4096; }
http {
  include $GW/run/nginx-common.inc;
  server {
    listen 127.0.0.1:$P_PAGE;
    location /grid/ { root $GW/www; }
    location /img/ {
      if (\$http_authorization != "Basic dXNlcjpwYXNz") { return 401; }
      root $GW/www;
    }
  }
}
CONF
# The nginx contenders: the same files, TLS, no checks; HTTP/1.1 and HTTP/2 on two ports.
cat >"$GW/run/nginx.conf" <<CONF
worker_processes 1;
pid $GW/run/nginx.pid;
error_log $GW/logs/nginx.err warn;
events { worker_connections 4096; }
http {
  include $GW/run/nginx-common.inc;
  ssl_certificate $GW/certs/server.pem;
  ssl_certificate_key $GW/certs/server-key.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  server { listen $HOST_IP:$P_NGINX_H1 ssl;       root $GW/www; }
  server { listen $HOST_IP:$P_NGINX_H2 ssl http2; root $GW/www; }
}
CONF

# The veth's root end carries $HOST_IP: it must exist before anything listens there.
setup_link() {
  teardown_net   # a run killed hard may have left them
  ip netns add "$NS" && ip link add "$VR" type veth peer name "$VN" && ip link set "$VN" netns "$NS" \
    && ip addr add "$HOST_IP/30" dev "$VR" && ip link set "$VR" up \
    && ip -n "$NS" addr add "$NS_IP/30" dev "$VN" && ip -n "$NS" link set "$VN" up && ip -n "$NS" link set lo up
}
setup_link || die "cannot make the network namespace and veth pair (ip netns / ip link failed)"

taskset -c "$LOAD_CPU" nginx -c "$GW/run/page.conf" -g 'daemon off;' >>"$GW/logs/page.out" 2>&1 & PIDS_NGINX="$!"
taskset -c "$PROXY_CPU" nginx -c "$GW/run/nginx.conf" -g 'daemon off;' >>"$GW/logs/nginx.out" 2>&1 & PIDS_NGINX="$PIDS_NGINX $!"
for y in "$Y1" "$Y2"; do
  taskset -c "$PROXY_CPU" node $KEYHOLE_NODE_FLAGS "$KH/src/cli.ts" serve --config "$y" >"$GW/logs/$(basename "$y" .yaml).out" 2>&1 &
  PIDS_KH="$PIDS_KH $!"
done

port_of() { case $1 in nginx-h1) echo $P_NGINX_H1;; nginx-h2) echo $P_NGINX_H2;; keyhole-h1-*) echo $P_KH1;; keyhole-h2-*) echo $P_KH2;; esac; }
page_of() { case $1 in nginx-*) echo nginx.html;; keyhole-*-local) echo keyhole-local.html;; keyhole-*-http) echo keyhole-http.html;; esac; }
img_of() { case $1 in nginx-*) echo "/img/img-007.png?token=$TOKEN";; keyhole-*-local) echo "/v1/data?uri=local%3A%2F%2Fgrid%2Fimg-007.png&token=$TOKEN";; keyhole-*-http) echo "/v1/data?uri=https%3A%2F%2Fdata.grid%2Fimg%2Fimg-007.png&token=$TOKEN";; esac; }
expect_of() { case $1 in *-h2*) echo h2;; *) echo http/1.1;; esac; }
hcurl() { curl -s --cacert "$GW/certs/ca.pem" "$@"; }
up() { local i; for i in $(seq 1 200); do [ "$(hcurl -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.1; done; return 1; }
for c in $GRID_CONTENDERS; do
  [ -n "$(port_of "$c")" ] || die "unknown contender $c (known: nginx-h1 nginx-h2 keyhole-h1-local keyhole-h2-local keyhole-h1-http keyhole-h2-http)"
  up "https://$HOST_IP:$(port_of "$c")/grid/$(page_of "$c")" || { tail -20 "$GW"/logs/*.out "$GW"/logs/*.err >&2 2>/dev/null; die "$c: its page is not served on https://$HOST_IP:$(port_of "$c")"; }
done

# --- correctness, from the root namespace (no delay): bytes exact, refusals, ALPN offered ---
CHECKS="["
for c in $GRID_CONTENDERS; do
  base="https://$HOST_IP:$(port_of "$c")"
  got=$(hcurl "$base$(img_of "$c")" | md5sum | cut -c1-32); want=$(md5sum <"$GW/www/img/img-007.png" | cut -c1-32)
  alpn=$(hcurl --http2 -o /dev/null -w '%{http_version}' "$base$(img_of "$c")")
  case $c in keyhole-*) notoken=$(hcurl -o /dev/null -w '%{http_code}' "$base$(img_of "$c" | sed 's/&token=.*//')");; *) notoken=null;; esac
  [ "$got" = "$want" ] || glog "WARNING: $c: image bytes differ"
  glog "check $c: bytes_ok=$([ "$got" = "$want" ] && echo true || echo false) curl --http2 got HTTP/$alpn no_token=$notoken"
  CHECKS="$CHECKS{\"contender\":\"$c\",\"bytes_ok\":$([ "$got" = "$want" ] && echo true || echo false),\"curl_http_version\":\"$alpn\",\"no_token\":$notoken},"
done
CHECKS="${CHECKS%,}]"

# --- the delay: netem when the kernel has it, else NFQUEUE + nfq-delay.py -----------------------
MODE=""
if [ "$DELAY_MODE" != nfqueue ] && tc qdisc add dev "$VR" root netem delay "${DELAY_MS}ms" limit 100000 2>"$GW/logs/netem.err" \
   && tc -n "$NS" qdisc add dev "$VN" root netem delay "${DELAY_MS}ms" limit 100000 2>>"$GW/logs/netem.err"; then
  MODE=netem
  MODE_NOTE="tc netem delay ${DELAY_MS}ms on both veth ends"
else
  [ "$DELAY_MODE" = netem ] && die "netem requested but: $(cat "$GW/logs/netem.err")"
  NETEM_ERR=$(head -1 "$GW/logs/netem.err" 2>/dev/null)
  WHY="tc netem: ${NETEM_ERR:-not tried}"
  if [ -r /proc/config.gz ]; then WHY="$WHY; kernel $(uname -r): $(zcat /proc/config.gz | grep -E '^# CONFIG_NET_SCH_NETEM is not set|^CONFIG_NET_SCH_NETEM=' || echo 'CONFIG_NET_SCH_NETEM unknown')$(zcat /proc/config.gz | grep -q '^CONFIG_MODULES=y' || echo ', no loadable modules (CONFIG_MODULES unset)')"; fi
  glog "netem unavailable ($WHY): delaying through NFQUEUE instead"
  command -v iptables >/dev/null || apt_install iptables || die "no netem and cannot install iptables for NFQUEUE"
  for cand in iptables iptables-legacy; do
    if command -v $cand >/dev/null && $cand -t raw -S PREROUTING >/dev/null 2>&1; then IPT=$cand; break; fi
  done
  [ -n "$IPT" ] || die "no working iptables"
  rm -f "$GW/run/nfq-in.ready" "$GW/run/nfq-out.ready"
  # Real-time priority: netem runs in the kernel, ahead of every process; so must this, or a busy
  # core would stretch the delay (chrt falls back to normal priority where refused).
  RT="chrt -f 50"; $RT true 2>/dev/null || RT=""
  $BPIN $RT python3 "$G/nfq-delay.py" "$Q_IN" "$DELAY_MS" "$GW/run/nfq-in.ready" >"$GW/logs/nfq-in.json" 2>"$GW/logs/nfq-in.err" & PIDS_DELAY="$!"
  ip netns exec "$NS" $BPIN $RT python3 "$G/nfq-delay.py" "$Q_OUT" "$DELAY_MS" "$GW/run/nfq-out.ready" >"$GW/logs/nfq-out.json" 2>"$GW/logs/nfq-out.err" & PIDS_DELAY="$PIDS_DELAY $!"
  for i in $(seq 1 50); do [ -s "$GW/run/nfq-in.ready" ] && [ -s "$GW/run/nfq-out.ready" ] && break; sleep 0.1; done
  [ -s "$GW/run/nfq-in.ready" ] && [ -s "$GW/run/nfq-out.ready" ] || { cat "$GW"/logs/nfq-*.err >&2; die "nfq-delay.py did not bind its queues"; }
  # Ingress hooks only (the held packets no longer belong to the sending socket: no TCP small-queue throttling).
  $IPT -t raw -I PREROUTING -i "$VR" -j NFQUEUE --queue-num "$Q_IN" || die "iptables NFQUEUE rule (root namespace)"
  ip netns exec "$NS" $IPT -t raw -I PREROUTING -i "$VN" -j NFQUEUE --queue-num "$Q_OUT" || die "iptables NFQUEUE rule (namespace)"
  MODE=nfqueue
  MODE_NOTE="NFQUEUE: every packet held ${DELAY_MS} ms by bench/grid/nfq-delay.py, browser→servers at the root namespace's PREROUTING on $VR, servers→browser at the namespace's PREROUTING on $VN (netem is not in this kernel: $WHY)"
fi

# The round trip as TCP sees it: connect time from inside the namespace (SYN → SYN-ACK).
RTTS=""
for i in 1 2 3 4 5; do RTTS="$RTTS $(ip netns exec "$NS" curl -s -o /dev/null --cacert "$GW/certs/ca.pem" -w '%{time_connect}' "https://$HOST_IP:$P_NGINX_H1/grid/nginx.html")"; done
RTT_MS=$(echo $RTTS | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}')
glog "delay: $MODE; TCP connect from the namespace: median ${RTT_MS} ms (samples:$RTTS s)"
awk -v r="$RTT_MS" -v d="$DELAY_MS" 'BEGIN { exit !(r >= 1.8 * d) }' || die "the delay is not in effect: connect takes $RTT_MS ms, expected ≈ $((2 * DELAY_MS)) ms"

# The network alone: curl fetches the same 200 images from nginx over one HTTP/2 connection
# from inside the namespace (no browser, no decoding): what the link and TCP allow.
for i in $(seq 0 $((IMAGES - 1))); do printf 'url = "https://%s:%s/img/img-%03d.png"\noutput = "/dev/null"\n' "$HOST_IP" "$P_NGINX_H2" "$i"; done >"$GW/run/curl-grid.cfg"
NETFLOOR=""
for i in 1 2 3; do
  t0=$(date +%s%N)
  ip netns exec "$NS" $BPIN curl -s --no-progress-meter --http2 --parallel --parallel-max 200 --cacert "$GW/certs/ca.pem" -K "$GW/run/curl-grid.cfg" 2>>"$GW/logs/curl-probe.err" || glog "curl network probe failed (see $GW/logs/curl-probe.err)"
  NETFLOOR="$NETFLOOR $(( ($(date +%s%N) - t0) / 1000000 ))"
done
NETFLOOR_MS=$(echo $NETFLOOR | tr ' ' '\n' | sort -n | sed -n 2p)
glog "network alone: curl, $IMAGES images over one HTTP/2 connection from the namespace: $NETFLOOR ms (median $NETFLOOR_MS)"

# --- Chromium inside the namespace, pinned; playwright drives it from here over its pipe ------
cat >"$GW/run/chromium-netns.sh" <<SH
#!/bin/sh
exec ip netns exec $NS $BPIN $CHROMIUM_BIN "\$@"
SH
chmod +x "$GW/run/chromium-netns.sh"
CHROME_VERSION=$("$CHROMIUM_BIN" --version 2>/dev/null | tail -1)

node -e '
const [host, list, kh1, kh2, n1, n2] = process.argv.slice(1);
const port = { "nginx-h1": n1, "nginx-h2": n2 };
const page = (c) => c.startsWith("nginx") ? "nginx.html" : c.endsWith("-local") ? "keyhole-local.html" : "keyhole-http.html";
const out = list.trim().split(/\s+/).map((c) => ({ name: c, url: `https://${host}:${port[c] ?? (c.startsWith("keyhole-h1") ? kh1 : kh2)}/grid/${page(c)}`, expect: c.includes("-h2") ? "h2" : "http/1.1" }));
process.stdout.write(JSON.stringify(out, null, 1));' "$HOST_IP" "$GRID_CONTENDERS" "$P_KH1" "$P_KH2" "$P_NGINX_H1" "$P_NGINX_H2" >"$GW/run/contenders.json"

js() { node -e 'process.stdout.write(JSON.stringify(process.argv[1] ?? ""))' -- "$1"; }
echo "{\"type\":\"meta\",\"started\":\"$(date -u +%FT%TZ)\",\"loadavg_start\":$(js "$(cut -d' ' -f1-3 /proc/loadavg)"),\"rounds\":$ROUNDS,\"warmup\":$WARMUP,\"images\":$IMAGES,\"size\":$SIZE,\"delay_ms\":$DELAY_MS,\"delay_mode\":\"$MODE\",\"delay_note\":$(js "$MODE_NOTE"),\"rtt_connect_ms\":$RTT_MS,\"curl_h2_ms\":${NETFLOOR_MS:-null},\"curl_h2_samples\":$(js "$NETFLOOR"),\"chromium\":$(js "$CHROME_VERSION"),\"node\":$(js "$(node -v)"),\"nginx\":$(js "$(nginx -v 2>&1)"),\"kernel\":$(js "$(uname -r)"),\"cpus\":$(nproc),\"cpu_model\":$(js "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"),\"proxy_cpu\":$PROXY_CPU,\"load_cpu\":$LOAD_CPU,\"browser_cpus\":$(js "${BROWSER_CPUS:-all}"),\"delay_rt\":$(js "${RT:-}"),\"keyhole\":$(js "$BUILT_FROM"),\"git\":$(js "$(git -C "$ROOT" log -1 --format='%h %s')"),\"http2_key\":$H2KEY,\"keyhole_node_flags\":$(js "$KEYHOLE_NODE_FLAGS"),\"contenders\":$(node -e 'process.stdout.write(JSON.stringify(process.argv[1].trim().split(/\s+/)))' "$GRID_CONTENDERS"),\"checks\":$CHECKS}" >>"$RAWG"

glog "$ROUNDS rounds + $WARMUP warm-up of: $GRID_CONTENDERS (Chromium $CHROME_VERSION, $IMAGES × $SIZE B, RTT ≈ $((2 * DELAY_MS)) ms via $MODE)"
CONTENDERS_FILE="$GW/run/contenders.json" RAW="$RAWG" ROUNDS="$ROUNDS" WARMUP="$WARMUP" CHROMIUM="$GW/run/chromium-netns.sh" \
  SPKI="$SPKI" TIMEOUT_MS="$TIMEOUT_MS" IMAGES="$IMAGES" SIZE="$SIZE" node "$G/drive.ts"
DRIVE_RC=$?
[ $DRIVE_RC = 0 ] || glog "the driver exited with $DRIVE_RC"

# Audit lines and requests counted by each Keyhole (proof the checks ran on every image).
AUD="["
for i in 1 2; do
  p=$([ $i = 1 ] && echo $P_KH1 || echo $P_KH2); n=$([ $i = 1 ] && echo keyhole-h1 || echo keyhole-h2)
  served=$(curl -s -H "Authorization: Bearer $(cat "$GW/run/admin.token")" "http://127.0.0.1:$((p + ADMIN_OFFSET))/metrics" | awk '/^keyhole_requests_total\{/ {s += $NF} END {printf "%d", s}')
  AUD="$AUD{\"keyhole\":\"$n\",\"metrics_requests\":${served:-0},\"audit_lines\":$(grep -c '"kind":"audit"' "$GW/logs/$n.out")},"
done
AUD="${AUD%,}]"
for p in $PIDS_DELAY; do stop_pid "$p"; done; PIDS_DELAY=""
DSTATS="[$(cat "$GW"/logs/nfq-*.json 2>/dev/null | paste -sd, -)]"
echo "{\"type\":\"end\",\"ended\":\"$(date -u +%FT%TZ)\",\"loadavg_end\":$(js "$(cut -d' ' -f1-3 /proc/loadavg)"),\"driver_exit\":$DRIVE_RC,\"keyhole_counts\":$AUD,\"delay_stats\":$DSTATS}" >>"$RAWG"

node "$G/summarize.mjs" "$RAWG" "$RESULTS_MD" "$RESULTS_JSON" || die "summarize failed"
exit $DRIVE_RC
