# Sourced by run.sh (PROFILE=1, or STEPS=profile): Keyhole under node --cpu-prof, at 1 KiB
# and CONNS connections for PROFILE_DURATION seconds, then the top self-time functions
# appended to $RAW as one "profile" line (bench/cpuprofile-top.mjs).
profile_keyhole() {
  local dur=${PROFILE_DURATION:-10} f
  rm -f "$W"/prof/*.cpuprofile
  log "=== profile: Keyhole at 1 KiB under node --cpu-prof for ${dur}s"
  NODE_FLAGS="--cpu-prof --cpu-prof-dir=$W/prof --cpu-prof-interval=250" start_contender keyhole-prof || return 1
  warm keyhole-prof
  run_wrk keyhole-prof 1k "$CONNS" "$dur" 0
  stop_contender   # SIGTERM → drain → exit: node writes the profile
  f=$(ls -t "$W"/prof/*.cpuprofile 2>/dev/null | head -1)
  [ -n "$f" ] || { log "no .cpuprofile written"; return 1; }
  node "$BENCH/cpuprofile-top.mjs" "$f" "$BUILD" >>"$RAW" || return 1
  log "profile: $f"
}
