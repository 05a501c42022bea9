#!/usr/bin/env bash
# pathwatch vs blackbox_exporter, side by side on this machine, against the same nginx
# target (HTTP and HTTPS on loopback), driven by the same load generator (wrk) at the same
# concurrency, runs alternating. Each /probe request is one full probe: new connection, TLS
# handshake (https), request, metrics rendered.
#
#   bench/side_by_side.sh [seconds per run] [connections] [rounds]     (defaults 10 16 2)
#   SMOKE=1 bench/side_by_side.sh       # 2 s, 4 connections, 1 round (CI: it ran, printed)
#   LOAD_CHECKS=10000 bench/side_by_side.sh  # accuracy only, while pathwatch runs 10,000
#                                           # http checks (10 s interval) against nginx
#
# Then measurement accuracy: a target that answers after sleeping exactly 50 ms; each
# exporter probes it N times in a row (default 200, smoke 20) and the error of its
# `probe_http_duration_seconds{phase="processing"}` against the 50 ms is summarised.
#
# Needs nginx, prometheus-blackbox-exporter, wrk (Debian) and openssl; builds pathwatch
# --release. Prints one line per run and a summary table: probes/s, p50/p99 latency, CPU
# seconds of the exporter per 1,000 probes, and the pathwatch/blackbox ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
conns=${2:-16}
rounds=${3:-2}
accuracy_runs=${ACCURACY_RUNS:-200}
if [ "${SMOKE:-}" = 1 ]; then secs=2; conns=4; rounds=1; accuracy_runs=20; fi

for tool in nginx wrk prometheus-blackbox-exporter openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx wrk prometheus-blackbox-exporter)" >&2; exit 1; }
done
cargo build --release -q --bin pathwatch
pw_bin=target/release/pathwatch

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# A CA and a certificate for localhost, for nginx's HTTPS; both exporters trust the CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/leaf.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port); https_port=$(free_port); bb_port=$(free_port); pw_port=$(free_port)

cat > "$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  server {
    listen 127.0.0.1:$http_port;
    listen 127.0.0.1:$https_port ssl;
    ssl_certificate $work/leaf.pem;
    ssl_certificate_key $work/leaf.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /health { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
EOF
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

cat > "$work/blackbox.yml" <<EOF
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: $work/ca.pem
EOF
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
  --web.listen-address="127.0.0.1:$bb_port" --log.level=error & pids+=($!)
bb_pid=$!

cat > "$work/pathwatch.yml" <<EOF
server: {listen: "127.0.0.1:$pw_port"}
modules:
  http_2xx:
    type: http
    timeout: 5s
    tls: {ca_file: $work/ca.pem}
probe:
  allow_targets: ["127.0.0.1:*", "localhost:*"]
EOF
load_checks=${LOAD_CHECKS:-0}
if [ "$load_checks" -gt 0 ]; then
  # The load: N checks of nginx at 10 s, running while the accuracy is measured.
  awk -v n="$load_checks" -v port="$http_port" 'BEGIN {
    print "checks:"
    for (i = 0; i < n; i++)
      printf "  - {name: load-%d, type: http, target: \"http://127.0.0.1:%d/health\", interval: 10s, timeout: 2s}\n", i, port
  }' >> "$work/pathwatch.yml"
  rounds=0
fi
RUST_LOG=error "$pw_bin" --config "$work/pathwatch.yml" & pids+=($!)
pw_pid=$!

wait_up() { for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }
wait_up "http://127.0.0.1:$http_port/health"
wait_up "http://127.0.0.1:$bb_port/metrics"
wait_up "http://127.0.0.1:$pw_port/metrics"
if [ "$load_checks" -gt 0 ]; then
  echo "pathwatch is running $load_checks checks; waiting 12 s: every check has started once (first runs spread over the 10 s interval)"
  sleep 12
fi

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }

results="$work/results"
: > "$results"
run() { # name pid port scheme
  local name=$1 pid=$2 port=$3 scheme=$4 target_port
  target_port=$http_port; [ "$scheme" = https ] && target_port=$https_port
  local url="http://127.0.0.1:$port/probe?module=http_2xx&target=$scheme://localhost:$target_port/health"
  # Every probe must succeed, or the comparison is meaningless.
  curl -fsS "$url" | grep -q '^probe_success 1' || curl -fsS "$url" | grep -q 'probe_success{[^}]*} 1' \
    || { echo "$name $scheme: probe_success is not 1:"; curl -sS "$url" | grep probe_success; exit 1; }
  local before after out rps p50 p99 reqs cpu
  before=$(cpu_ticks "$pid")
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$url")
  after=$(cpu_ticks "$pid")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  local errors; errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.3f", t / hz / n * 1000 }')
  printf '%-17s %-5s %9.0f probes/s  p50 %7s ms  p99 %7s ms  %6s CPU s/1000 probes %s\n' \
    "$name" "$scheme" "$rps" "$p50" "$p99" "$cpu" "$errors"
  echo "$name $scheme $rps $p50 $p99 $cpu" >> "$results"
}

[ "$rounds" -gt 0 ] && echo "machine: $(nproc) cores; $secs s per run, $conns connections, wrk -t2; $rounds round(s), alternating"
for round in $(seq "$rounds"); do
  for scheme in http https; do
    run blackbox_exporter "$bb_pid" "$bb_port" "$scheme"
    run pathwatch "$pw_pid" "$pw_port" "$scheme"
  done
done

if [ "$rounds" -gt 0 ]; then
echo
echo "best run of each (probes/s; latency and CPU of that run):"
printf '| %-6s | %-26s | %-26s | %-9s |\n' scheme "pathwatch (p/s, p50/p99 ms, CPU s/1k)" "blackbox_exporter" "ratio p/s"
for scheme in http https; do
  pw=$(awk -v s="$scheme" '$1=="pathwatch" && $2==s' "$results" | sort -k3 -n -r | head -1)
  bb=$(awk -v s="$scheme" '$1=="blackbox_exporter" && $2==s' "$results" | sort -k3 -n -r | head -1)
  read -r _ _ prps pp50 pp99 pcpu <<<"$pw"
  read -r _ _ brps bp50 bp99 bcpu <<<"$bb"
  printf '| %-6s | %6.0f, %s/%s, %s | %6.0f, %s/%s, %s | %5.2fx |\n' "$scheme" \
    "$prps" "$pp50" "$pp99" "$pcpu" "$brps" "$bp50" "$bp99" "$bcpu" \
    "$(awk -v a="$prps" -v b="$brps" 'BEGIN { print a / b }')"
done
fi

# Measurement accuracy: a target that sleeps 50 ms and logs, per request, its own time from
# the parsed request to the first byte of the answer (the truth the probe should report).
slow_port=$(free_port)
truth="$work/truth"
python3 - "$slow_port" "$truth" <<'PY' & pids+=($!)
# Raw sockets, one connection at a time: as little as possible between the request's
# arrival and the clock, and between the clock and the answer's first byte.
import socket, sys, time
log = open(sys.argv[2], "a", buffering=1)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(64)
body = b'{"status":"ok"}'
answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = conn.recv(65536)
    t0 = time.perf_counter()
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            break
        data += more
    slow = data.startswith(b"GET /slow")
    if slow:
        time.sleep(0.050)
    t1 = time.perf_counter()
    conn.sendall(answer)
    conn.close()
    if slow:
        log.write(f"{t1 - t0:.9f}\n")
PY
wait_up "http://127.0.0.1:$slow_port/"
echo
echo "accuracy: $accuracy_runs sequential probes of a target that sleeps 50 ms; error = the"
echo "exporter's processing phase minus the target's own time from request to first byte"
for exporter in "blackbox_exporter $bb_port" "pathwatch $pw_port"; do
  read -r name port <<<"$exporter"
  : > "$truth"
  for _ in $(seq "$accuracy_runs"); do
    curl -fsS "http://127.0.0.1:$port/probe?module=http_2xx&target=http://127.0.0.1:$slow_port/slow" \
      | awk '/^probe_http_duration_seconds\{.*phase="processing"/ {print $2}'
  done > "$work/measured"
  paste "$work/measured" "$truth" | python3 -c '
import sys
name = sys.argv[1]
errs = sorted((float(m) - float(t)) * 1e6 for m, t in (l.split() for l in sys.stdin if l.strip()))
n = len(errs)
pick = lambda q: errs[min(n - 1, int(q * n))]
print(f"{name:<17} n={n} error median {pick(0.5):.0f} us, p99 {pick(0.99):.0f} us, max {errs[-1]:.0f} us")
' "$name"
done
if [ "$load_checks" -gt 0 ]; then
  curl -fsS "http://127.0.0.1:$pw_port/metrics" | awk -v n="$load_checks" '
    /^pathwatch_probes_total\{/ { split($0, a, "result=\""); split(a[2], r, "\""); runs[r[1]] += $NF }
    END { printf "pathwatch under load: %d checks, %d runs so far, %d failed\n", n, runs["success"] + runs["failure"], runs["failure"] }'
fi
