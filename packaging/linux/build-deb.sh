#!/usr/bin/env bash
# Builds Ferry's .deb with cargo-deb from a binary that is already built; prints its path.
#
#   packaging/linux/build-deb.sh [--binary PATH] [--out DIR] [--fast]
#
#   --binary PATH  the ferry binary to package (default: target/release/ferry, made by
#                  `cargo build --release -p ferry`; CI passes target/debug/ferry so that the
#                  package needs no second build). cargo-deb strips it in the package.
#   --out DIR      where to write ferry_<version>-1_<arch>.deb (default: target/debian)
#   --fast         lighter compression, for CI, where the package is thrown away
#
# What goes in the package, and its Depends, is `[package.metadata.deb]` in app/ferry/Cargo.toml.
# This script adds what cargo-deb cannot do itself: it stages the binary where cargo-deb looks
# for it (a private target folder with `release/ferry`: cargo-deb refuses to package the dev
# profile's folder, and a staged copy lets a debug build stand in without touching target/), and
# writes the man pages with that very binary (`ferry man`), gzipped as Debian policy asks, so
# they always match it. Needs: cargo-deb (`cargo install cargo-deb`), dpkg-dev (dpkg-shlibdeps,
# for the `$auto` dependencies), binutils (strip), gzip.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
binary="$root/target/release/ferry"
out="$root/target/debian"
fast=()
while (($#)); do
    case "$1" in
        --binary) binary="$(realpath "$2")"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --fast) fast=(--fast); shift ;;
        *) echo "build-deb.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
    esac
done
[ -x "$binary" ] || { echo "build-deb.sh: no ferry binary at $binary (build it first: cargo build --release -p ferry)" >&2; exit 1; }
cargo deb --version >/dev/null 2>&1 || { echo "build-deb.sh: cargo-deb is missing (cargo install cargo-deb)" >&2; exit 1; }
for tool in dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is missing (apt-get install dpkg-dev binutils gzip)" >&2; exit 1; }
done

# The binary must be the version Cargo.toml declares, or the package would lie about it.
# `ferry --version` prints "ferry 0.1.0 (commit 1a2b3c4)".
read -r _ version _ < <("$binary" --version)
want="$(cd "$root" && cargo pkgid --offline -p ferry)"  # path+file:///…/app/ferry#0.1.0
want="${want##*[#@]}"
[ "$version" = "$want" ] || { echo "build-deb.sh: $binary is version '$version', Cargo.toml says $want: rebuild it" >&2; exit 1; }

mkdir -p "$root/target"
stage="$(mktemp -d "$root/target/deb-stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/release"
cp "$binary" "$stage/release/ferry"
"$stage/release/ferry" man "$stage/release/man" >/dev/null
gzip -9n "$stage/release/man"/*.1

# One timestamp for every file in the archive: the commit's, so a rebuild gives the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}"
mkdir -p "$out"
CARGO_TARGET_DIR="$stage" cargo deb --quiet --package ferry --no-build --locked \
    --output "$out" "${fast[@]}" --manifest-path "$root/Cargo.toml" >"$stage/cargo-deb.out"
deb="$(tail -1 "$stage/cargo-deb.out")"
[ -f "$deb" ] || { echo "build-deb.sh: cargo deb did not report a package: $(cat "$stage/cargo-deb.out")" >&2; exit 1; }
echo "$deb"
