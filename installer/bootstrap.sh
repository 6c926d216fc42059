#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up a fresh Debian 12 machine, build llm-proxy, and run it or its tests.
#
#   installer/bootstrap.sh run [llm-proxy options...]   install what is missing, build, start
#   installer/bootstrap.sh test                         install what is missing, build, run every test
#
# "test" builds twice (warnings as errors, then AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs the whole CTest suite on both builds, including the end-to-end tests with the official
# OpenAI Node SDK; then builds the fuzzers with clang and runs each for a fixed number of inputs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
mode="${1:-}"
[ $# -gt 0 ] && shift

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# libqt6opengl6-dev: Qt6Charts' CMake package needs Qt6OpenGL's, and --no-install-recommends
# does not bring it with qt6-charts-dev.
build_packages=(cmake ninja-build g++ pkg-config qt6-base-dev qt6-httpserver-dev
                qt6-websockets-dev libqt6sql6-sqlite qt6-charts-dev libqt6opengl6-dev
                qtkeychain-qt6-dev)
# The desktop app's tests: a real tray (Xvfb + wmdocker) and a real keychain (gnome-keyring in a
# private D-Bus session; libsecret is loaded by QtKeychain at run time).
# The fuzzers: clang and libFuzzer (in libclang-rt-14-dev).
test_packages=(clang-format xvfb xauth wmdocker dbus-daemon gnome-keyring libsecret-1-0
               clang libclang-rt-14-dev)

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ! command -v node >/dev/null 2>&1 && [ "$mode" = test ]; then missing+=(nodejs npm); fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bootstrap: installing ${missing[*]}"
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
}

jobs="$(nproc 2>/dev/null || echo 2)"

case "$mode" in
run)
    install_missing "${build_packages[@]}"
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMPROXY_BUILD_TESTS=OFF
    cmake --build build -j "$jobs"
    exec build/app/llm-proxy "$@"
    ;;
test)
    install_missing "${build_packages[@]}" "${test_packages[@]}"
    # The end-to-end client: the official OpenAI SDK for Node, pinned by the lock file.
    if [ -f tests/e2e/package-lock.json ]; then
        (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
    fi
    status=0
    for variant in werror asan; do
        dir="build-$variant"
        flags=(-DLLMPROXY_WERROR=ON -DCMAKE_BUILD_TYPE=Debug)
        [ "$variant" = asan ] && flags+=(-DLLMPROXY_SANITIZE=ON)
        echo "bootstrap: building $dir"
        cmake -S . -B "$dir" -G Ninja "${flags[@]}"
        cmake --build "$dir" -j "$jobs"
        echo "bootstrap: testing $dir"
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            ctest --test-dir "$dir" --output-on-failure -j "$jobs" || status=1
    done
    # The fuzzers (tests/fuzz): libFuzzer under ASan+UBSan, each for a fixed number of runs
    # from its seed corpus (about a minute and a half in all on two cores).
    echo "bootstrap: building build-fuzz"
    cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DLLMPROXY_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build-fuzz -j "$jobs"
    echo "bootstrap: fuzzing"
    tests/fuzz/run.sh build-fuzz 30000 || status=1
    exit $status
    ;;
*)
    echo "usage: installer/bootstrap.sh run [llm-proxy options...] | test" >&2
    exit 2
    ;;
esac
