# Sourced by the bench scripts (not run): the shared bench lab (NSD on 127.0.0.2-99) is
# started if it is down, and stopped on exit only if it was started here. Needs BENCH (the
# shared bench folder) and LAB_RUN; the script's EXIT trap calls `lab_stop_if_started`, or
# is `lab_cleanup`, which also stops the processes listed in `pids` by PID.
lab_started=0

lab_up_if_down() {
  if ! dig +time=1 +tries=1 +norec -p 53 @127.0.0.2 . NS >/dev/null 2>&1; then
    "$BENCH/up.sh" >/dev/null; lab_started=1
  fi
}

lab_stop_if_started() {
  if [ "$lab_started" = 1 ]; then "$BENCH/down.sh" >/dev/null 2>&1 || true; fi
}

# Processes the script started, each stopped by PID on exit.
pids=()

lab_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  lab_stop_if_started
}
