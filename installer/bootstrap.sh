#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up a fresh Debian 12 machine, build llm-proxy, and run it or its tests.
#
#   installer/bootstrap.sh run [llm-proxy options...]   install what is missing, build, start
#   installer/bootstrap.sh test                         install what is missing, build, run every test
#   installer/bootstrap.sh package                      build the .deb packages into dist/
#
# "test" builds twice (warnings as errors, then AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs the whole CTest suite on both builds, including the end-to-end tests with the official
# OpenAI Node SDK; then builds the fuzzers with clang and runs each for a fixed number of inputs
# (tests/fuzz). Then, as root, it runs both commands again in a brand-new Debian 12 root
# (installer/fresh-root-check.sh), which fails when a package the build or the tests use is not
# installed here. Without root that check is skipped with a notice, except under CI (CI=true),
# where it is required.
#
# It also builds the .deb packages (as `package` does), checks them with lintian,
# desktop-file-validate, appstreamcli and systemd-analyze, and installs each into a fresh root.
#
# Environment: LLMPROXY_TEST_VARIANTS (default "werror asan") chooses the builds;
# LLMPROXY_TEST_PACKAGES=0 skips the packages; LLMPROXY_FRESH_ROOT=0 skips the fresh-root check.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
mode="${1:-}"
[ $# -gt 0 ] && shift

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# libqt6opengl6-dev: Qt6Charts' CMake package needs Qt6OpenGL's, and --no-install-recommends
# does not bring it with qt6-charts-dev. qt6-tools-dev (Qt6LinguistTools' CMake package) and
# qt6-l10n-tools (lupdate, lrelease): the desktop app's translation template (.ts) is made in
# every build.
build_packages=(cmake ninja-build g++ pkg-config qt6-base-dev qt6-httpserver-dev
                qt6-websockets-dev libqt6sql6-sqlite qt6-charts-dev libqt6opengl6-dev
                qtkeychain-qt6-dev qt6-tools-dev qt6-l10n-tools)
# The desktop app's tests: a real tray (Xvfb + wmdocker) and a real keychain (gnome-keyring in a
# private D-Bus session; libsecret is loaded by QtKeychain at run time).
# The fuzzers: clang and libFuzzer (in libclang-rt-14-dev). The TLS tests make a self-signed
# certificate with the openssl tool (tests/support/testcertificate.cpp). GET /metrics is checked
# by Prometheus' own `promtool check metrics` (in the prometheus package; the metrics_promtool
# test).
test_packages=(clang-format xvfb xauth wmdocker dbus-daemon gnome-keyring libsecret-1-0
               clang libclang-rt-14-dev openssl prometheus)
# The .deb packages (CPack, dpkg-shlibdeps, which needs `file`; help2man writes the man page)
# and their checks.
package_packages=(dpkg-dev file help2man)
check_packages=(lintian desktop-file-utils appstream systemd)

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

# Both .deb packages into dist/: llm-proxy (the desktop app) and llm-proxy-headless.
build_packages_into_dist() {
    rm -rf dist
    mkdir -p dist
    for gui in ON OFF; do
        dir="build-deb-gui-$gui"
        echo "bootstrap: building the package in $dir"
        cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMPROXY_BUILD_TESTS=OFF \
            -DLLMPROXY_GUI="$gui" -DLLMPROXY_PACKAGING=ON
        cmake --build "$dir" -j "$jobs"
        rm -rf "$dir/cpack"
        (cd "$dir" && cpack -G DEB -B "$here/$dir/cpack" >/dev/null)
        cp "$dir"/cpack/*.deb dist/
    done
    ls -l dist/*.deb
}

# lintian, desktop-file-validate, appstreamcli and systemd-analyze on what dist/ holds.
check_packages_in_dist() {
    local failed=0
    echo "bootstrap: lintian"
    lintian --fail-on error,warning --suppress-tags-from-file installer/lintian-overrides.txt \
        dist/*.deb || failed=1
    echo "bootstrap: desktop-file-validate, appstreamcli validate"
    desktop-file-validate resources/io.github.llm_proxy.desktop || failed=1
    appstreamcli validate --no-net --pedantic resources/io.github.llm_proxy.metainfo.xml || failed=1
    echo "bootstrap: systemd-analyze verify"
    # The units name /usr/bin/llm-proxy, which need not be installed here: they are verified
    # with the built binary's path in its place. Any complaint (even an unknown key, which
    # systemd only warns about) fails the check.
    local scratch unit mode out
    scratch=$(mktemp -d)
    mkdir -m 700 "$scratch/run"
    for unit in system user; do
        mode=()
        [ "$unit" = user ] && mode=(--user)
        sed "s|/usr/bin/llm-proxy|$here/build-deb-gui-OFF/app/llm-proxy|" \
            "installer/systemd/llm-proxy.$unit.service" >"$scratch/llm-proxy.service"
        if ! out=$(XDG_RUNTIME_DIR="$scratch/run" systemd-analyze verify "${mode[@]}" --man=no \
            "$scratch/llm-proxy.service" 2>&1) || [ -n "$out" ]; then
            echo "llm-proxy.$unit.service: $out" >&2
            failed=1
        fi
    done
    rm -rf "$scratch"
    return $failed
}

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
    for variant in ${LLMPROXY_TEST_VARIANTS:-werror asan}; do
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
    # The .deb packages, and the checks Debian's tools make of them.
    debs=()
    if [ "${LLMPROXY_TEST_PACKAGES:-1}" != 0 ]; then
        install_missing "${package_packages[@]}" "${check_packages[@]}"
        if build_packages_into_dist && check_packages_in_dist; then
            debs=(--debs dist)
        else
            echo "bootstrap: the packages failed their checks" >&2
            status=1
        fi
    fi
    # Last: the two commands again on a fresh Debian 12 root, which only has what this script
    # installs (this machine keeps whatever was ever installed by hand), and the packages
    # installed there.
    if [ "${LLMPROXY_FRESH_ROOT:-1}" != 0 ]; then
        if [ "$(id -u)" -eq 0 ]; then
            echo "bootstrap: the README's commands on a fresh Debian 12 root"
            ./installer/fresh-root-check.sh "${debs[@]}" || status=1
        elif [ "${CI:-}" = true ]; then
            echo "bootstrap: the fresh-root check needs root under CI" >&2
            status=1
        else
            echo "bootstrap: skipped the fresh-root check (needs root: sudo installer/fresh-root-check.sh)"
        fi
    fi
    exit $status
    ;;
package)
    install_missing "${build_packages[@]}" "${package_packages[@]}"
    build_packages_into_dist
    ;;
*)
    echo "usage: installer/bootstrap.sh run [llm-proxy options...] | test | package" >&2
    exit 2
    ;;
esac
