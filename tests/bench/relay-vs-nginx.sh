#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Relayed traffic: llm-proxy against nginx as a reverse proxy, in the same run (issue 4).
#
# Starts, as the current user, on 127.0.0.1 and free ports, with every file in a temp dir:
#   (a) nginx as the upstream, answering GET /v1/models with a small static OpenAI-shaped list;
#   (b) nginx as a reverse proxy to (a) (keep-alive pool of 64, HTTP/1.1);
#   (c) llm-proxy --no-gui relaying to (a).
# Checks that each answers right (curl, bodies compared), then runs wrk against (a), (b) and (c)
# and prints requests/s, latency p50/p99 and llm-proxy's ratio to nginx-as-proxy, plus one
# `RESULT key=value ...` line. Fails (exit 1) on a wrong body, any non-2xx answer or socket
# error. See tests/bench/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: relay-vs-nginx.sh [--proxy PATH] [--proxy-arg ARG]... [--runs N] [--threads T]
                         [--connections C] [--duration D] [--nginx-workers N] [--keep]
  --proxy PATH        the llm-proxy binary (default: $LLM_PROXY, else build-release/,
                      build-rel/, build-bench/ or build/ app/llm-proxy of this checkout)
  --proxy-arg ARG     one more argument for llm-proxy (repeatable), e.g. --io-threads=1
  --runs N            repeat the three measurements N times and report medians (default 1)
  --threads T         wrk -t (default 2)
  --connections C     wrk -c (default 50)
  --duration D        wrk -d (default 10s)
  --nginx-workers N   worker_processes of each nginx (default auto: one per core, as
                      llm-proxy serves HTTP on one I/O thread per core by default; compare
                      1 with --proxy-arg --io-threads=1)
  --keep              keep the temp dir (configs, logs) and print its path
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
proxy=${LLM_PROXY:-}
runs=1
threads=2
connections=50
duration=10s
workers=auto
keep=0
extra_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --proxy) proxy=$2; shift 2 ;;
    --proxy-arg) extra_args+=("$2"); shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --nginx-workers) workers=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "relay-vs-nginx: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "relay-vs-nginx: --runs wants a positive number" >&2; exit 2; }

die() {
    echo "relay-vs-nginx: $*" >&2
    exit 1
}

# --- set-up: wrk and nginx-light from Debian when missing ----------------------------------
nginx_bin=$(command -v nginx || true)
[[ -z $nginx_bin && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -n $nginx_bin ]] || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]}" >&2
    sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get install -y "${missing[@]}" >&2 ||
        { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "${missing[@]}" >&2; } ||
        die "could not install ${missing[*]}"
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi
[[ -x $nginx_bin ]] || die "nginx not found"

if [[ -z $proxy ]]; then
    for dir in build-release build-rel build-bench build; do
        if [[ -x $root/$dir/app/llm-proxy ]]; then
            proxy=$root/$dir/app/llm-proxy
            break
        fi
    done
fi
[[ -n $proxy && -x $proxy ]] || die "no llm-proxy binary (build one, or pass --proxy PATH)"

work=$(mktemp -d "${TMPDIR:-/tmp}/relay-vs-nginx.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $keep -eq 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# A port nothing listens on now (the start below retries if another process takes it first).
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 30000))
        if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

wait_http() { # url: until it answers at all, for up to 10 s
    for _ in $(seq 1 100); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}

# The upstream's answer: a small /v1/models list, as OpenAI shapes it.
models='{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"system"}]}'
key="sk-bench-not-a-real-key"

# nginx runs its workers as `user` only when started as root: keep them as the current user.
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user $(id -un) $(id -gn);"

# start_nginx name body: writes $work/name/nginx.conf with a server block `body` (which uses
# @PORT@) and starts it; sets the global `port`.
start_nginx() {
    local name=$1 server=$2 dir=$work/$1 attempt
    mkdir -p "$dir/logs" "$dir/tmp"
    for attempt in 1 2 3 4 5; do
        port=$(free_port) || die "no free port"
        cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
${server//@PORT@/$port}
}
EOF
        "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' \
            >"$dir/logs/stdout.log" 2>&1 &
        local pid=$!
        pids+=("$pid")
        if wait_http "http://127.0.0.1:$port/"; then
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        grep -q "Address already in use" "$dir/logs/error.log" "$dir/logs/stdout.log" 2>/dev/null ||
            { cat "$dir/logs/error.log" "$dir/logs/stdout.log" >&2; die "nginx ($name) did not start"; }
    done
    die "nginx ($name): no free port after 5 attempts"
}

# (a) the upstream
start_nginx upstream "    server {
        listen 127.0.0.1:@PORT@;
        location = /v1/models {
            default_type application/json;
            return 200 '$models';
        }
        location / { return 404; }
    }"
upstream_port=$port

# (b) nginx as a reverse proxy to (a)
start_nginx proxy "    upstream api {
        server 127.0.0.1:$upstream_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
nginx_proxy_port=$port

# (c) llm-proxy relaying to (a); its own config dir, no key from the environment.
proxy_args=(--no-gui --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$upstream_port/v1")
if "$proxy" --help 2>&1 | grep -q -- '--in-memory'; then
    proxy_args+=(--in-memory)
else
    proxy_args+=(--data-dir "$work/llm-proxy-data")
fi
proxy_args+=("${extra_args[@]}")
mkdir -p "$work/config"
env -u OPENAI_API_KEY XDG_CONFIG_HOME="$work/config" "$proxy" "${proxy_args[@]}" \
    >"$work/llm-proxy.out" 2>"$work/llm-proxy.err" &
proxy_pid=$!
pids+=("$proxy_pid")
llm_port=""
for _ in $(seq 1 100); do
    llm_port=$(sed -n 's|^llm-proxy listening on http://127\.0\.0\.1:\([0-9]*\)/v1$|\1|p' \
        "$work/llm-proxy.out" | head -1)
    [[ -n $llm_port ]] && break
    kill -0 "$proxy_pid" 2>/dev/null || break
    sleep 0.1
done
[[ -n $llm_port ]] || { tail -20 "$work/llm-proxy.err" >&2; die "llm-proxy did not start"; }

names=(nginx_direct nginx_proxy llm_proxy)
labels=("nginx upstream, direct" "nginx reverse proxy" "llm-proxy relay")
urls=("http://127.0.0.1:$upstream_port/v1/models"
    "http://127.0.0.1:$nginx_proxy_port/v1/models"
    "http://127.0.0.1:$llm_port/v1/models")

# --- right answers first: status, content type and body, byte for byte --------------------
for i in 0 1 2; do
    out=$(curl -s --max-time 5 -H "Authorization: Bearer $key" \
        -w '\n%{http_code} %{content_type}' "${urls[$i]}") || die "${labels[$i]}: curl failed"
    body=${out%$'\n'*}
    meta=${out##*$'\n'}
    [[ $meta == "200 application/json"* ]] || die "${labels[$i]}: got '$meta', expected 200 JSON"
    [[ $body == "$models" ]] || die "${labels[$i]}: wrong body: $body"
done

# --- wrk --------------------------------------------------------------------------------
to_ms() { # "1.23ms" / "456.78us" / "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "-1" }'
}

relayed_before() {
    curl -s --max-time 5 "http://127.0.0.1:$llm_port/stats" |
        sed -n 's/.*"relayed":\([0-9]*\).*/\1/p'
}

declare -A rps p50 p99 requests
failures=0
echo "load: wrk -t$threads -c$connections -d$duration --latency, GET /v1/models; nginx" \
    "worker_processes $workers; $proxy ${proxy_args[*]}; load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
for run in $(seq 1 "$runs"); do
    # The two proxies take turns going first, so a load that drifts during a run does not
    # always favour the same one.
    order=(0 1 2)
    [[ $((run % 2)) -eq 0 ]] && order=(0 2 1)
    for i in "${order[@]}"; do
        name=${names[$i]}
        before=0
        [[ $name == llm_proxy ]] && before=$(relayed_before)
        log=$work/wrk-$name-$run.txt
        wrk -t"$threads" -c"$connections" -d"$duration" --latency \
            -H "Authorization: Bearer $key" "${urls[$i]}" >"$log" 2>&1 ||
            { cat "$log" >&2; die "wrk failed against ${labels[$i]}"; }
        r=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
        n=$(awk '/requests in/ { print $1 }' "$log")
        l50=$(awk '$1 == "50%" { print $2 }' "$log")
        l99=$(awk '$1 == "99%" { print $2 }' "$log")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$log")
        errors=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$log")
        [[ -n $r && -n $n ]] || { cat "$log" >&2; die "cannot read wrk's output"; }
        if [[ -n $non2xx && $non2xx != 0 ]]; then
            echo "FAIL ${labels[$i]}: $non2xx answers were not 2xx" >&2
            failures=$((failures + 1))
        fi
        if [[ -n $errors && $errors != 0 ]]; then
            echo "FAIL ${labels[$i]}: socket errors: $(grep 'Socket errors' "$log")" >&2
            failures=$((failures + 1))
        fi
        if [[ $name == llm_proxy ]]; then
            # Every answer wrk counted went through the relay (not some short cut).
            after=$(relayed_before)
            if [[ -z $after || $((after - before)) -lt $n ]]; then
                echo "FAIL llm-proxy relayed $((after - before)) but wrk counted $n answers" >&2
                failures=$((failures + 1))
            fi
        fi
        rps[$name,$run]=$r
        p50[$name,$run]=$(to_ms "$l50")
        p99[$name,$run]=$(to_ms "$l99")
        requests[$name,$run]=$n
        printf 'run %d/%d  %-24s %10.0f req/s  p50 %8.3f ms  p99 %8.3f ms\n' "$run" "$runs" \
            "${labels[$i]}" "$r" "${p50[$name,$run]}" "${p99[$name,$run]}" >&2
    done
done
kill -0 "$proxy_pid" 2>/dev/null || { failures=$((failures + 1)); echo "FAIL llm-proxy died" >&2; }

median() { # values... -> the median (the mean of the middle two for an even count)
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A med_rps med_p50 med_p99
ratios=()
for run in $(seq 1 "$runs"); do
    ratios+=("$(awk -v a="${rps[llm_proxy,$run]}" -v b="${rps[nginx_proxy,$run]}" \
        'BEGIN { printf "%.2f", 100 * a / b }')")
done
for name in "${names[@]}"; do
    vr=() v50=() v99=()
    for run in $(seq 1 "$runs"); do
        vr+=("${rps[$name,$run]}")
        v50+=("${p50[$name,$run]}")
        v99+=("${p99[$name,$run]}")
    done
    med_rps[$name]=$(median "${vr[@]}")
    med_p50[$name]=$(median "${v50[@]}")
    med_p99[$name]=$(median "${v99[@]}")
done
ratio=$(median "${ratios[@]}")

echo
what="wrk -t$threads -c$connections -d$duration, GET /v1/models"
[[ $runs -gt 1 ]] && what="$what, median of $runs runs"
echo "RELAYED TRAFFIC ($what)"
printf '%-26s %12s %12s %12s\n' "" "req/s" "p50 ms" "p99 ms"
for i in 0 1 2; do
    name=${names[$i]}
    printf '%-26s %12.0f %12.3f %12.3f\n' "${labels[$i]}" "${med_rps[$name]}" \
        "${med_p50[$name]}" "${med_p99[$name]}"
done
printf 'llm-proxy / nginx reverse proxy: %.1f %% (per run: %s)\n' "$ratio" "${ratios[*]}"
status=ok
[[ $failures -eq 0 ]] || status=failed
echo "RESULT status=$status runs=$runs threads=$threads connections=$connections" \
    "duration=$duration nginx_workers=$workers proxy_args=$(IFS=,; echo "${extra_args[*]}")" \
    "nginx_direct_rps=${med_rps[nginx_direct]} nginx_proxy_rps=${med_rps[nginx_proxy]}" \
    "llm_proxy_rps=${med_rps[llm_proxy]} ratio_pct=$ratio" \
    "nginx_direct_p50_ms=${med_p50[nginx_direct]} nginx_direct_p99_ms=${med_p99[nginx_direct]}" \
    "nginx_proxy_p50_ms=${med_p50[nginx_proxy]} nginx_proxy_p99_ms=${med_p99[nginx_proxy]}" \
    "llm_proxy_p50_ms=${med_p50[llm_proxy]} llm_proxy_p99_ms=${med_p99[llm_proxy]}" \
    "failures=$failures"
[[ $failures -eq 0 ]]
