# Shared helpers for bench/run.sh and bench/profile.sh (sourced, not run).
# Pinning (2 cores): upstream nginx and the load generator (wrk -t1) on LOAD_CPU, the
# contender under test (every process of it) alone on PROXY_CPU.

BENCH=${BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
ROOT=$(cd "$BENCH/.." && pwd)
W=${BENCH_WORK:-$BENCH/.work}          # everything generated: build, data, configs, logs, raw results
BUILD=$W/build                          # Keyhole compiled here (not dist/: others may be building it)
BUILD_BASE=$W/build-base                # BASE_REF=<commit>: the baseline Keyhole (contender keyhole-base)
RAW=$W/raw.jsonl
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASIC='Basic dXNlcjpwYXNz'             # user:pass, what the upstream demands
SCOPE='https://data.bench/obj/'
TOKENS=$W/run/tokens.txt

# Fixed loopback ports, away from the ephemeral range the tests use.
PB=${BENCH_PORT_BASE:-19400}
P_UP=$PB; P_NGINX=$((PB + 1)); P_AUTHREQ=$((PB + 2)); P_UNDICI=$((PB + 3)); P_KEYHOLE=$((PB + 4))
P_NGINX_TLS=$((PB + 5)); P_KEYHOLE_TLS=$((PB + 6)); P_KEYHOLE_W2=$((PB + 7)); P_KEYHOLE_FLAT=$((PB + 8))
P_KEYHOLE_PROF=$((PB + 9)); P_VERIFIER=$((PB + 20))
P_DISPATCH=$((PB + 10)); P_HTTPPROXY=$((PB + 11)); P_FASTIFY=$((PB + 12)); P_CADDY=$((PB + 13))
P_KEYHOLE_BASE=$((PB + 14))
# Limits on (LIMITS=1): Keyhole with limits in Redis, two ways; the Redis they share (TLS).
P_KEYHOLE_LIMITS=$((PB + 15)); P_KEYHOLE_LIMITS_RT=$((PB + 16)); P_REDIS=$((PB + 17))
# Authorizer mode: nginx auth_request / Caddy forward_auth in front, asking the Keyhole on
# P_AUTHZ_KEYHOLE (TLS, as shipped) for /v1/authorize; one of them runs at a time.
P_NGINX_AUTHZ=$((PB + 21)); P_CADDY_AUTHZ=$((PB + 22)); P_AUTHZ_KEYHOLE=$((PB + 23))
PEERS=$W/peers                          # the Node peers (http-proxy, fastify), installed here, never in the project
# Keyhole runs with the node flags its own start command uses (package.json scripts.start, the
# image's ENTRYPOINT and the bin's shebang carry the same: test/ops/container.test.ts).
KEYHOLE_NODE_FLAGS=${KEYHOLE_NODE_FLAGS-$(node -p 'require(process.argv[1]).scripts.start.replace(/^node (.*?) ?(dist\/cli\.js|src\/cli\.ts) serve$/, "$1")' "$ROOT/package.json")}
ADMIN_OFFSET=100                        # each Keyhole's admin listener: its port + 100

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# apt-get with retries: other sessions on this machine may hold the dpkg lock.
apt_install() {
  local i
  for i in $(seq 1 60); do
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$W/logs/apt.log" 2>&1; then return 0; fi
    if grep -q 'Unable to locate package\|has no installation candidate' "$W/logs/apt.log"; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$W/logs/apt.log" 2>&1 || true
    fi
    log "apt-get install $* failed (lock held?), retry $i/60"; sleep 5
  done
  cat "$W/logs/apt.log" >&2; return 1
}

ensure_tools() {
  if ! { command -v nginx >/dev/null && command -v wrk >/dev/null && command -v curl >/dev/null && command -v taskset >/dev/null; }; then
    log "installing nginx, wrk, curl from Debian packages"
    apt_install nginx wrk curl util-linux || die "cannot install nginx/wrk"
    # Debian may start a system nginx on :80 on install; we never use it and do not touch it.
  fi
  # Caddy is a contender, not a requirement: without it the run says so and goes on.
  if ! command -v caddy >/dev/null; then
    log "installing caddy from Debian packages"
    apt_install caddy || log "caddy could not be installed: the Caddy contender is left out"
  fi
}

# The Node peers from the anchors, at the versions the anchors measured, in bench/.work/peers.
ensure_peers() {
  [ -f "$PEERS/node_modules/http-proxy/package.json" ] && [ -f "$PEERS/node_modules/@fastify/http-proxy/package.json" ] && return 0
  log "installing the Node peers (http-proxy, fastify + @fastify/http-proxy) into $PEERS"
  mkdir -p "$PEERS"
  [ -f "$PEERS/package.json" ] || echo '{"name":"keyhole-bench-peers","private":true}' >"$PEERS/package.json"
  (cd "$PEERS" && npm install --no-audit --no-fund --no-save http-proxy@^1.18.1 fastify@^5.12.8 @fastify/http-proxy@^11.6.3) >"$W/logs/peers.log" 2>&1 \
    || log "the Node peers could not be installed (see $W/logs/peers.log): http-proxy and fastify are left out"
}

# Fill the templates: @WORK@, ports.
render() { # template → output
  sed -e "s#@WORK@#$W#g" -e "s#@P_UP@#$P_UP#g" -e "s#@P_NGINX@#$P_NGINX#g" -e "s#@P_NGINX_TLS@#$P_NGINX_TLS#g" \
      -e "s#@P_AUTHREQ@#$P_AUTHREQ#g" -e "s#@P_VERIFIER@#$P_VERIFIER#g" -e "s#@P_CADDY@#$P_CADDY#g" "$1" >"$2"
}

# The shipped authorizer examples (deploy/authorizer/nginx.conf, Caddyfile), as the tests run
# them (test/helpers/data-planes.ts): each FROM replaced by its TO, literally; a FROM that is
# no longer in the example stops the run (the example changed under the bench).
rewrite_example() { # example output from1 to1 [from2 to2 …]
  node -e '
    const fs = require("fs");
    const [src, out, ...pairs] = process.argv.slice(1);
    let text = fs.readFileSync(src, "utf8");
    for (let i = 0; i < pairs.length; i += 2) {
      const next = text.split(pairs[i]).join(pairs[i + 1]);
      if (next === text) { console.error(`${src} no longer holds ${JSON.stringify(pairs[i])}`); process.exit(1); }
      text = next;
    }
    fs.writeFileSync(out, text);
  ' "$@"
}
# What the bench changes in them: addresses, ports, file paths (the bench's dev CA, whose
# server certificate names localhost), and one thing more, said in RESULTS.md: the client side
# is plain HTTP like every other contender's in the plain-HTTP tables (nginx: no `ssl` on the
# listen, with the bench listeners' backlog; Caddy: an http:// site, no tls line, no automatic
# HTTPS). The hop to Keyhole stays as shipped: https, certificate verified, keepalive.
render_authz() {
  local ex=$ROOT/deploy/authorizer
  render "$BENCH/conf/nginx-authz.conf.in" "$W/run/nginx-authz.conf"
  rewrite_example "$ex/nginx.conf" "$W/run/nginx-authz.site.conf" \
    'server keyhole.internal:8443;' "server 127.0.0.1:$P_AUTHZ_KEYHOLE;" \
    'proxy_ssl_name keyhole.internal;' 'proxy_ssl_name localhost;' \
    'listen 443 ssl;' "listen 127.0.0.1:$P_NGINX_AUTHZ backlog=4096 reuseport;" \
    '/etc/nginx/tls/data.example.org.crt' "$W/certs/server.pem" \
    '/etc/nginx/tls/data.example.org.key' "$W/certs/server-key.pem" \
    '/etc/nginx/tls/keyhole-ca.pem' "$W/certs/ca.pem" \
    'server files.internal:443;' "server 127.0.0.1:$P_UP;" \
    '    files   $keyhole_scheme://keyhole_storage_files' '    upstream   $keyhole_scheme://keyhole_storage_files' || return 1
  rewrite_example "$ex/Caddyfile" "$W/run/Caddyfile-authz" \
    'https://keyhole.internal:8443' "https://127.0.0.1:$P_AUTHZ_KEYHOLE" \
    'tls_server_name keyhole.internal' 'tls_server_name localhost' \
    'data.example.org {' "http://127.0.0.1:$P_CADDY_AUTHZ {"$'\n\t'"bind 127.0.0.1" \
    'tls /etc/caddy/tls/data.example.org.crt /etc/caddy/tls/data.example.org.key' '# (bench: plain HTTP on the client side, no certificate)' \
    '/etc/caddy/tls/keyhole-ca.pem' "$W/certs/ca.pem" \
    $'{\n\tadmin off\n' $'{\n\tadmin off\n\tauto_https off\n'
}

keyhole_path() { printf '/v1/data?uri=%s' "$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1")"; }

port_of() { case $1 in
  direct) echo $P_UP;; nginx) echo $P_NGINX;; nginx-authreq) echo $P_AUTHREQ;; undici) echo $P_UNDICI;;
  undici-dispatch) echo $P_DISPATCH;; http-proxy) echo $P_HTTPPROXY;; fastify) echo $P_FASTIFY;; caddy) echo $P_CADDY;;
  keyhole) echo $P_KEYHOLE;; nginx-tls) echo $P_NGINX_TLS;; keyhole-tls) echo $P_KEYHOLE_TLS;;
  keyhole-w2) echo $P_KEYHOLE_W2;; keyhole-flat) echo $P_KEYHOLE_FLAT;; keyhole-prof) echo $P_KEYHOLE_PROF;;
  keyhole-base) echo $P_KEYHOLE_BASE;;
  keyhole-limits) echo $P_KEYHOLE_LIMITS;; keyhole-limits-rt) echo $P_KEYHOLE_LIMITS_RT;;
  nginx-authz) echo $P_NGINX_AUTHZ;; caddy-authz) echo $P_CADDY_AUTHZ;;
esac; }
# The Keyhole process of a contender (its admin listener is this + ADMIN_OFFSET): the
# authorizer contenders' own, behind their data plane; the contender's port otherwise.
keyhole_port_of() { case $1 in *-authz) echo $P_AUTHZ_KEYHOLE;; *) port_of "$1";; esac; }
# Contenders in which a Keyhole decides (audit lines, metrics, revocation, scope): the
# keyhole* ones and the authorizer stacks.
has_keyhole() { case $1 in keyhole*|*-authz) return 0;; *) return 1;; esac; }
# The Keyhole build a contender runs: the baseline for keyhole-base, the current one otherwise.
build_of() { [ "$1" = keyhole-base ] && echo "$BUILD_BASE" || echo "$BUILD"; }
scheme_of() { case $1 in *-tls) echo https;; *) echo http;; esac; }
path_of() { # contender object
  case $1 in keyhole*|*-authz) keyhole_path "$SCOPE$2";; *) echo "/obj/$2";; esac
}
url_of() { echo "$(scheme_of "$1")://127.0.0.1:$(port_of "$1")$(path_of "$1" "$2")"; }
tokens_of() { [ "$1" = direct ] && echo "" || echo "$TOKENS"; }
# One request's auth header for curl (the first token of the file).
header_of() { [ "$1" = direct ] && echo "Authorization: $BASIC" || echo "Authorization: Bearer $(head -1 "$TOKENS")"; }

curl_code() { curl -sk -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; }

wait_port() { local i; for i in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; log "port $1 not up"; return 1; }

wait_ready() { # url header
  local i
  for i in $(seq 1 150); do
    [ "$(curl_code -H "$2" "$1")" = 200 ] && return 0
    sleep 0.1
  done
  log "not ready: $1"; return 1
}

start_upstream() {
  taskset -c "$LOAD_CPU" nginx -c "$W/run/upstream.conf" -g 'daemon off;' >>"$W/logs/upstream.out" 2>&1 &
  UPSTREAM_PID=$!
  wait_ready "http://127.0.0.1:$P_UP/obj/1k" "Authorization: $BASIC" || die "upstream nginx did not start (see $W/logs/upstream.err)"
}

stop_upstream() {
  [ -n "${UPSTREAM_PID:-}" ] || return 0
  kill -TERM "$UPSTREAM_PID" 2>/dev/null; wait "$UPSTREAM_PID" 2>/dev/null; UPSTREAM_PID=""
}

# Writes $W/run/NAME.yaml for a Keyhole on PORT; SERVER_EXTRA goes under server:, TOP_EXTRA at top level.
# BUILD_DIR (default: the contender's build) is the Keyhole that will read it.
keyhole_yaml() { # name port server_extra top_extra [build_dir]
  local f=$W/run/$1.yaml http_extra='' build=${5:-$(build_of "$1")}
  # The upstream is on loopback: builds with the SSRF guard need it allowed explicitly.
  # (searched in the whole build: the file that declares it moves between layouts)
  grep -rqs --include='*.js' allowPrivateNetworks "$build" && http_extra='    allowPrivateNetworks: true'
  sed -e "s#@WORK@#$W#g" -e "s#@P_UP@#$P_UP#g" -e "s#@PORT@#$2#g" -e "s#@ADMIN_PORT@#$(($2 + ADMIN_OFFSET))#g" \
      -e "s#@SERVER_EXTRA@#$3#" -e "s#@TOP_EXTRA@#$4#" -e "s#@HTTP_EXTRA@#$http_extra#" "$BENCH/conf/keyhole.yaml.in" >"$f"
  echo "$f"
}

# The limits a Keyhole runs with when limits are on: what an annotator fleet would be given
# (every request checked against a rate, a concurrency cap, byte and object quotas per subject,
# and a byte quota per provider), generous enough that the bench is never refused: the cost
# of checking and counting, not of refusing. keyhole-limits decides from local shares and
# views kept in step with Redis (the defaults); keyhole-limits-rt asks Redis on every request
# (share 0, stale 0, linger 0).
limits_yaml() { # contender
  local tuning=''
  [ "$1" = keyhole-limits-rt ] && tuning='  redis: { share: 0, stale: 0, linger: 0 }'
  cat <<YAML
redis:
  url: rediss://127.0.0.1:$P_REDIS
  tls: { ca: $W/certs/ca.pem, cert: $W/certs/client.pem, key: $W/certs/client-key.pem }
limits:
  store: redis
$tuning
  rules:
    - name: annotator
      rate: { perSecond: 50, burst: 100 }
      concurrent: 16
      bytes: { 1d: 50GiB, 1h: 10GiB }
      objects: { 1d: 100000 }
    - name: provider-total
      per: [provider]
      bytes: { 1d: 100TiB }
  alerts: { quota: [0.8] }
YAML
}

# A redis-server for the limits contenders: TLS only, client certificates demanded (the dev CA
# of $W/certs), no persistence, pinned with the load side (it is infrastructure, not the proxy).
REDIS_PID=""
start_redis() {
  [ -n "$REDIS_PID" ] && return 0
  command -v redis-server >/dev/null || apt_install redis-server || die "cannot install redis-server"
  taskset -c "$LOAD_CPU" redis-server --bind 127.0.0.1 --port 0 --tls-port "$P_REDIS" \
    --tls-cert-file "$W/certs/server.pem" --tls-key-file "$W/certs/server-key.pem" --tls-ca-cert-file "$W/certs/ca.pem" \
    --tls-auth-clients yes --save '' --appendonly no --dir "$W/run" --logfile "$W/logs/redis.log" &
  REDIS_PID=$!
  wait_port "$P_REDIS" || die "redis-server did not start (see $W/logs/redis.log)"
}
stop_redis() {
  [ -n "${REDIS_PID:-}" ] || return 0
  kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=""
}

# Starts contender $1; sets PIDS (to stop) and RSSPIDS (to measure). NODE_FLAGS may add --cpu-prof.
start_contender() {
  local c=$1 cpus=$PROXY_CPU extra_server='' extra_top='' yaml port
  PIDS=""; RSSPIDS=""; CONTENDER_OUT=""
  case $c in
    direct) ;;
    nginx|nginx-tls)
      taskset -c "$PROXY_CPU" nginx -c "$W/run/nginx-proxy.conf" -g 'daemon off;' >>"$W/logs/nginx-proxy.out" 2>&1 &
      PIDS=$!;;
    nginx-authreq)
      PORT=$P_VERIFIER SECRET_FILE=$W/run/hs256.secret taskset -c "$PROXY_CPU" node "$BENCH/srv/verifier.mjs" >>"$W/logs/verifier.out" 2>&1 &
      PIDS=$!; RSSPIDS=$PIDS
      wait_port "$P_VERIFIER" || return 1
      taskset -c "$PROXY_CPU" nginx -c "$W/run/nginx-authreq.conf" -g 'daemon off;' >>"$W/logs/nginx-authreq.out" 2>&1 &
      PIDS="$PIDS $!";;
    undici)
      PORT=$P_UNDICI UPSTREAM=http://127.0.0.1:$P_UP taskset -c "$PROXY_CPU" node "$BENCH/srv/undici-proxy.mjs" >>"$W/logs/undici.out" 2>&1 &
      PIDS=$!; RSSPIDS=$PIDS;;
    undici-dispatch)
      PORT=$P_DISPATCH UPSTREAM=http://127.0.0.1:$P_UP taskset -c "$PROXY_CPU" node "$BENCH/srv/undici-dispatch.mjs" >>"$W/logs/undici-dispatch.out" 2>&1 &
      PIDS=$!; RSSPIDS=$PIDS;;
    http-proxy|fastify)
      [ -f "$PEERS/node_modules/http-proxy/package.json" ] || return 1
      PORT=$(port_of "$c") PEERS=$PEERS UPSTREAM=http://127.0.0.1:$P_UP taskset -c "$PROXY_CPU" node "$BENCH/srv/$([ "$c" = fastify ] && echo fastify-proxy || echo http-proxy).mjs" >>"$W/logs/$c.out" 2>&1 &
      PIDS=$!; RSSPIDS=$PIDS;;
    caddy)
      command -v caddy >/dev/null || return 1
      taskset -c "$PROXY_CPU" caddy run --config "$W/run/Caddyfile" --adapter caddyfile >>"$W/logs/caddy.out" 2>&1 &
      PIDS=$!; RSSPIDS=$PIDS;;
    nginx-authz|caddy-authz)
      # Keyhole in authorizer mode as its own process, TLS as in the shipped examples, then
      # the data plane, both on the contender's core.
      [ "$c" = caddy-authz ] && ! command -v caddy >/dev/null && return 1
      yaml=$(keyhole_yaml "$c" "$P_AUTHZ_KEYHOLE" "  tls: { cert: $W/certs/server.pem, key: $W/certs/server-key.pem }" 'authorizer: { peers: [127.0.0.1] }')
      CONTENDER_OUT=$W/logs/$c.audit.log; : >"$CONTENDER_OUT"
      # shellcheck disable=SC2086
      taskset -c "$PROXY_CPU" node $KEYHOLE_NODE_FLAGS ${NODE_FLAGS:-} "$BUILD/cli.js" serve --config "$yaml" >>"$CONTENDER_OUT" 2>>"$W/logs/$c.err" &
      PIDS=$!; RSSPIDS=$PIDS
      wait_port "$P_AUTHZ_KEYHOLE" || return 1
      if [ "$c" = nginx-authz ]; then
        taskset -c "$PROXY_CPU" nginx -c "$W/run/nginx-authz.conf" -g 'daemon off;' >>"$W/logs/nginx-authz.out" 2>&1 &
        PIDS="$PIDS $!"   # its worker joins RSSPIDS once it answers (below)
      else
        taskset -c "$PROXY_CPU" caddy run --config "$W/run/Caddyfile-authz" --adapter caddyfile >>"$W/logs/caddy-authz.out" 2>&1 &
        PIDS="$PIDS $!"; RSSPIDS=$PIDS
      fi;;
    keyhole*)
      port=$(port_of "$c")
      case $c in
        keyhole-tls) extra_server="  tls: { cert: $W/certs/server.pem, key: $W/certs/server-key.pem }";;
        keyhole-w2) extra_server='  insecurePlainHttp: true'; extra_top='workers: 2'; cpus="$PROXY_CPU,$LOAD_CPU";;
        *) extra_server='  insecurePlainHttp: true';;
      esac
      yaml=$(keyhole_yaml "$c" "$port" "$extra_server" "$extra_top")
      case $c in keyhole-limits*) limits_yaml "$c" >>"$yaml";; esac
      CONTENDER_OUT=$W/logs/$c.audit.log; : >"$CONTENDER_OUT"
      # stdout carries pino's lines (audit events included) to a real file
      # shellcheck disable=SC2086
      taskset -c "$cpus" node $KEYHOLE_NODE_FLAGS ${NODE_FLAGS:-} "$(build_of "$c")/cli.js" serve --config "$yaml" >>"$CONTENDER_OUT" 2>>"$W/logs/$c.err" &
      PIDS=$!; RSSPIDS=$PIDS;;
    *) die "unknown contender $c";;
  esac
  wait_ready "$(url_of "$c" 1k)" "$(header_of "$c")" || return 1
  case $c in
    nginx|nginx-tls|nginx-authreq|nginx-authz|keyhole-w2)
      sleep 0.3
      local m; for m in $PIDS; do RSSPIDS="$RSSPIDS $(pgrep -P "$m" | tr '\n' ' ')"; done
      # nginx: measure its workers (the master only forks them); Keyhole cluster: primary + workers
      [ "$c" = keyhole-w2 ] && RSSPIDS="$PIDS $RSSPIDS";;
  esac
  # Revocation holds entries, as in production: a revoked subject and a revoked jti.
  has_keyhole "$c" && revoke_some "$c"
  return 0
}

revoke_some() { # sets REVOKE_STATUS: the admin listener's answers
  local admin="http://127.0.0.1:$(( $(keyhole_port_of "$1") + ADMIN_OFFSET ))" a b
  a=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$W/run/admin.token")" -H 'content-type: application/json' \
    --data '{"sub":"revoked-user0"}' "$admin/admin/revoke")
  b=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$W/run/admin.token")" -H 'content-type: application/json' \
    --data '{"jti":"bench-revoked-jti"}' "$admin/admin/revoke")
  REVOKE_STATUS="$a/$b"
}

stop_contender() {
  local p i
  for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
  for p in $PIDS; do
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  PIDS=""; RSSPIDS=""
}

# Waits (up to $2 s, default 240) until the 1-minute load average is below $1 (default 0.5):
# the figures of a run that starts on a busy machine, its own previous part included, are noise.
settle() {
  local below=${1:-0.5} max=${2:-240} i
  for ((i = 0; i < max; i += 5)); do
    awk -v b="$below" '{ exit !($1 < b) }' /proc/loadavg && return 0
    sleep 5
  done
  log "load average still $(cut -d' ' -f1 /proc/loadavg) after ${max} s: going on (the results say so)"
}

# Sum of a /proc/<pid>/status field (kB) over RSSPIDS.
sum_status() { local s=0 p k v _; for p in $RSSPIDS; do while read -r k v _; do [ "$k" = "$1:" ] && s=$((s + v)); done 2>/dev/null <"/proc/$p/status"; done; echo $s; }
# CPU ticks (utime+stime) over RSSPIDS.
sum_ticks() { local s=0 p v; for p in $RSSPIDS; do v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null); s=$((s + ${v:-0})); done; echo $s; }

# Background sampler: the largest VmRSS sum seen while it runs (every 100 ms).
rss_sampler_start() {
  local out=$W/run/rss.max; echo 0 >"$out"
  ( trap 'exit 0' TERM; max=0
    while :; do s=$(sum_status VmRSS); if [ "$s" -gt "$max" ]; then max=$s; echo "$max" >"$out.tmp"; mv -f "$out.tmp" "$out"; fi; sleep 0.1; done ) &
  SAMPLER_PID=$!
}
# (the file is replaced atomically, so a sampler stopped mid-write never leaves it empty)
# A TERM that lands while the sampler waits on its own command substitution can be lost (two
# samplers of ~200 outlived their run that way, polling dead pids): KILL follows if it lingers.
rss_sampler_stop() {
  local v i; kill -TERM "$SAMPLER_PID" 2>/dev/null
  for i in 1 2 3 4 5 6; do kill -0 "$SAMPLER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
  v=$(cat "$W/run/rss.max" 2>/dev/null); echo "${v:-null}"
}

# One wrk run against contender $1 for object $2 with $3 connections for $4 seconds;
# appends a JSON line to $RAW and prints a short summary.
run_wrk() {
  local c=$1 obj=$2 conns=$3 dur=$4 round=$5 t0 t1 line cpu peak hwm
  t0=$(sum_ticks); rss_sampler_start
  line=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${dur}s" --timeout 30s -s "$BENCH/wrk.lua" \
           "$(scheme_of "$c")://127.0.0.1:$(port_of "$c")/" -- "$(path_of "$c" "$obj")" "$(tokens_of "$c")" | grep '^RESULT')
  peak=$(rss_sampler_stop); t1=$(sum_ticks); hwm=$(sum_status VmHWM)
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v d="$dur" 'BEGIN{printf "%.0f", (b-a)/hz/d*100}')
  [ -z "$RSSPIDS" ] && { cpu=null; peak=null; hwm=null; }
  [ -n "$line" ] || { log "wrk printed no result for $c $obj"; return 1; }
  local kv; kv=$(echo "${line#RESULT }" | sed -E 's/([a-z0-9_]+)=([0-9]+)/"\1":\2/g; s/ /,/g')
  echo "{\"type\":\"run\",\"round\":$round,\"contender\":\"$c\",\"object\":\"$obj\",\"conns\":$conns,$kv,\"cpu_pct\":$cpu,\"rss_peak_kb\":$peak,\"hwm_kb\":$hwm}" >>"$RAW"
  echo "{$kv}" | node -e '
    const r = JSON.parse(require("fs").readFileSync(0, "utf8")); const s = r.duration_us / 1e6;
    const errs = r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout;
    console.error(`  ${process.argv[1].padEnd(14)} ${process.argv[2].padEnd(5)} ${(r.requests / s).toFixed(0).padStart(7)} req/s ${(r.bytes / s / 1e6).toFixed(1).padStart(8)} MB/s p50 ${(r.p50_us / 1000).toFixed(2)} ms p99 ${(r.p99_us / 1000).toFixed(2)} ms errors ${errs} cpu ${process.argv[3]}% peak RSS ${process.argv[4] === "null" ? "-" : Math.round(process.argv[4] / 1024)} MiB`);
  ' "$c" "$obj" "$cpu" "$peak"
}
