#!/usr/bin/env bash
# /probe throughput of pathwatch and blackbox_exporter for the probers beyond HTTP, both
# started on the same unchanged blackbox.yml (pathwatch as a drop-in: --config.file,
# --web.listen-address), driven by the same wrk at the same concurrency, runs alternating:
#   tcp      connect to nginx (tcp_connect)
#   tcp_tls  connect and a TLS handshake with nginx's TLS port (`tls: true`)
#   icmp     one echo to 127.0.0.1 (root or CAP_NET_RAW, or a ping_group_range that allows it)
#   grpc     grpc.health.v1 Check against grpcio's health servicer (h2c; the Python server
#            is the ceiling here, for both)
#   h2       an https GET that nginx answers over HTTP/2 (h2 by ALPN)
#
#   bench/blackbox_probers.sh [seconds per run] [connections] [rounds]   (defaults 10 16 1)
#   SMOKE=1 bench/blackbox_probers.sh      # 2 s, 4 connections (CI: it ran, printed)
#
# Needs nginx, wrk, prometheus-blackbox-exporter, openssl, python3 with grpcio-health-checking.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
conns=${2:-16}
rounds=${3:-1}
if [ "${SMOKE:-}" = 1 ]; then secs=2; conns=4; rounds=1; fi
for tool in nginx wrk prometheus-blackbox-exporter openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
cargo build --release -q --bin pathwatch
pw_bin=target/release/pathwatch

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/leaf.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port); https_port=$(free_port); grpc_port=$(free_port); bb_port=$(free_port); pw_port=$(free_port)

printf '%s\n' "worker_processes 2;" "pid $work/nginx.pid;" "error_log $work/nginx.err;" \
  "events { worker_connections 4096; }" "http {" "  access_log off;" \
  "  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;" \
  "  uwsgi_temp_path $work; scgi_temp_path $work;" \
  "  server {" "    listen 127.0.0.1:$http_port;" "    listen 127.0.0.1:$https_port ssl http2;" \
  "    ssl_certificate $work/leaf.pem;" "    ssl_certificate_key $work/leaf.key;" \
  "    location / { return 200 'ok'; }" "  }" "}" > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
python3 tests/blackbox/health_server.py "$grpc_port" >/dev/null & pids+=($!)

printf '%s\n' "modules:" \
  "  tcp: {prober: tcp, timeout: 5s, tcp: {preferred_ip_protocol: ip4}}" \
  "  tcp_tls: {prober: tcp, timeout: 5s, tcp: {preferred_ip_protocol: ip4, tls: true, tls_config: {ca_file: $work/ca.pem, server_name: localhost}}}" \
  "  icmp: {prober: icmp, timeout: 5s, icmp: {preferred_ip_protocol: ip4}}" \
  "  grpc: {prober: grpc, timeout: 5s, grpc: {preferred_ip_protocol: ip4, service: service1}}" \
  "  h2: {prober: http, timeout: 5s, http: {preferred_ip_protocol: ip4, valid_http_versions: [HTTP/2.0], tls_config: {ca_file: $work/ca.pem}}}" \
  > "$work/blackbox.yml"
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
  --web.listen-address="127.0.0.1:$bb_port" --log.level=error & pids+=($!)
bb_pid=$!
RUST_LOG=error "$pw_bin" --config.file "$work/blackbox.yml" --web.listen-address "127.0.0.1:$pw_port" & pids+=($!)
pw_pid=$!

wait_up() { for _ in $(seq 150); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }
wait_up "http://127.0.0.1:$http_port/"
wait_up "http://127.0.0.1:$bb_port/metrics"
wait_up "http://127.0.0.1:$pw_port/metrics"
for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }
results="$work/results"; : > "$results"
target_of() {
  case $1 in
    tcp) echo "127.0.0.1:$http_port" ;;
    tcp_tls) echo "127.0.0.1:$https_port" ;;
    icmp) echo "127.0.0.1" ;;
    grpc) echo "127.0.0.1:$grpc_port" ;;
    h2) echo "https://localhost:$https_port/" ;;
  esac
}
run() { # name pid port module
  local name=$1 pid=$2 port=$3 module=$4
  local url="http://127.0.0.1:$port/probe?module=$module&target=$(target_of "$module")"
  curl -fsS "$url" | grep -q '^probe_success 1' \
    || { echo "$name $module: probe_success is not 1:"; curl -sS "$url" | grep -v '^#'; exit 1; }
  local before after out rps p50 p99 reqs cpu
  before=$(cpu_ticks "$pid")
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$url")
  after=$(cpu_ticks "$pid")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.3f", t / hz / n * 1000 }')
  printf '%-17s %-8s %9.0f probes/s  p50 %7s ms  p99 %7s ms  %6s CPU s/1000 probes\n' \
    "$name" "$module" "$rps" "$p50" "$p99" "$cpu"
  echo "$name $module $rps $p50 $p99 $cpu" >> "$results"
}

echo "machine: $(nproc) cores; $secs s per run, $conns connections, wrk -t2; $rounds round(s), alternating"
for _ in $(seq "$rounds"); do
  for module in tcp tcp_tls icmp grpc h2; do
    run blackbox_exporter "$bb_pid" "$bb_port" "$module"
    run pathwatch "$pw_pid" "$pw_port" "$module"
  done
done
echo
printf '| %-8s | %-30s | %-30s | %-9s |\n' prober "pathwatch (p/s, p50/p99 ms, CPU s/1k)" "blackbox_exporter" "ratio p/s"
for module in tcp tcp_tls icmp grpc h2; do
  pw=$(awk -v m="$module" '$1=="pathwatch" && $2==m' "$results" | sort -k3 -n -r | head -1)
  bb=$(awk -v m="$module" '$1=="blackbox_exporter" && $2==m' "$results" | sort -k3 -n -r | head -1)
  awk -v m="$module" -v pw="$pw" -v bb="$bb" 'BEGIN {
    split(pw, p, " "); split(bb, b, " ")
    printf "| %-8s | %6.0f, %5.2f/%5.2f, %5.3f       | %6.0f, %5.2f/%5.2f, %5.3f       | %8.2fx |\n", m, p[3], p[4], p[5], p[6], b[3], b[4], b[5], b[6], p[3]/b[3]
  }'
done
