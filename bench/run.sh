#!/usr/bin/env bash
# `npm run bench`: Keyhole side by side with the alternatives on loopback, in one run.
# Writes bench/RESULTS.md and bench/results.json (raw lines in bench/.work/raw.jsonl).
#
#   npm run bench                     full run (3 rounds, ~15 min on 2 cores)
#   QUICK=1 npm run bench             one short round (~3 min): does everything work?
#   ROUNDS=5 DURATION=10 npm run bench
#
# Knobs: ROUNDS, DURATION (s per small-object run), D100 (s for 100 MiB), WARM (s),
# CONNS (64), C100 (4), TLS (1: also a TLS round), PROFILE (1: --cpu-prof Keyhole at 1 KiB),
# FLAT (1: the 2 GiB memory check), PRESIGN (1: npm run bench:presign when present),
# CONTENDERS, PROXY_CPU (0), LOAD_CPU (1), BENCH_PORT_BASE (19400), BUILD_KEYHOLE (1),
# STEPS (default "check rounds flat presign profile"; e.g. STEPS=profile for the profile alone),
# KEYHOLE_REF (build this commit instead of the working tree), RESULTS_DIR (where RESULTS.md
# and results.json go; default bench/), W2 (1: also keyhole-w2 when the build accepts workers: 2),
# LIMITS (1: also keyhole-limits and keyhole-limits-rt, Keyhole with limits in a TLS Redis),
# SMALL_OBJECTS (default "1k 64k 1m"), BIG (1: also 100 MiB; 0 for a quicker A/B of a few sizes),
# GRID (1: then the browser grid, bench/grid/run.sh, with its own knobs; 0 to skip it),
# SETTLE (1: before the run and before the grid, wait up to 4 min for the load average to fall below 0.5).
#
# Authorizer mode (docs/authorizer.md): nginx-authz and caddy-authz run deploy/authorizer/nginx.conf
# and Caddyfile as shipped (addresses rewritten, bench/lib.sh render_authz) in front of a Keyhole
# process answering /v1/authorize over TLS, both on the contender's core; RESULTS.md's
# "Authorizer mode" section holds their targets. A quick look at them alone:
#   CONTENDERS="nginx nginx-authreq nginx-authz caddy-authz" TLS=0 W2=0 FLAT=0 PRESIGN=0 PROFILE=0 \
#     ROUNDS=1 BENCH_WORK=/tmp/kb RESULTS_DIR=/tmp/kb npm run bench
#
# The cost of limits, side by side with limits off, at 1 KiB and 64 KiB (RESULTS.md "Limits"):
#   LIMITS=1 CONTENDERS="keyhole" TLS=0 W2=0 FLAT=0 PRESIGN=0 PROFILE=0 ROUNDS=2 \
#     BENCH_WORK=/tmp/kb RESULTS_DIR=/tmp/kb npm run bench
#
# Before/after a change, in one run: BASE_REF=<commit> also builds that commit (into
# $BENCH_WORK/build-base) and adds the contender keyhole-base: the same YAML, tokens and
# pinning as keyhole, its own port, the baseline build. It is checked and measured in every
# round beside keyhole (order alternating), and RESULTS.md opens with a "Before/after" table
# (req/s and MB/s at 1 KiB, 64 KiB, 1 MiB, 100 MiB, current/base). Use an even ROUNDS so each
# build goes first equally often; keep the measured tree out of others' way with KEYHOLE_REF:
#   BASE_REF=HEAD~3 KEYHOLE_REF=HEAD CONTENDERS="keyhole-base keyhole" ROUNDS=4 TLS=0 W2=0 \
#     FLAT=0 PRESIGN=0 PROFILE=0 BENCH_WORK=/tmp/kb RESULTS_DIR=/tmp/kb npm run bench
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=${QUICK:-0}
# Warm-up is generous: a pinned Node process compiles (JIT, GC threads) on its one core too.
if [ "$QUICK" = 1 ]; then d_rounds=1; d_dur=3; d_d100=3; d_warm=2; d_prof=0; else d_rounds=3; d_dur=6; d_d100=6; d_warm=4; d_prof=1; fi
ROUNDS=${ROUNDS:-$d_rounds}; DURATION=${DURATION:-$d_dur}; D100=${D100:-$d_d100}; WARM=${WARM:-$d_warm}
CONNS=${CONNS:-64}; C100=${C100:-4}; TLS=${TLS:-1}; W2=${W2:-1}; PROFILE=${PROFILE:-$d_prof}; FLAT=${FLAT:-1}; PRESIGN=${PRESIGN:-1}; LIMITS=${LIMITS:-0}
CONTENDERS=${CONTENDERS:-"direct nginx nginx-authreq nginx-authz caddy caddy-authz http-proxy fastify undici undici-dispatch keyhole"}
if [ "$LIMITS" = 1 ]; then for c in keyhole-limits keyhole-limits-rt; do case " $CONTENDERS " in *" $c "*) ;; *) CONTENDERS="$CONTENDERS $c";; esac; done; fi
STEPS=${STEPS:-check rounds flat presign profile}
step() { case " $STEPS " in *" $1 "*) return 0;; *) return 1;; esac; }
TLS_CONTENDERS="nginx-tls keyhole-tls"
BASE_COMMIT=""   # BASE_REF, checked before anything is built
case " $CONTENDERS " in *" keyhole-base "*) [ -n "${BASE_REF:-}" ] || die "contender keyhole-base needs BASE_REF=<commit>";; esac
if [ -n "${BASE_REF:-}" ]; then
  BASE_COMMIT=$(git -C "$ROOT" rev-parse --short "$BASE_REF^{commit}" 2>/dev/null) || die "BASE_REF=$BASE_REF is not a commit"
fi
SMALL_OBJECTS=${SMALL_OBJECTS:-"1k 64k 1m"}; BIG=${BIG:-1}

PIDS=""; RSSPIDS=""; SAMPLER_PID=""; UPSTREAM_PID=""
cleanup() {
  [ -n "${SAMPLER_PID:-}" ] && kill -TERM "$SAMPLER_PID" 2>/dev/null
  stop_contender
  stop_upstream
  stop_redis
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

mkdir -p "$W/run/nginx-tmp" "$W/logs" "$W/data" "$W/certs" "$W/prof"
rm -f "$RAW"
cd "$ROOT" || die "no repo root"

# --- tools, build, data, keys, configs -------------------------------------------------
ensure_tools
case " $CONTENDERS " in *" http-proxy "*|*" fastify "*) ensure_peers;; esac
# Keyhole is compiled from the working tree, or from a commit with KEYHOLE_REF=HEAD (a tree
# that others are editing may not compile; then the last commit is measured, and said so).
# Only tsconfig and src/ are taken from the commit: cli.js is the entry in every layout.
build_ref() { # ref out_dir log → builds a snapshot of src/ at that commit into out_dir
  local ref=$1 out=$2 snap=$2.src
  rm -rf "$snap" "$out"; mkdir -p "$snap"
  git -C "$ROOT" archive "$ref" src tsconfig.json tsconfig.build.json | tar -x -C "$snap" || return 1
  (cd "$snap" && "$ROOT/node_modules/.bin/tsc" -p tsconfig.build.json --outDir "$out") >"$3" 2>&1
}
# A BENCH_WORK outside the repo: the snapshots (tsc) and the builds (node) find the project's
# packages through $W/node_modules, and its module type through $W/package.json.
case "$W/" in "$ROOT"/*) ;; *)
  [ -e "$W/node_modules" ] || ln -s "$ROOT/node_modules" "$W/node_modules"
  node -e 'const p = require(process.argv[1]); process.stdout.write(JSON.stringify({ name: "keyhole-bench-work", private: true, type: p.type }) + "\n")' "$ROOT/package.json" >"$W/package.json";;
esac
BUILT_FROM=""; CURRENT_COMMIT=""
if [ "${BUILD_KEYHOLE:-1}" = 1 ]; then
  if [ -n "${KEYHOLE_REF:-}" ]; then
    log "building Keyhole at $KEYHOLE_REF into $BUILD"
    build_ref "$KEYHOLE_REF" "$BUILD" "$W/logs/build.log" || die "Keyhole at $KEYHOLE_REF does not compile (see $W/logs/build.log)"
    CURRENT_COMMIT=$(git -C "$ROOT" rev-parse --short "$KEYHOLE_REF"); BUILT_FROM="commit $CURRENT_COMMIT"
  else
    log "building Keyhole (working tree) into $BUILD"
    rm -rf "$BUILD"
    if "$ROOT/node_modules/.bin/tsc" -p tsconfig.build.json --outDir "$BUILD" >"$W/logs/build.log" 2>&1; then
      BUILT_FROM="working tree"; CURRENT_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)+working tree"
    else
      log "the working tree does not compile (see $W/logs/build.log): measuring HEAD instead"
      build_ref HEAD "$BUILD" "$W/logs/build.log" || die "HEAD does not compile either"
      CURRENT_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD); BUILT_FROM="commit $CURRENT_COMMIT (working tree did not compile)"
    fi
  fi
fi
[ -f "$BUILD/cli.js" ] || die "no $BUILD/cli.js: the build failed"
# The baseline: BASE_REF builds a second Keyhole, measured as keyhole-base beside keyhole.
if [ -n "$BASE_COMMIT" ]; then
  log "building the baseline Keyhole at $BASE_REF ($BASE_COMMIT) into $BUILD_BASE"
  build_ref "$BASE_REF" "$BUILD_BASE" "$W/logs/build-base.log" || die "Keyhole at $BASE_REF does not compile (see $W/logs/build-base.log)"
  [ -f "$BUILD_BASE/cli.js" ] || die "no $BUILD_BASE/cli.js: the baseline has no cli.js entry"
  case " $CONTENDERS " in *" keyhole-base "*) ;; *) CONTENDERS="keyhole-base $CONTENDERS";; esac
fi

for s in 1k:1024 64k:65536 1m:1048576 100m:104857600; do
  f=$W/data/${s%%:*}; [ "$(stat -c %s "$f" 2>/dev/null)" = "${s##*:}" ] || head -c "${s##*:}" /dev/urandom >"$f"
done
[ "$(stat -c %s "$W/data/2g" 2>/dev/null)" = 2147483648 ] || { rm -f "$W/data/2g"; truncate -s 2G "$W/data/2g"; }   # sparse

[ -s "$W/run/hs256.secret" ] || node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))' >"$W/run/hs256.secret"
[ -s "$W/run/admin.token" ] || node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("base64url"))' >"$W/run/admin.token"
printf 'pass' >"$W/run/upstream.password"
[ -s "$W/certs/server.pem" ] || node "$BUILD/cli.js" certs --dir "$W/certs" >"$W/logs/certs.log" 2>&1 || die "dev certificates"

render "$BENCH/conf/common.inc.in" "$W/run/common.inc"
for f in upstream nginx-proxy nginx-authreq; do render "$BENCH/conf/$f.conf.in" "$W/run/$f.conf"; done
render "$BENCH/conf/Caddyfile.in" "$W/run/Caddyfile"
# The authorizer stacks run the shipped examples (deploy/authorizer/), rewritten like the tests do.
case " $CONTENDERS " in *-authz" "*) render_authz || die "deploy/authorizer/ changed: the authorizer contenders' rewrite no longer applies";; esac

yaml=$(keyhole_yaml keyhole "$P_KEYHOLE" '  insecurePlainHttp: true' '')
node "$BUILD/cli.js" check-config "$yaml" >"$W/logs/check-config.log" 2>&1 || { cat "$W/logs/check-config.log" >&2; die "bench config refused"; }
if [ -n "$BASE_COMMIT" ]; then   # the same template and auth block, read by the baseline build
  base_yaml=$(keyhole_yaml keyhole-base "$P_KEYHOLE_BASE" '  insecurePlainHttp: true' '')
  node "$BUILD_BASE/cli.js" check-config "$base_yaml" >"$W/logs/check-config-base.log" 2>&1 || { cat "$W/logs/check-config-base.log" >&2; die "bench config refused by the baseline"; }
fi
# Tokens are signed with the current build only: both builds verify the same auth block
# (the check step proves the baseline accepts them).
log "signing 1024 distinct session tokens"
node "$BENCH/srv/sign-tokens.mjs" "$BUILD" "$yaml" 1024 "$SCOPE" user >"$TOKENS" || die "token signing"
node "$BENCH/srv/sign-tokens.mjs" "$BUILD" "$yaml" 1 "$SCOPE" revoked-user >"$W/run/revoked-token.txt" || die "token signing"

# Workers: measurable only once the config accepts `workers: 2` (and serve forks them).
WORKERS_SUPPORTED=0
w2yaml=$(keyhole_yaml keyhole-w2 "$P_KEYHOLE_W2" '  insecurePlainHttp: true' 'workers: 2')
if node "$BUILD/cli.js" check-config "$w2yaml" >"$W/logs/check-workers.log" 2>&1; then WORKERS_SUPPORTED=1; fi

# The first token with one signature character changed (not the last: its low bits are padding).
tampered_token() { node -e 'const t = process.argv[1]; const i = t.length - 10; process.stdout.write(t.slice(0, i) + (t[i] === "A" ? "B" : "A") + t.slice(i + 1))' "$(head -1 "$TOKENS")"; }
json_str() { node -e 'process.stdout.write(JSON.stringify(process.argv[1] ?? ""))' -- "$1"; }   # -- : a value may start with --
[ "${SETTLE:-1}" = 1 ] && { log "waiting for the load average to settle below 0.5 (SETTLE=0 to skip)"; settle 0.5 240; }
echo "{\"type\":\"meta\",\"started\":\"$(date -u +%FT%TZ)\",\"quick\":$QUICK,\"rounds\":$ROUNDS,\"duration_s\":$DURATION,\"d100_s\":$D100,\"conns\":$CONNS,\"c100\":$C100,\"proxy_cpu\":$PROXY_CPU,\"load_cpu\":$LOAD_CPU,\"cpus\":$(nproc),\"cpu_model\":$(json_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"),\"kernel\":$(json_str "$(uname -r)"),\"node\":$(json_str "$(node -v)"),\"nginx\":$(json_str "$(nginx -v 2>&1)"),\"wrk\":$(json_str "$(wrk -v 2>&1 | head -1)"),\"git\":$(json_str "$(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null)"),\"dirty\":$(json_str "$(git -C "$ROOT" status --short -- src | wc -l)"),\"built_from\":$(json_str "$BUILT_FROM"),\"current_commit\":$(json_str "$CURRENT_COMMIT"),\"base_ref\":$(json_str "${BASE_REF:-}"),\"base_commit\":$(json_str "$BASE_COMMIT"),\"base_subject\":$(json_str "$([ -n "$BASE_COMMIT" ] && git -C "$ROOT" log -1 --format=%s "$BASE_COMMIT")"),\"current_subject\":$(json_str "$(git -C "$ROOT" log -1 --format=%s "${KEYHOLE_REF:-HEAD}" 2>/dev/null)"),\"loadavg_start\":$(json_str "$(cut -d' ' -f1-3 /proc/loadavg)"),\"workers_supported\":$WORKERS_SUPPORTED,\"keyhole_node_flags\":$(json_str "$KEYHOLE_NODE_FLAGS")}" >>"$RAW"

start_upstream
log "upstream nginx on :$P_UP (cpu$LOAD_CPU); contenders on cpu$PROXY_CPU; wrk on cpu$LOAD_CPU"
case " $CONTENDERS " in *" keyhole-limits"*)
  start_redis
  log "redis-server (TLS, client certificates) on :$P_REDIS (cpu$LOAD_CPU) for the limits contenders";;
esac

# --- correctness first: every contender returns the exact bytes; auth contenders refuse ---
ALL="$CONTENDERS"; [ "$TLS" = 1 ] && ALL="$ALL $TLS_CONTENDERS"; [ "$WORKERS_SUPPORTED$W2" = 11 ] && ALL="$ALL keyhole-w2"
step check || ALL=""
for c in $ALL; do
  start_contender "$c" || { log "$c failed to start"; echo "{\"type\":\"check\",\"contender\":\"$c\",\"started\":false}" >>"$RAW"; stop_contender; continue; }
  ok=true
  for o in 1k 64k 1m 100m; do
    got=$(curl -sk -H "$(header_of "$c")" "$(url_of "$c" "$o")" | md5sum | cut -c1-32); want=$(md5sum <"$W/data/$o" | cut -c1-32)
    [ "$got" = "$want" ] || { ok=false; log "$c: $o bytes differ"; }
  done
  bad=$(curl_code -H "Authorization: Bearer $(tampered_token)" "$(url_of "$c" 1k)")
  none=$(curl_code "$(url_of "$c" 1k)")
  extra=""
  if has_keyhole "$c"; then
    revoked=$(curl_code -H "Authorization: Bearer $(cat "$W/run/revoked-token.txt")" "$(url_of "$c" 1k)")
    scope=$(curl_code -H "$(header_of "$c")" "$(scheme_of "$c")://127.0.0.1:$(port_of "$c")$(keyhole_path local://bench/1k)")
    extra=",\"revoked\":$revoked,\"revoke_status\":\"$REVOKE_STATUS\",\"out_of_scope\":$scope"
  fi
  echo "{\"type\":\"check\",\"contender\":\"$c\",\"started\":true,\"bytes_ok\":$ok,\"bad_token\":$bad,\"no_token\":$none$extra}" >>"$RAW"
  log "check $c: bytes_ok=$ok bad_token=$bad no_token=$none$extra"
  stop_contender
done

# --- rounds: each contender started fresh, order alternating --------------------------
warm() { taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARM}s" -s "$BENCH/wrk.lua" "$(scheme_of "$1")://127.0.0.1:$(port_of "$1")/" -- "$(path_of "$1" 1k)" "$(tokens_of "$1")" >/dev/null; }
bench_contender() { # contender round
  local c=$1 r=$2 objects=$SMALL_OBJECTS big=$BIG
  case $c in *-tls|keyhole-w2|keyhole-limits*) objects="1k 64k"; big=0;; esac
  start_contender "$c" || { log "$c failed to start"; stop_contender; return; }
  local idle; idle=$(sum_status VmRSS)
  warm "$c"
  for o in $objects; do run_wrk "$c" "$o" "$CONNS" "$DURATION" "$r"; done
  [ $big = 1 ] && run_wrk "$c" 100m "$C100" "$D100" "$r"
  if [ -n "$RSSPIDS" ]; then
    local hwm; hwm=$(sum_status VmHWM)
    echo "{\"type\":\"contender_end\",\"round\":$r,\"contender\":\"$c\",\"hwm_kb\":$hwm,\"idle_rss_kb\":$idle,\"processes\":$(echo $RSSPIDS | wc -w)}" >>"$RAW"
  fi
  case $c in keyhole*|*-authz)
    local admin="http://127.0.0.1:$(( $(keyhole_port_of "$c") + ADMIN_OFFSET ))" served metric=keyhole_requests_total
    # an authorizer counts its decisions (keyhole_requests_total stays /v1/data's)
    case $c in *-authz) metric=keyhole_authorize_decisions_total;; esac
    served=$(curl -s "$admin/metrics" | awk -v m="^$metric[{]" '$0 ~ m {s += $NF} END {printf "%d", s}')
    case $c in keyhole-limits*)   # how the limits decided: locally, or after asking Redis; anything refused
      curl -s "$admin/metrics" | awk -v r="$r" -v c="$c" '
        /^keyhole_limit_checks_total\{path="local"\}/ {l = $NF} /^keyhole_limit_checks_total\{path="store"\}/ {s = $NF}
        /^keyhole_limit_refusals_total\{/ {x += $NF} /^keyhole_limits_unavailable_total\{/ {u += $NF}
        END {printf "{\"type\":\"limits\",\"round\":%d,\"contender\":\"%s\",\"local\":%d,\"store\":%d,\"refused\":%d,\"unavailable\":%d}\n", r, c, l, s, x, u}' >>"$RAW";;
    esac
    stop_contender   # drains: pino flushes the last audit lines
    grep -v '"kind":"audit"' "$CONTENDER_OUT" >>"$W/logs/$c.events.log"   # keep everything but audit lines
    echo "{\"type\":\"audit\",\"round\":$r,\"contender\":\"$c\",\"audit_lines\":$(grep -c '"kind":"audit"' "$CONTENDER_OUT"),\"metrics_requests\":${served:-0},\"log_bytes\":$(stat -c %s "$CONTENDER_OUT")}" >>"$RAW"
    : >"$CONTENDER_OUT";;
  *) stop_contender;;
  esac
}

ROUND_LIST="$CONTENDERS"; [ "$WORKERS_SUPPORTED$W2" = 11 ] && ROUND_LIST="$ROUND_LIST keyhole-w2"; [ "$TLS" = 1 ] && ROUND_LIST="$ROUND_LIST $TLS_CONTENDERS"
step rounds || ROUNDS=0
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order=$ROUND_LIST; else order=$(echo $ROUND_LIST | tr ' ' '\n' | tac | tr '\n' ' '); fi
  log "=== round $r/$ROUNDS: $order"
  for c in $order; do bench_contender "$c" "$r"; done
done

# --- memory flatness: a 2 GiB download must not raise Keyhole's peak RSS -------------
if [ "$FLAT" = 1 ] && step flat; then
  log "=== memory flatness: 2 GiB through Keyhole (http provider from nginx, local provider from a sparse file)"
  if start_contender keyhole-flat; then
    warm keyhole-flat
    taskset -c "$LOAD_CPU" wrk -t1 -c"$C100" -d"${WARM}s" -s "$BENCH/wrk.lua" "http://127.0.0.1:$P_KEYHOLE_FLAT/" -- "$(path_of keyhole 100m)" "$TOKENS" >/dev/null
    before=$(sum_status VmHWM)
    flat_get() { taskset -c "$LOAD_CPU" curl -s -o /dev/null -w '{"bytes":%{size_download},"seconds":%{time_total},"status":%{http_code}}' -H "$(header_of keyhole)" "http://127.0.0.1:$P_KEYHOLE_FLAT$(keyhole_path "$1")"; }
    http=$(flat_get "${SCOPE}2g"); after_http=$(sum_status VmHWM)
    # the local provider needs a token scoped to it
    node "$BENCH/srv/sign-tokens.mjs" "$BUILD" "$yaml" 1 local://bench/ flat >"$W/run/local-token.txt"
    local_=$(taskset -c "$LOAD_CPU" curl -s -o /dev/null -w '{"bytes":%{size_download},"seconds":%{time_total},"status":%{http_code}}' -H "Authorization: Bearer $(cat "$W/run/local-token.txt")" "http://127.0.0.1:$P_KEYHOLE_FLAT$(keyhole_path local://bench/2g)")
    after_local=$(sum_status VmHWM)
    echo "{\"type\":\"flat\",\"hwm_before_kb\":$before,\"hwm_after_http_kb\":$after_http,\"hwm_after_local_kb\":$after_local,\"http\":$http,\"local\":$local_}" >>"$RAW"
    log "flat: VmHWM ${before} kB → ${after_http} kB (http 2 GiB: $http) → ${after_local} kB (local 2 GiB: $local_)"
  fi
  stop_contender
fi

# --- presign: another engineer's bench/presign.ts, when present ------------------------
if ! step presign; then :
elif [ "$PRESIGN" = 1 ] && [ -f "$BENCH/presign.ts" ] && [ "$(npm pkg get scripts.bench:presign)" != "{}" ]; then
  log "=== presign (npm run bench:presign, pinned to cpu$PROXY_CPU)"
  taskset -c "$PROXY_CPU" timeout 300 npm run -s bench:presign >"$W/logs/presign.out" 2>&1; rc=$?
  echo "{\"type\":\"presign\",\"exit\":$rc,\"output\":$(node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(process.argv[1],"utf8").slice(-4000)))' "$W/logs/presign.out")}" >>"$RAW"
else
  echo '{"type":"presign","exit":null,"output":"bench/presign.ts or the bench:presign script is not there yet"}' >>"$RAW"
fi

# --- profile Keyhole at 1 KiB -----------------------------------------------------------
if step profile && { [ "$PROFILE" = 1 ] || [ "$STEPS" = profile ]; }; then
  source "$BENCH/profile.sh"
  profile_keyhole || log "profile failed"
fi

echo "{\"type\":\"end\",\"finished\":\"$(date -u +%FT%TZ)\",\"loadavg_end\":$(json_str "$(cut -d' ' -f1-3 /proc/loadavg)")}" >>"$RAW"
stop_upstream
RESULTS_DIR=${RESULTS_DIR:-$BENCH}; mkdir -p "$RESULTS_DIR"
node "$BENCH/summarize.mjs" "$RAW" "$RESULTS_DIR/RESULTS.md" "$RESULTS_DIR/results.json" || die "summarize failed"
log "wrote $RESULTS_DIR/RESULTS.md and $RESULTS_DIR/results.json"

# --- the browser grid: what an annotator waits for, in the same run (bench/grid/run.sh) ---
if [ "${GRID:-1}" = 1 ]; then
  log "=== browser grid (npm run bench:grid)"
  [ "${SETTLE:-1}" = 1 ] && settle 0.5 240
  grid_json=$BENCH/grid/results.json; [ "$RESULTS_DIR" = "$BENCH" ] || grid_json=$RESULTS_DIR/grid-results.json
  RESULTS_MD="$RESULTS_DIR/RESULTS.md" RESULTS_JSON="$grid_json" bash "$BENCH/grid/run.sh" || log "the browser grid failed (its section in RESULTS.md is the previous run's)"
fi
