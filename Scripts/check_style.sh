#!/usr/bin/env bash
# House style check for the Swift code in Sources, Tests, Examples and Benchmarks:
#   1. no line is longer than 120 columns (characters, not bytes);
#   2. `swift format lint --strict` finds nothing (rules and settings in .swift-format).
# Either failure makes the script exit 1. Run from anywhere:
#   bash Scripts/check_style.sh
# Most findings are fixed by the formatter (long string literals and comments are not split):
#   swift format format --in-place --recursive --parallel Sources Tests Examples Benchmarks
# LINT=warn reports lint findings without failing (the line-length check always fails).
set -uo pipefail

cd "$(dirname "$0")/.."
folders=(Sources Tests Examples Benchmarks)
max_columns=120
status=0

# grep counts characters only under a UTF-8 locale; without one it counts bytes (stricter).
utf8_locale=$(locale -a 2>/dev/null | grep -iE '^(C|en_US)\.utf-?8$' | head -n 1)
long_lines=$(find "${folders[@]}" -name '*.swift' -print0 \
    | LC_ALL="${utf8_locale:-C}" xargs -0 grep -nE "^.{$((max_columns + 1)),}$" | cut -d: -f1,2)
if [ -n "$long_lines" ]; then
    echo "$long_lines" | sed "s/\$/: longer than $max_columns columns/"
    echo "check_style: $(echo "$long_lines" | wc -l | tr -d ' ') Swift lines longer than $max_columns columns"
    status=1
else
    echo "check_style: no Swift line longer than $max_columns columns"
fi

if ! swift format --version >/dev/null 2>&1; then
    echo "check_style: 'swift format' is not available (it ships with Swift 6 toolchains)"
    exit 1
fi
if swift format lint --strict --recursive --parallel "${folders[@]}"; then
    echo "check_style: swift format lint found nothing"
elif [ "${LINT:-fail}" = warn ]; then
    echo "check_style: swift format lint findings above (LINT=warn: not failing)"
else
    echo "check_style: swift format lint findings above; fix them or run the formatter"
    status=1
fi
exit $status
