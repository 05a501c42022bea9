#!/usr/bin/env bash
# Soak: the daemon for MINUTES against the in-process demo with rotating faults plus hostile
# targets (bench/hostile.py: black hole, slow drip, reset, TLS garbage, endless body, ping
# flood), reloaded every minute (SIGHUP, alternating two configs). Every 10 s it samples RSS,
# open fds, threads, TCP sockets by state and the history file size; at the end it prints
# growth per hour from minute WARMUP (default 5) to the end.
#   bash bench/soak.sh 60          # the hour recorded in BENCHMARKS.md
#   bash bench/soak.sh 2 0.5       # CI's smoke (2 minutes, 30 s warm-up)
#   SOAK_CHECKS=10000 bash bench/soak.sh 15 5   # plus 10,000 http checks at 10 s (demo /health)
# Goal: RSS and fds flat (< 5% growth from the warm-up to the end), no CLOSE_WAIT pile-up.
# Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
warmup=${2:-5}
dir=$(mktemp -d)
cleanup() {
  [ -n "${pw_pid:-}" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "${hostile_pid:-}" ] && kill "$hostile_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# PATHWATCH_BIN: a binary of its own (so builds during a long soak do not replace it).
bin=${PATHWATCH_BIN:-target/release/pathwatch}
[ -n "${PATHWATCH_BIN:-}" ] || cargo build --release -q --bin pathwatch
python3 bench/hostile.py > "$dir/ports" &
hostile_pid=$!
for _ in $(seq 50); do [ "$(wc -l < "$dir/ports")" -ge 6 ] && break; sleep 0.1; done
# shellcheck disable=SC1090
source <(sed 's/^/port_/' "$dir/ports")
demo=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
demo_tls=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

write_config() { # $1: file, $2: extra check (the one that comes and goes with each reload)
  cat > "$1" <<YAML
server: {listen: 127.0.0.1:0}
demo: {listen: 127.0.0.1:$demo, tls_listen: 127.0.0.1:$demo_tls}
history: {path: $dir/history.db}
defaults: {interval: 2s, timeout: 1500ms}
checks:
  - {name: health, type: http, target: "http://127.0.0.1:$demo/health?fault=down&fault_every=3m&fault_for=1m"}
  - {name: ready, type: http, target: "http://127.0.0.1:$demo/health/ready?fault=slow:800&fault_every=2m&fault_for=30s"}
  - {name: golden, type: agent_pipeline, target: "ws://127.0.0.1:$demo/ws?fault=drop:tool_completed&fault_every=4m&fault_for=1m"}
  - {name: golden-tls, type: agent_pipeline, target: "wss://localhost:$demo_tls/ws?fault=error&fault_every=5m&fault_for=1m", tls: {ca_file: demo}}
  - {name: cert, type: tls, target: "localhost:$demo_tls", ca_file: demo}
  - {name: black-hole, type: http, target: "http://127.0.0.1:$port_black_hole/"}
  - {name: slow-drip, type: http, target: "http://127.0.0.1:$port_slow_drip/"}
  - {name: reset, type: http, target: "http://127.0.0.1:$port_reset/"}
  - {name: tls-garbage, type: tls, target: "127.0.0.1:$port_tls_garbage"}
  - {name: endless-body, type: http, target: "http://127.0.0.1:$port_endless_body/", max_body_bytes: 1048576}
  - {name: ping-flood, type: websocket, target: "ws://127.0.0.1:$port_ping_flood/", expect: {body_matches: [never]}}
  - {name: ws-black-hole, type: agent_pipeline, target: "ws://127.0.0.1:$port_black_hole/ws"}
$2
YAML
  for i in $(seq 1 "${SOAK_CHECKS:-0}"); do
    echo "  - {name: bulk-$i, type: http, target: \"http://127.0.0.1:$demo/health\", interval: 10s, timeout: 2s}"
  done >> "$1"
}
write_config "$dir/a.yaml" ""
write_config "$dir/b.yaml" "  - {name: comes-and-goes, type: http, target: \"http://127.0.0.1:$demo/health\", interval: 1s, timeout: 500ms}"
cp "$dir/a.yaml" "$dir/config.yaml"

"$bin" run --config "$dir/config.yaml" --log-format json 2> "$dir/log" &
pw_pid=$!
for _ in $(seq 100); do grep -q 'pathwatch is running' "$dir/log" 2>/dev/null && break; sleep 0.1; done
addr=$(grep 'pathwatch is running' "$dir/log" | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4)
echo "soak: pathwatch pid $pw_pid on $addr for $minutes min (warm-up $warmup min); demo $demo/$demo_tls; hostile: $(tr '\n' ' ' < "$dir/ports")"

status() { awk -v k="$1:" '$1==k {print $2}' "/proc/$pw_pid/status"; }
printf '%6s %8s %8s %6s %7s %6s %6s %9s %10s %8s\n' min rss_kb anon_kb fds threads estab closewt time_wait history_kb reloads
samples="$dir/samples"
: > "$samples"
start=$(date +%s)
end=$((start + minutes * 60))
next_reload=$((start + 60))
reloads=0
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 10
  kill -0 "$pw_pid" 2>/dev/null || { echo "pathwatch died"; tail -20 "$dir/log"; exit 1; }
  now=$(date +%s)
  if [ "$now" -ge "$next_reload" ]; then
    if [ $((reloads % 2)) -eq 0 ]; then cp "$dir/b.yaml" "$dir/config.yaml"; else cp "$dir/a.yaml" "$dir/config.yaml"; fi
    kill -HUP "$pw_pid"
    reloads=$((reloads + 1))
    next_reload=$((next_reload + 60))
  fi
  rss=$(status VmRSS)
  # Anonymous memory: RSS also counts the binary's code pages, which page in as rarer
  # paths run; heap growth shows here.
  anon=$(awk '$1 == "Anonymous:" {print $2}' "/proc/$pw_pid/smaps_rollup" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$pw_pid/fd" | wc -l)
  threads=$(status Threads)
  sockets=$(ss -tanp 2>/dev/null | grep "pid=$pw_pid," || true)
  estab=$(grep -c '^ESTAB' <<< "$sockets" || true)
  closewait=$(grep -c '^CLOSE-WAIT' <<< "$sockets" || true)
  timewait=$(ss -tan state time-wait 2>/dev/null | wc -l)
  hist=$(( $(du -k "$dir"/history.db* 2>/dev/null | awk '{s+=$1} END {print s+0}') ))
  min=$(awk -v s=$((now - start)) 'BEGIN {printf "%.1f", s / 60}')
  printf '%6s %8s %8s %6s %7s %6s %6s %9s %10s %8s\n' "$min" "$rss" "$anon" "$fds" "$threads" "$estab" "$closewait" "$timewait" "$hist" "$reloads"
  echo "$min $rss $fds $threads $closewait $hist $anon" >> "$samples"
done

ok=$(grep -c 'Config reloaded.' "$dir/log" || true)
failed_reloads=$(grep -c 'Config reload failed' "$dir/log" || true)
panics=$(grep -ci 'panicked' "$dir/log" || true)
# Growth: the mean of the first 3 samples after the warm-up vs the mean of the last 3 (one
# sample swings with whatever probe is reading a big body at that moment).
awk -v w="$warmup" -v ok="$ok" -v bad="$failed_reloads" -v panics="$panics" '
  $1 >= w { n++; t[n] = $1; r[n] = $2; f[n] = $3; h[n] = $6; a[n] = $7; if ($5 > maxcw) maxcw = $5 }
  END {
    if (n < 6) { print "soak: too short to measure growth after the warm-up"; exit 0 }
    for (i = 1; i <= 3; i++) { r0 += r[i] / 3; f0 += f[i] / 3; a0 += a[i] / 3; r1 += r[n - 3 + i] / 3; f1 += f[n - 3 + i] / 3; a1 += a[n - 3 + i] / 3 }
    hours = (t[n] - t[2]) / 60
    printf "soak: minute %.1f to %.1f (means of 3 samples at each end): anonymous %d -> %d kB (%+.1f%%), RSS %d -> %d kB (%+.1f%%, %+.1f%%/h), fds %.1f -> %.1f (%+.1f%%), history %d -> %d kB, max CLOSE-WAIT %d, reloads ok %d failed %d, panics %d\n",
      t[1], t[n], a0, a1, (a1 - a0) * 100 / (a0 > 0 ? a0 : 1), r0, r1, (r1 - r0) * 100 / r0, (r1 - r0) * 100 / r0 / hours, f0, f1, (f1 - f0) * 100 / f0, h[1], h[n], maxcw, ok, bad, panics
  }' "$samples"
[ "$panics" -eq 0 ] || { echo "soak: the daemon panicked"; exit 1; }
