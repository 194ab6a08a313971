#!/usr/bin/env bash
# Builds Ferry's .deb and checks it the way a person installing it would meet it:
#
# 1. the desktop file and AppStream metainfo validate (desktop-file-validate, appstreamcli);
# 2. the package builds (build-deb.sh: cargo-deb), holds exactly the expected files with the
#    expected modes and owner, its binary is stripped and answers --version, it declares the
#    libc dependency cargo-deb's $auto found, and lintian finds no error in it;
# 3. it installs with dpkg -i (missing Depends are installed with apt-get first),
#    /usr/bin/ferry --version names the same commit as the binary it was built from, --help and
#    `ferry forward --help` show examples, `man ferry` renders, the installed desktop file and
#    metainfo validate;
# 4. dpkg -r removes it again, leaving no /usr/bin/ferry.
#
#   packaging/linux/check-deb.sh               short mode: packages target/debug/ferry (what
#                                              tests/run has built already), fast compression
#   FERRY_RELEASE_DEB=1 packaging/linux/check-deb.sh
#                                              full mode: cargo build --release -p ferry and
#                                              package that, as a release would
#
# Needs: cargo-deb, dpkg-dev, binutils, file, desktop-file-utils, appstream, man-db, lintian
# (optional outside CI), and root for steps 3-4 (not root: it says so and skips them; under
# CI=true that is a failure instead). It refuses to install when a `ferry` package is installed
# already, rather than replace a person's install.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
ci="${CI:-}"
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
step() { echo "== check-deb: $*"; }

step "desktop file and metainfo"
desktop-file-validate packaging/linux/dev.ferry.Ferry.desktop
# --strict: warnings and infos fail too (only pedantic hints pass: the id's capital letters).
metainfo=packaging/linux/dev.ferry.Ferry.metainfo.xml
appstreamcli validate --no-net --strict --explain "$metainfo"
# What software centres show and appstreamcli only hints at, or cannot check offline.
for element in '<launchable type="desktop-id">dev.ferry.Ferry.desktop</launchable>' \
    '<binary>ferry</binary>' '<content_rating type="oars-1.1"' '<url type="homepage">' \
    '<url type="bugtracker">' '<screenshot type="default">' '<release version="'; do
    grep -qF "$element" "$metainfo" || fail "$metainfo lacks $element"
done
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"  # [workspace.package]
grep -qF "<release version=\"$version\"" "$metainfo" || fail "$metainfo has no <release> for version $version"
# Each screenshot URL names a file in this repository, with its real size.
grep -o '<image type="source" width="[0-9]*" height="[0-9]*">[^<]*' "$metainfo" \
    | sed 's|<image type="source" width="\([0-9]*\)" height="\([0-9]*\)">https://raw.githubusercontent.com/ferry-app/ferry/main/|\1 \2 |' \
    | while read -r width height path; do
        [ -f "$path" ] || fail "screenshot $path (in $metainfo) is not in the repository"
        size="$(file -b "$path" | grep -o '[0-9]* x [0-9]*')"
        [ "$size" = "$width x $height" ] || fail "screenshot $path is $size, $metainfo says $width x $height"
    done
echo "metainfo: $(grep -cE '<screenshot( |>)' "$metainfo") screenshots in the repository at their sizes, a release for $version"

if [ "${FERRY_RELEASE_DEB:-}" = 1 ]; then
    step "full mode: release build"
    cargo build --release -p ferry --quiet
    binary="$root/target/release/ferry"
    fast=()
else
    binary="$root/target/debug/ferry"
    [ -x "$binary" ] || cargo build -p ferry --quiet
    fast=(--fast)
fi

work="$(mktemp -d)"
installed=""
cleanup() {
    # Remove the package if this run installed it and failed before removing it.
    if [ -n "$installed" ]; then dpkg -r ferry >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

step "build the package from $binary"
start=$(date +%s)
deb="$(packaging/linux/build-deb.sh --binary "$binary" --out "$work" "${fast[@]}")"
echo "built $(basename "$deb") ($(du -h "$deb" | cut -f1)) in $(($(date +%s) - start)) s"
dpkg-deb --field "$deb" Package Version Architecture Installed-Size Depends Suggests

step "contents"
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort > "$work/files"
"$binary" man "$work/man" >/dev/null
{
    echo /usr/bin/ferry
    echo /usr/share/applications/dev.ferry.Ferry.desktop
    echo /usr/share/doc/ferry/changelog.Debian.gz
    echo /usr/share/doc/ferry/copyright
    (cd assets/icons/hicolor && find . -type f -name 'dev.ferry.Ferry.*' | sed 's|^\.|/usr/share/icons/hicolor|')
    for page in "$work"/man/*.1; do echo "/usr/share/man/man1/$(basename "$page").gz"; done
    echo /usr/share/metainfo/dev.ferry.Ferry.metainfo.xml
} | sort > "$work/expected"
diff -u "$work/expected" "$work/files" || fail "the package does not hold exactly the expected files (- expected, + in the package)"
echo "$(wc -l < "$work/files") files, as expected"
# Every entry root-owned; the binary 0755, everything else 0644 (directories 0755).
dpkg-deb --contents "$deb" | awk '$2 != "root/root" && $2 != "0/0" {print "not root-owned: " $0}
    $6 == "./usr/bin/ferry" && $1 != "-rwxr-xr-x" {print "binary not 0755: " $0}
    $6 != "./usr/bin/ferry" && $1 ~ /^-/ && $1 != "-rw-r--r--" {print "file not 0644: " $0}
    $1 ~ /^d/ && $1 != "drwxr-xr-x" {print "directory not 0755: " $0}' > "$work/modes"
[ ! -s "$work/modes" ] || fail "wrong owner or mode: $(cat "$work/modes")"
dpkg-deb --extract "$deb" "$work/root"
file "$work/root/usr/bin/ferry" | grep -q ', stripped' || fail "the packaged binary is not stripped: $(file "$work/root/usr/bin/ferry")"
[ "$("$work/root/usr/bin/ferry" --version)" = "$("$binary" --version)" ] || fail "the packaged binary is not the one given"
for icon in $(cd assets/icons/hicolor && find . -type f -name 'dev.ferry.Ferry.*'); do
    cmp -s "assets/icons/hicolor/$icon" "$work/root/usr/share/icons/hicolor/$icon" || fail "icon $icon differs from assets/"
done
dpkg-deb --field "$deb" Depends | grep -q 'libc6 (>= ' || fail "Depends lacks libc6 (cargo-deb's \$auto found nothing?)"
echo "binary stripped ($(du -h "$work/root/usr/bin/ferry" | cut -f1)), modes and owner right, icons identical to assets/"

if command -v lintian >/dev/null; then
    step "lintian"
    # initial-upload-closes-no-bugs only matters for uploads to the Debian archive.
    lintian --tag-display-limit 0 --suppress-tags initial-upload-closes-no-bugs "$deb" | tee "$work/lintian" || true
    if grep -q '^E:' "$work/lintian"; then fail "lintian reports errors"; fi
elif [ "$ci" = true ]; then
    fail "lintian is not installed (apt-get install lintian)"
else
    echo "check-deb: lintian is not installed; skipping it (apt-get install lintian)"
fi

if [ "$(id -u)" != 0 ]; then
    [ "$ci" = true ] && fail "installing the package needs root"
    echo "check-deb: not root: the package was built and checked but not installed (run as root for that)"
    exit 0
fi
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; then
    fail "a ferry package is installed already; remove it first (dpkg -r ferry), this check will not replace it"
fi

step "dependencies"
# The runtime libraries the package depends on; install the missing ones from Debian.
deps="$(dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/ //g' | grep -v '^$')"
missing=()
for dep in $deps; do
    dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" || missing+=("$dep")
done
if ((${#missing[@]})); then
    echo "installing missing dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "dpkg -i"
installed=1
dpkg -i "$deb" >/dev/null
dpkg-query -W -f='${Status} ${Version}\n' ferry

step "the installed ferry"
got="$(/usr/bin/ferry --version)"
want="$("$binary" --version)"
[ "$got" = "$want" ] || fail "/usr/bin/ferry --version says '$got', the packaged binary '$want'"
echo "$got"
/usr/bin/ferry --help > "$work/help"
grep -q '^Usage: ferry' "$work/help" || fail "/usr/bin/ferry --help does not print the usage: $(head -3 "$work/help")"
grep -q '^Examples:' "$work/help" || fail "/usr/bin/ferry --help has no examples"
/usr/bin/ferry forward --help | grep -q '^Examples:' || fail "ferry forward --help has no examples"
MANWIDTH=80 man ferry 2>"$work/man.err" > "$work/man.txt" || fail "man ferry failed: $(cat "$work/man.err")"
grep -q 'FILES' "$work/man.txt" && grep -q 'ferry-forward(1)' "$work/man.txt" \
    || fail "man ferry does not render the expected page: $(head -20 "$work/man.txt")"
MANWIDTH=80 man ferry-forward | grep -q 'EXAMPLES' || fail "man ferry-forward has no EXAMPLES"
echo "man ferry: $(wc -l < "$work/man.txt") lines"
desktop-file-validate /usr/share/applications/dev.ferry.Ferry.desktop
appstreamcli validate --no-net /usr/share/metainfo/dev.ferry.Ferry.metainfo.xml >/dev/null

step "dpkg -r"
dpkg -r ferry >/dev/null
installed=""
[ ! -e /usr/bin/ferry ] || fail "/usr/bin/ferry is still there after dpkg -r"
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; then
    fail "dpkg still lists ferry as installed"
fi
step "ok"
