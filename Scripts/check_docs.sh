#!/usr/bin/env bash
# Checks the guides (Docs/*.md, README.md) and their figures:
#   - every image a guide or the README shows exists, and every image in Docs/ is shown somewhere;
#   - no two images in Docs/ are byte-identical;
#   - the DocC catalog holds a byte-identical copy of every image in Docs/ and nothing else.
#     GitHub does not render images through symbolic links and DocC copies a symbolic link into
#     its archive as a link, so each figure is a file in Docs/ (for GitHub) and a copy in
#     Sources/Layerwise/Layerwise.docc/Resources (for DocC);
#   - no guide names a machine path (/work/, /root/, /home/, /tmp/<name>).
# Exits 1 on any finding. `--sync` first copies the images of Docs/ into the catalog.
set -uo pipefail

cd "$(dirname "$0")/.."
resources=Sources/Layerwise/Layerwise.docc/Resources
status=0
fail() { echo "check_docs: $*"; status=1; }

images=$(find Docs -maxdepth 1 -type f \( -name '*.png' -o -name '*.svg' \) -printf '%f\n' | sort)
if [ "${1:-}" = --sync ]; then
    mkdir -p "$resources"
    rm -f "$resources"/*.png "$resources"/*.svg
    for image in $images; do cp "Docs/$image" "$resources/$image"; done
fi

# Images shown by the guides, as "file<TAB>path relative to that file".
references=$(grep -oE '!\[[^]]*\]\([^)]+\)' README.md Docs/*.md \
    | sed -E 's/^([^:]+):!\[[^]]*\]\(([^) ]+).*$/\1\t\2/')
while IFS=$'\t' read -r file target; do
    [ -z "$file" ] && continue
    [ -f "$(dirname "$file")/$target" ] || fail "$file shows $target, which does not exist"
done <<< "$references"

for image in $images; do
    echo "$references" | grep -qE "(^|/|	)$image\$" || fail "Docs/$image is not shown by any guide"
    cmp -s "Docs/$image" "$resources/$image" \
        || fail "$resources/$image is missing or differs from Docs/$image (run with --sync)"
done
for copy in $(find "$resources" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null); do
    [ -f "Docs/$copy" ] || fail "$resources/$copy has no original in Docs/"
done
duplicates=$(cd Docs && sha256sum $images | sort | uniq -D -w 64 | awk '{print $2}' | tr '\n' ' ')
[ -z "$duplicates" ] || fail "byte-identical images in Docs/: $duplicates"
[ -z "$(find "$resources" -type l 2>/dev/null)" ] || fail "$resources holds symbolic links; DocC copies them as links"

machine_paths=$(grep -nE '(/work/|/root/|/home/|/tmp/[A-Za-z])' README.md Docs/*.md)
[ -z "$machine_paths" ] || fail "machine paths in the guides:
$machine_paths"

[ $status -eq 0 ] && echo "check_docs: $(echo "$images" | wc -w) images, all shown, one copy each in Docs/ and the DocC catalog"
exit $status
