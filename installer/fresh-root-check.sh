#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Runs the README's two set-up commands in a brand-new Debian 12 root, so that a package the
# build or the tests use but installer/bootstrap.sh does not install shows up here and not on a
# new user's machine. (This machine keeps every package anyone installed by hand; a fresh root
# has only what `debootstrap --variant=minbase bookworm` puts there.)
#
#   installer/fresh-root-check.sh [--keep] [--run-only] [--debs DIR]
#
# Needs root (debootstrap, chroot, mount). The minbase root is made once and cached as a tarball
# in $LLMPROXY_FRESH_ROOT_CACHE (default /var/cache/llm-proxy, refreshed after 30 days); every
# run unpacks a new copy, puts the tracked files of this checkout in it (what a clean clone
# would have, with uncommitted edits to tracked files; untracked files are left out, as a clone
# leaves them out), then runs inside it:
#   1. installer/bootstrap.sh run --version    (the README's first command; must print the version)
#   2. installer/bootstrap.sh test             (the README's second command; every test)
# The second runs with LLMPROXY_TEST_VARIANTS=werror (the sanitizer build uses the same packages),
# LLMPROXY_TEST_PACKAGES=0 (the packages are built once, outside, and installed below) and
# LLMPROXY_FRESH_ROOT=0 (no check inside the check). --run-only stops after the first.
# With --debs DIR, then, in another new root: each .deb of DIR installed alone with
# `apt-get install ./FILE.deb` (its dependencies from the archive and nothing else), then
# `llm-proxy --version` and a headless start and stop (SIGTERM, exit status 0), then removed.
# --keep leaves the roots in place for a look (their paths are printed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keep=0
run_only=0
debs=""
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) keep=1 ;;
    --run-only) run_only=1 ;;
    --debs)
        debs="$(cd "${2:?--debs needs a folder}" && pwd)"
        shift
        ;;
    *)
        echo "usage: installer/fresh-root-check.sh [--keep] [--run-only] [--debs DIR]" >&2
        exit 2
        ;;
    esac
    shift
done

say() { echo "fresh-root: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    say "needs root (debootstrap, chroot and mount); run it with sudo" >&2
    exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi

# The archive this machine's apt already uses (never a hard-coded host).
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
    say "cannot find this machine's Debian archive in /etc/apt" >&2
    exit 1
fi

cache_dir="${LLMPROXY_FRESH_ROOT_CACHE:-/var/cache/llm-proxy}"
tarball="$cache_dir/bookworm-minbase.tar"
mkdir -p "$cache_dir"
if [ -f "$tarball" ] && [ -z "$(find "$tarball" -mtime +30)" ] &&
    [ "$(cat "$tarball.mirror" 2>/dev/null)" = "$mirror" ]; then
    say "using the cached minbase root $tarball"
else
    say "debootstrap --variant=minbase bookworm from $mirror (cached afterwards)"
    staging=$(mktemp -d /var/tmp/llm-proxy-debootstrap.XXXXXX)
    if ! debootstrap --variant=minbase bookworm "$staging" "$mirror" >"$staging.log" 2>&1; then
        tail -20 "$staging.log" >&2
        say "debootstrap failed (log above)" >&2
        rm -rf "$staging" "$staging.log"
        exit 1
    fi
    tar -C "$staging" -cf "$tarball.new" .
    mv "$tarball.new" "$tarball"
    echo "$mirror" >"$tarball.mirror"
    rm -rf "$staging" "$staging.log"
fi

roots=()
cleanup() {
    for root in "${roots[@]}"; do
        if mountpoint -q "$root/proc"; then umount "$root/proc" || umount -l "$root/proc"; fi
        if [ "$keep" = 1 ]; then
            say "root kept at $root"
        elif mountpoint -q "$root/proc"; then
            say "$root/proc is still mounted: not deleting $root" >&2
        else
            rm -rf "$root"
        fi
    done
}
trap cleanup EXIT

# A new root from the cached minbase, in $root, with /proc mounted.
new_root() {
    root=$(mktemp -d /var/tmp/llm-proxy-fresh-root.XXXXXX)
    roots+=("$root")
    tar -C "$root" -xf "$tarball"
    # What every installed Debian has and debootstrap leaves out: name resolution for localhost.
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    # What belongs to this machine, not to the project: the trust store for the npm registry's
    # gateway (the extra certificate authorities, picked up when ca-certificates is installed in
    # the root; the bundle NODE_EXTRA_CA_CERTS names) and the user's npm settings. A real user's
    # machine has its own.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    fi
    if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
        mkdir -p "$root$(dirname "$NODE_EXTRA_CA_CERTS")"
        cp "$NODE_EXTRA_CA_CERTS" "$root$NODE_EXTRA_CA_CERTS"
    fi
    if [ -f "$HOME/.npmrc" ]; then cp "$HOME/.npmrc" "$root/root/.npmrc"; fi
    mount -t proc proc "$root/proc"
}

new_root
# The checkout as a clean clone would have it: tracked files only.
mkdir -p "$root/root/llm-proxy"
(cd "$here" && git ls-files -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
    tar -C "$root/root/llm-proxy" -xf -

in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"} \
        ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
        "$@"
}

started=$SECONDS
say "1/2: installer/bootstrap.sh run --version"
# Its output goes to our standard output as it comes; the last line is the version. (Not
# `tee /dev/stderr`: reopening a log file through /dev/stderr truncates it.)
run_log="$root/run.log"
if ! in_root /bin/bash -c 'cd /root/llm-proxy && ./installer/bootstrap.sh run --version' 2>&1 |
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line"
        printf '%s\n' "$line" >"$run_log"
    done; then
    say "FAILED: the README's first command does not work on a fresh Debian 12" >&2
    exit 1
fi
version=$(cat "$run_log")
case "$version" in
llm-proxy\ *) say "1/2 passed: $version ($((SECONDS - started)) s)" ;;
*)
    say "FAILED: the README's first command printed '$version', not the version" >&2
    exit 1
    ;;
esac
if [ "$run_only" = 1 ]; then exit 0; fi

started=$SECONDS
say "2/2: installer/bootstrap.sh test"
if ! in_root /bin/bash -c 'cd /root/llm-proxy && LLMPROXY_TEST_VARIANTS=werror LLMPROXY_TEST_PACKAGES=0 LLMPROXY_FRESH_ROOT=0 ./installer/bootstrap.sh test'; then
    say "FAILED: the README's test command does not pass on a fresh Debian 12" >&2
    exit 1
fi
say "2/2 passed ($((SECONDS - started)) s): both README commands work on a fresh Debian 12"

[ -n "$debs" ] || exit 0
# The packages, each installed alone into a new root.
new_root
started=$SECONDS
mkdir -p "$root/root/debs"
cp "$debs"/*.deb "$root/root/debs/"
for deb in "$debs"/*.deb; do
    name=$(basename "$deb")
    say "installing $name into a new root"
    if ! in_root /bin/bash -c '
        set -e
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "./root/debs/'"$name"'" >/tmp/install.log 2>&1 ||
            { tail -20 /tmp/install.log; exit 1; }
        llm-proxy --version
        # A headless start and a clean stop; no display, no settings, nothing stored.
        llm-proxy --no-gui --in-memory --listen 127.0.0.1:0 >/tmp/out.log 2>&1 &
        pid=$!
        for _ in $(seq 100); do grep -q "listening on" /tmp/out.log && break; sleep 0.1; done
        port=$(sed -n "s|.*listening on http://127.0.0.1:\([0-9]*\)/v1|\1|p" /tmp/out.log | head -1)
        [ -n "$port" ] || { cat /tmp/out.log; exit 1; }
        exec 3<>"/dev/tcp/127.0.0.1/$port"
        printf "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
        answer=$(cat <&3)
        case "$answer" in "HTTP/1.1 200"*) ;; *) echo "healthz: $answer"; exit 1 ;; esac
        kill -TERM "$pid"
        wait "$pid"
        echo "started on port $port, answered /healthz, stopped with status $?"
        apt-get remove -y -qq "$(dpkg-deb -f "./root/debs/'"$name"'" Package)" >/dev/null
    ' cd-root; then
        say "FAILED: $name does not install and run on a fresh Debian 12" >&2
        exit 1
    fi
done
say "packages passed ($((SECONDS - started)) s): each installs, starts headless and stops"
