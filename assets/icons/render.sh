#!/usr/bin/env bash
# Renders Ferry's icons from their SVG sources into the PNGs that are committed beside them.
#
# The PNGs are committed (not rendered in the build) so that building the binary, the .deb or a
# cargo-packager bundle needs no SVG renderer on any OS; run this script after editing an SVG
# and commit the result. It also writes assets/icons/contact-sheet.png: every icon at every
# size on light and dark backgrounds, to look at before committing.
#
# Needs: rsvg-convert (Debian/Ubuntu: apt-get install librsvg2-bin) and, for the contact sheet,
# ImageMagick's montage/convert (apt-get install imagemagick).
#
#   src/ferry.svg        app icon, drawn for 48 px and up
#   src/ferry-small.svg  app icon, drawn for 16-32 px (fewer, bigger shapes)
#   tray/*.svg           tray icons: idle / active / degraded / failed
#
# Outputs: hicolor/<size>/apps/dev.ferry.Ferry.png (16-512 px) and hicolor/scalable/apps/*.svg,
# ferry.ico (16-256 px, for Windows), tray/<size>/ferry-tray-<state>.png (22, 24, 32, 48 px).
set -euo pipefail
cd "$(dirname "$0")"
command -v rsvg-convert >/dev/null || { echo "render.sh: rsvg-convert is missing (apt-get install librsvg2-bin)" >&2; exit 1; }

render() { # svg size out
    mkdir -p "$(dirname "$3")"
    rsvg-convert --width "$2" --height "$2" "$1" --output "$3.tmp"
    # Strip timestamps and text chunks so that re-rendering an unchanged SVG changes no bytes.
    convert "$3.tmp" -strip -define png:compression-level=9 "PNG32:$3"
    rm -f "$3.tmp"
}

# App icon in the freedesktop hicolor theme layout (copied as is into the .deb and AppImage).
for size in 16 22 24 32; do
    render src/ferry-small.svg "$size" "hicolor/${size}x${size}/apps/dev.ferry.Ferry.png"
done
for size in 48 64 128 256 512; do
    render src/ferry.svg "$size" "hicolor/${size}x${size}/apps/dev.ferry.Ferry.png"
done
mkdir -p hicolor/scalable/apps
cp src/ferry.svg hicolor/scalable/apps/dev.ferry.Ferry.svg

# Windows wants an .ico (installer and shortcut icons); cargo-packager takes it from icons = [...].
convert hicolor/{16x16,24x24,32x32,48x48,64x64,256x256}/apps/dev.ferry.Ferry.png ferry.ico

# Tray icons at the sizes a StatusNotifierItem pixmap list usually carries.
for svg in tray/ferry-tray-*.svg; do
    name="$(basename "$svg" .svg)"
    for size in 22 24 32 48; do
        render "$svg" "$size" "tray/${size}x${size}/$name.png"
    done
done

# Contact sheet: app icon sizes, then tray states (idle, active, degraded, failed) at each size,
# on a light, a mid-grey, a dark and a coloured panel.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
app=(hicolor/{16x16,22x22,24x24,32x32,48x48,64x64,128x128}/apps/dev.ferry.Ferry.png)
tray=()
for size in 22 24 32 48; do
    for state in idle active degraded failed; do tray+=("tray/${size}x${size}/ferry-tray-$state.png"); done
done
i=0
for bg in '#ffffff' '#d6d6d6' '#1e1e1e' '#2b5797'; do
    montage -background "$bg" "${app[@]}" -geometry +8+8 -tile x1 "$work/app-$i.png"
    montage -background "$bg" "${tray[@]}" -geometry +6+6 -tile 16x1 "$work/tray-$i.png"
    convert "$work/app-$i.png" "$work/tray-$i.png" -background "$bg" -gravity west -append +repage "$work/row-$i.png"
    i=$((i + 1))
done
convert "$work"/row-*.png -background '#808080' -append +repage -strip contact-sheet.png
echo "render.sh: icons rendered; look at assets/icons/contact-sheet.png"
