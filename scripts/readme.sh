#!/usr/bin/env bash
# Regenerates the README's generated blocks: never edit them by hand.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/readme.sh [--compat] [--figures] [--help]

  --compat    runs scripts/go-suite.sh --markdown and puts its counts and table between the
              README's <!-- go-compat:begin --> and <!-- go-compat:end --> markers
  --figures   runs scripts/compare.sh --rounds 3 --markdown (servers pinned apart, three rounds in
              turn, medians) and puts its table between <!-- figures:begin --> and
              <!-- figures:end -->
  --instructions
              runs scripts/instructions.sh --markdown (callgrind and strace, server alone) and
              puts its table between <!-- instructions:begin --> and <!-- instructions:end -->
  --splice NAME FILE
              puts FILE, written by one of those scripts' --markdown, into block NAME
With no option, all three.
USAGE
}

compat=0
figures=0
instructions=0
splice_name=""
splice_file=""
while [[ $# -gt 0 ]]; do
	arg=$1
	shift
	case $arg in
	--splice)
		[[ $# -ge 2 ]] || {
			usage >&2
			exit 2
		}
		splice_name=$1 splice_file=$2
		shift 2
		;;
	--compat) compat=1 ;;
	--figures) figures=1 ;;
	--instructions) instructions=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done
if [[ -z $splice_name ]]; then
	((compat || figures || instructions)) || compat=1 figures=1 instructions=1
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# splice NAME FILE: replaces the README block between NAME's markers with FILE.
splice() {
	python3 - "$root/README.md" "$1" "$2" <<'PY'
import sys
readme, name, path = sys.argv[1:4]
text = open(readme).read()
begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
a, b = text.index(begin) + len(begin), text.index(end)
open(readme, "w").write(text[:a] + open(path).read().rstrip("\n") + "\n" + text[b:])
PY
	echo "readme.sh: README block $1 regenerated"
}

if [[ -n $splice_name ]]; then
	splice "$splice_name" "$splice_file"
fi
if ((compat)); then
	# go-suite.sh takes target/release/ringrpc-server when there is one: make it current.
	(cd "$root" && cargo build --release -p ringrpc-server --bin ringrpc-server)
	"$root/scripts/go-suite.sh" --markdown "$work/compat.md"
	splice go-compat "$work/compat.md"
fi
if ((figures)); then
	# Three rounds, medians: one run's figures moved by a pause of the machine are not published.
	"$root/scripts/compare.sh" --rounds 3 --markdown "$work/figures.md"
	splice figures "$work/figures.md"
fi
if ((instructions)); then
	"$root/scripts/instructions.sh" --servers ringrpc,ringrpc-noop,echo-limit,echo-bufring --markdown "$work/instructions.md"
	splice instructions "$work/instructions.md"
fi
