#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The benchmark's curve: llmproxy-bench for N = 0, 1,000, 5,000, 10,000 and 19,000 held
# requests, each with Qt's default event dispatcher (LLMPROXY_DISPATCHER=qt) and with
# llm-proxy's epoll dispatcher (the default), in one go. The RESULT lines go to a CSV; a
# Markdown table and a PNG (gnuplot) are drawn from it. See tests/bench/README.md.
#
#   tests/bench/curve.sh BUILD_DIR [OUT_DIR] [-- extra llmproxy-bench options]
#
# BUILD_DIR: a RelWithDebInfo or Release build tree with llmproxy-bench built. OUT_DIR (default
# resources/bench): curve.csv, curve.md, curve.png, curve.log (every run's full output).
# CURVE_N and CURVE_DISPATCHERS override the points ("0 1000 5000 10000 19000", "qt epoll").
set -euo pipefail

usage() {
    echo "usage: $0 BUILD_DIR [OUT_DIR] [-- llmproxy-bench options]" >&2
    exit 2
}
[[ $# -ge 1 && $1 != -* ]] || usage
build=$1
shift
out=resources/bench
if [[ $# -ge 1 && $1 != -- ]]; then
    out=$1
    shift
fi
if [[ $# -ge 1 ]]; then
    [[ $1 == -- ]] || usage
    shift
fi
extra=("$@")

bench=$build/tests/bench/llmproxy-bench
if [[ ! -x $bench ]]; then
    echo "$0: no $bench (cmake --build $build --target llmproxy-bench)" >&2
    exit 1
fi
points=${CURVE_N:-"0 1000 5000 10000 19000"}
dispatchers=${CURVE_DISPATCHERS:-"qt epoll"}

# gnuplot draws the PNG: installed here as part of the benchmark's own set-up.
if ! command -v gnuplot > /dev/null; then
    echo "$0: installing gnuplot-nox" >&2
    if [[ $(id -u) -eq 0 ]]; then
        apt-get install -y gnuplot-nox
    else
        sudo apt-get install -y gnuplot-nox
    fi
fi

mkdir -p "$out"
csv=$out/curve.csv
log=$out/curve.log
# The CSV's columns: the run's context, then RESULT keys in this order (-1: unknown).
keys=(status requests dispatcher store window proxy_args ok failed accept_ms accept_rate_rps
      sustained_rate_rps cpu_accept_ms cpu_per_request_us rss_idle_kib rss_hold_kib
      rss_per_request_bytes rss_peak_kib new_p50_ms new_p95_ms stats_p50_ms stats_p95_ms
      results_to_last_answer_ms completion_to_last_answer_ms listen_overflows stub_accept_ms
      stub_sustained_rate_rps stub_answer_ms stub_listen_overflows proxy_cpu_ms total_ms)
(IFS=,; echo "load1,${keys[*]}") > "$csv"
: > "$log"

failures=0
# N outermost, so that both dispatchers of a point see the machine in the same state.
for n in $points; do
    for dispatcher in $dispatchers; do
        load1=$(cut -d' ' -f1 /proc/loadavg)
        echo "== N=$n dispatcher=$dispatcher (load average $load1)" | tee -a "$log" >&2
        status=0
        output=$(LLMPROXY_DISPATCHER=$dispatcher "$bench" --requests "$n" "${extra[@]}" 2>&1) ||
            status=$?
        echo "$output" >> "$log"
        result=$(grep '^RESULT ' <<< "$output" | tail -n 1 || true)
        if [[ -z $result ]]; then
            echo "$0: N=$n $dispatcher: no RESULT line (exit status $status); see $log" >&2
            failures=$((failures + 1))
            continue
        fi
        [[ $status -eq 0 ]] || failures=$((failures + 1))
        declare -A value=()
        for pair in ${result#RESULT }; do
            value[${pair%%=*}]=${pair#*=}
        done
        line=$load1
        for key in "${keys[@]}"; do
            line+=,${value[$key]:--1}
        done
        echo "$line" >> "$csv"
        grep -E '^  (time to accept|new request|GET /stats|results arrive|right answers)' \
            <<< "$output" >&2 || true
        unset value
    done
done

# The table for the README, one row per point.
awk -F, '
NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i; next }
function v(name, scale, digits,   x) {
    x = $col[name]
    if (x == "" || x + 0 < 0) return "n/a"
    return sprintf("%." digits "f", x / scale)
}
BEGIN {
    print "| N | dispatcher | new request p50 / p95 (ms) | `GET /stats` p50 / p95 (ms) |" \
          " accept all N (s) [stub] | listen overflows | answer all N (s) [stub] |" \
          " CPU per request (µs) | RSS holding (MiB) / per request (KiB) | answers right |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
}
{
    printf "| %d | %s | %s / %s | %s / %s | %s [%s] | %s | %s [%s] | %s | %s / %s | %s / %s |\n",
        $col["requests"], ($col["dispatcher"] == "qt" ? "Qt (glib)" : "epoll"),
        v("new_p50_ms", 1, 2), v("new_p95_ms", 1, 2), v("stats_p50_ms", 1, 2),
        v("stats_p95_ms", 1, 2), v("accept_ms", 1000, 2), v("stub_accept_ms", 1000, 2),
        v("listen_overflows", 1, 0), v("results_to_last_answer_ms", 1000, 2),
        v("stub_answer_ms", 1000, 2),
        v("cpu_per_request_us", 1, 0), v("rss_hold_kib", 1024, 0),
        v("rss_per_request_bytes", 1024, 1), $col["ok"], $col["requests"]
}' "$csv" > "$out/curve.md"

# The picture: one data file per dispatcher, columns looked up by name.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
header=$(head -n 1 "$csv")
column() { # 1-based column of a CSV key
    tr ',' '\n' <<< "$header" | grep -nx "$1" | cut -d: -f1
}
for dispatcher in $dispatchers; do
    awk -F, -v d="$dispatcher" -v c="$(column dispatcher)" 'NR > 1 && $c == d' "$csv" \
        > "$tmp/$dispatcher.csv"
done
c_n=$(column requests)
gp() { # a gnuplot expression for column $1 scaled by $2, NaN when unknown
    echo "((\$$(column "$1") < 0) ? NaN : \$$(column "$1") / $2)"
}
title() { [[ $1 == qt ]] && echo "Qt dispatcher (glib)" || echo "llm-proxy epoll dispatcher"; }
plots() { # plots() EXPR TITLE_SUFFIX STYLE: one line per dispatcher
    local expr=$1 suffix=$2 style=$3 sep=""
    for dispatcher in $dispatchers; do
        local color=$([[ $dispatcher == qt ]] && echo "#d95f02" || echo "#1b9e77")
        printf '%s"%s" using %s:%s with linespoints lc rgb "%s" %s title "%s%s"' "$sep" \
            "$tmp/$dispatcher.csv" "$c_n" "$expr" "$color" "$style" "$(title "$dispatcher")" \
            "$suffix"
        sep=", "
    done
}
stubfrom=${dispatchers##* } # the stub is measured in every run: take the last dispatcher's
stub() { # the stub's line for column $1 scaled by $2
    printf ', "%s" using %s:%s with linespoints lc rgb "#7570b3" dt 2 pt 6 title "ideal stub server (client floor)"' \
        "$tmp/$stubfrom.csv" "$c_n" "$(gp "$1" "$2")"
}
gnuplot <<EOF
set datafile separator ","
set terminal pngcairo size 1500,1350 font "sans,10"
set output "$out/curve.png"
set multiplot layout 3,2 title "llm-proxy with N held requests (llmproxy-bench, $(date +%Y-%m-%d))"
set grid
set key top left
set xlabel "N held requests"
set xrange [0:*]

set title "New request (malformed JSON, answered 400) while N are held"
set ylabel "ms"
set logscale y
plot $(plots "$(gp new_p50_ms 1)" " p50" "pt 7"), $(plots "$(gp new_p95_ms 1)" " p95" "dt 3 pt 6")

set title "GET /stats while N are held"
plot $(plots "$(gp stats_p50_ms 1)" " p50" "pt 7"), $(plots "$(gp stats_p95_ms 1)" " p95" "dt 3 pt 6")
unset logscale y

set title "Accept N arriving at once (first connect -> all N counted)"
set ylabel "s"
set yrange [0:*]
plot $(plots "$(gp accept_ms 1000)" "" "pt 7")$(stub stub_accept_ms 1000)

set title "Answer all N once the results arrive (output download -> last answer)"
plot $(plots "$(gp results_to_last_answer_ms 1000)" "" "pt 7")$(stub stub_answer_ms 1000)

set title "Proxy RSS while holding N"
set ylabel "MiB"
plot $(plots "$(gp rss_hold_kib 1024)" "" "pt 7")

set title "Proxy CPU per accepted request (CPU while accepting / N)"
set ylabel "µs"
plot $(plots "$(gp cpu_per_request_us 1)" "" "pt 7")
unset multiplot
EOF

echo "wrote $csv, $out/curve.md, $out/curve.png and $log" >&2
cat "$out/curve.md"
if [[ $failures -gt 0 ]]; then
    echo "$0: $failures run(s) failed; see $log" >&2
    exit 1
fi
