#!/usr/bin/env bash
# Browser soak: CHECKS browser checks (default 10) of the demo frontend (login, message,
# reply, agent events) at a 1-minute interval for MINUTES (default 30) on this machine.
# Every minute it samples pathwatch's RSS, the number of Chromium processes of this
# daemon and their summed PSS, and the runs so far; after SIGTERM it counts what is left.
#   bash bench/browser_soak.sh 30 10     # the run recorded in BENCHMARKS.md
# Goal: no growth (pathwatch RSS and Chromium PSS flat after the first minutes), no
# failed runs, no Chromium process left after the stop. Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
checks=${2:-10}
dir=$(mktemp -d)
trap 'kill "${pw_pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
bin=${PATHWATCH_BIN:-target/release/pathwatch}
[ -n "${PATHWATCH_BIN:-}" ] || cargo build --release -q --bin pathwatch
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
demo=$(port); tls=$(port); listen=$(port)
{
  echo "server: {listen: 127.0.0.1:$listen}"
  echo "demo: {listen: 127.0.0.1:$demo, tls_listen: 127.0.0.1:$tls}"
  echo "browser: {hosts: {\"*.demo.test\": 127.0.0.1}}"
  echo "checks:"
  for i in $(seq 1 "$checks"); do
    cat <<YAML
  - name: chat-$i
    type: browser
    target: https://app.demo.test:$tls/app
    interval: 1m
    timeout: 20s
    tls: {ca_file: demo}
    steps:
      - fill: {selector: "#email", value: demo@pathwatch.local}
      - fill: {selector: "#password", value: demo-password}
      - click: "#sign-in"
      - message: {text: hello, input: "#message", send: "#send", reply: "#reply"}
    events: {}
YAML
  done
} > "$dir/config.yaml"
"$bin" run --config "$dir/config.yaml" 2> "$dir/log" &
pw_pid=$!
pss_of() { # summed PSS (kB) and count of the Chromium processes of the daemon
  local total=0 n=0
  for p in $(grep -l "[p]athwatch-browser-$pw_pid-" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0})); n=$((n + 1))
  done
  echo "$n $total"
}
printf "%6s %10s %9s %12s %6s %6s\n" minute rss_mib chromium chromium_mib runs failed
for m in $(seq 1 "$minutes"); do
  sleep 60
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$pw_pid/status")
  read -r n pss < <(pss_of)
  metrics=$(curl -fsS "http://127.0.0.1:$listen/metrics")
  runs=$(echo "$metrics" | awk '/^pathwatch_probes_total\{/ {s+=$2} END {print s+0}')
  failed=$(echo "$metrics" | awk '/^pathwatch_probes_total\{.*result="failure"/ {s+=$2} END {print s+0}')
  printf "%6d %10s %9d %12.1f %6d %6d\n" "$m" "$rss" "$n" "$(echo "$pss/1024" | bc -l)" "$runs" "$failed"
done
kill -TERM "$pw_pid"; wait "$pw_pid" || true
sleep 1
left=$(grep -l "[p]athwatch-browser-$pw_pid-" /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
echo "after SIGTERM: $left Chromium processes left"
