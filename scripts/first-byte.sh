#!/usr/bin/env bash
# Clone to first served byte, as a new ops engineer follows the README: a fresh clone,
# `npm ci --omit=dev` (what running Keyhole needs; the test servers, browser driver and
# bench tools are dev dependencies), `npm start` on the embedded default, then the
# README's `./keyhole token` + curl. Prints each phase and the total in seconds.
#
#   bash scripts/first-byte.sh [REPO]     REPO: a path or URL to clone (default: this checkout)
#
# "Warm cache" means npm's cache already holds the packages (any earlier `npm ci` on the
# machine); with a cold cache the install phase is the network's time.
set -euo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
work=$(mktemp -d)
port=${PORT:-18443} admin=${ADMIN_PORT:-19091}
pid=
# npm start runs in a process group of its own: stopping npm alone would leave its node serving.
cleanup() { [ -n "$pid" ] && kill -- "-$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
phase() { printf '%-34s %6.1f s\n' "$1" "$(echo "$2 - $3" | bc)"; }

t0=$(now)
git clone -q "$repo" "$work/keyhole"
cd "$work/keyhole"
t1=$(now)
npm ci --omit=dev --no-audit --no-fund --loglevel=error >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
t2=$(now)
KEYHOLE_PORT=$port KEYHOLE_ADMIN_PORT=$admin setsid npm start >"$work/serve.log" 2>&1 &
pid=$!
until grep -q 'keyhole listening' "$work/serve.log" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.05
done
t3=$(now)
body=$(curl -sS --fail --cacert certs/ca.pem -H "Authorization: Bearer $(./keyhole token --sub alice --scope local://samples/)" \
  "https://localhost:$port/v1/data?uri=local%3A%2F%2Fsamples%2Fhello.txt")
t4=$(now)
case $body in Hello*) ;; *) echo "unexpected body: $body" >&2; exit 1 ;; esac

echo "first byte: $(grep -c . <<<"$body") line(s) served from local://samples/hello.txt"
phase 'git clone' "$t1" "$t0"
phase 'npm ci --omit=dev' "$t2" "$t1"
phase 'npm start until listening' "$t3" "$t2"
phase './keyhole token + curl' "$t4" "$t3"
phase 'total: clone to first byte' "$t4" "$t0"
dev=$(for p in typescript tap playwright-core autocannon azurite @20minutes/s3rver eslint; do if [ -e "node_modules/$p" ]; then printf '%s ' "$p"; fi; done)
echo "dev tools installed: ${dev:-none}"
echo "packages installed: $(find node_modules -name package.json -not -path '*/node_modules/*/node_modules/*' -path '*node_modules/*' | grep -cE 'node_modules/(@[^/]+/)?[^/@]+/package.json$'); node $(node_modules/.bin/node --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
