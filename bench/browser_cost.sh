#!/usr/bin/env bash
# What a browser run costs beside a bare headless Chromium loading the same page:
#   1. wall time and CPU (user+sys, children included) of `chromium --headless --dump-dom`
#      on the demo's /app, against `pathwatch check` of one browser check of the same page
#      (each starts its own browser; RUNS runs each, medians);
#   2. Chromium's summed PSS while PAGES pages (1, 4, 8) are open at once.
#   bash bench/browser_cost.sh 10        # the numbers in BENCHMARKS.md
# Goal: wall and CPU <= 1.5x the bare browser. Run it on an idle machine: CPU is the
# whole machine's while each command runs. Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
dir=$(mktemp -d)
trap 'kill "${demo_pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
bin=${PATHWATCH_BIN:-target/release/pathwatch}
[ -n "${PATHWATCH_BIN:-}" ] || cargo build --release -q --bin pathwatch
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" demo-backend --listen "127.0.0.1:$port" 2>/dev/null &
demo_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port/app"
sandbox=""; [ "$(id -u)" = 0 ] && sandbox="--no-sandbox"
cat > "$dir/one.yaml" <<YAML
checks:
  - {name: page, type: browser, target: "$url", timeout: 20s, steps: [{wait_for: {selector: "#email"}}]}
YAML
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; }   # jiffies of the whole machine
measure() { # $@: command; prints "wall cpu": CPU of the whole machine while it ran (the
  # browser's processes are not all waited for by pathwatch, so rusage would miss them)
  local b0 b1 t0 t1
  b0=$(busy); t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || true
  t1=$(date +%s.%N); b1=$(busy)
  echo "$t0 $t1 $b0 $b1" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f %.3f\n", $2-$1, ($4-$3)/hz}'
}
: > "$dir/bare"; : > "$dir/ours"
for _ in $(seq "$runs"); do
  measure chromium --headless $sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --user-data-dir="$dir/bare-profile" --dump-dom "$url" >> "$dir/bare"
  rm -rf "$dir/bare-profile"
  measure "$bin" check --config "$dir/one.yaml" >> "$dir/ours"
done
bw=$(cut -d' ' -f1 "$dir/bare" | median); bc_=$(cut -d' ' -f2 "$dir/bare" | median)
ow=$(cut -d' ' -f1 "$dir/ours" | median); oc=$(cut -d' ' -f2 "$dir/ours" | median)
printf "bare chromium --dump-dom: wall %ss, cpu %ss (median of %d)\n" "$bw" "$bc_" "$runs"
printf "pathwatch check (browser): wall %ss, cpu %ss -> %.2fx wall, %.2fx cpu\n" "$ow" "$oc" \
  "$(echo "$ow/$bw" | bc -l)" "$(echo "$oc/$bc_" | bc -l)"

for pages in 1 4 8; do
  {
    echo "browser: {max_pages: $pages}"
    echo "checks:"
    for i in $(seq "$pages"); do
      echo "  - {name: p$i, type: browser, target: \"$url\", timeout: 20s, step_timeout: 4s, steps: [{wait_for: {text: never-there}}]}"
    done
  } > "$dir/many.yaml"
  "$bin" check --config "$dir/many.yaml" >/dev/null 2>&1 &
  pid=$!
  sleep 3
  total=0; n=0
  for p in $(grep -l "[p]athwatch-browser-$pid-" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0})); n=$((n + 1))
  done
  wait "$pid" || true
  printf "%d pages open: %d Chromium processes, %.0f MiB PSS\n" "$pages" "$n" "$(echo "$total/1024" | bc -l)"
done
