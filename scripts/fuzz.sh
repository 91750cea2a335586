#!/usr/bin/env bash
# Runs the cargo-fuzz targets of the project with libFuzzer, one after another:
#   decode      codec/fuzz   the decoder on arbitrary byte streams, whole and cut in pieces
#   connection  server/fuzz  one connection's state machine (decoder, dispatch, reply writer,
#                            back-pressure, budget) on an in-memory stream cut at arbitrary points
#
# Seeds each corpus with the golden vectors and the small seed corpus kept in the repository
# (<crate>/fuzz/seeds/<target>/), installs cargo-fuzz if it is missing, picks a toolchain that
# accepts cargo-fuzz's -Z flags, and runs each target for a fixed time. Crashes land in
# <crate>/fuzz/artifacts/<target>/; corpus and artifacts are not committed.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/fuzz.sh [SECONDS] [TARGET...] [-- LIBFUZZER_ARGS...]

Runs every fuzz target (decode, connection), or the TARGETs named, for SECONDS each (default 60),
one after another, after writing seeds into <crate>/fuzz/corpus/<target>: the files of
<crate>/fuzz/seeds/<target>/, and for decode one per golden vector (docs/vectors/rpcx-golden.txt)
and every request back to back. (A connection input starts with two knob bytes, so its seeds are
kept ready-made in server/fuzz/seeds/connection.)

Toolchain, first that works:
  1. an installed nightly (cargo +nightly fuzz);
  2. `rustup toolchain install nightly --profile minimal`;
  3. the default toolchain with RUSTC_BOOTSTRAP=1, which makes stable accept cargo-fuzz's -Z flags.
Set FUZZ_TOOLCHAIN=<name> to force one (e.g. FUZZ_TOOLCHAIN=stable uses route 3 directly).

Environment:
  FUZZ_TOOLCHAIN     toolchain to use instead of the search above
  RPCX_VECTORS       golden vector file (default: docs/vectors/rpcx-golden.txt)
  CARGO_TARGET_DIR   build directory (default: <crate>/fuzz/target)

Examples:
  scripts/fuzz.sh                          # every target, 60 seconds each
  scripts/fuzz.sh 1800 connection          # the connection target for 30 minutes
  nice -n 19 scripts/fuzz.sh 1800 decode -- -jobs=1
  scripts/fuzz.sh 30 -- -max_len=65536
EOF
}

# target name -> directory of its fuzz crate
declare -A crate_of=([decode]=codec/fuzz [connection]=server/fuzz)
all_targets=(decode connection)

seconds=60
targets=()
extra=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		extra=("$@")
		break
		;;
	'' | *[!0-9]*)
		[[ -n ${crate_of[$1]:-} ]] || {
			echo "fuzz.sh: no such target or number of seconds: $1 (see --help)" >&2
			exit 2
		}
		targets+=("$1")
		;;
	*) seconds=$1 ;;
	esac
	shift
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vectors=${RPCX_VECTORS:-$root/docs/vectors/rpcx-golden.txt}

# write_seeds TARGET: the committed seeds of TARGET; for decode also one seed per vector and every
# request back to back (a pipelined stream).
write_seeds() {
	local target=$1 dir=$root/${crate_of[$1]}
	local corpus=$dir/corpus/$target
	mkdir -p "$corpus"
	if [[ $target != decode ]]; then
		:
	elif [[ -f $vectors ]]; then
		local name hex i stream=$corpus/golden-all-requests
		: >"$stream"
		while read -r name hex; do
			[[ -z $name || $name == \#* ]] && continue
			for ((i = 0; i < ${#hex}; i += 2)); do printf '%b' "\\x${hex:i:2}"; done >"$corpus/golden-$name"
			[[ $name == *.res ]] || cat "$corpus/golden-$name" >>"$stream"
		done <"$vectors"
	else
		echo "fuzz.sh: no golden vectors at $vectors" >&2
	fi
	if [[ -d $dir/seeds/$target ]]; then
		cp "$dir/seeds/$target"/* "$corpus"/ 2>/dev/null || true
	fi
	echo "fuzz.sh: $(find "$corpus" -type f | wc -l) corpus files in $corpus"
}

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz" >&2
	cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes -Zsanitizer and other unstable flags to rustc.
toolchain_args=()
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
	toolchain_args=("+$FUZZ_TOOLCHAIN")
	[[ $FUZZ_TOOLCHAIN == nightly* ]] || export RUSTC_BOOTSTRAP=1
elif rustup run nightly rustc --version >/dev/null 2>&1; then
	toolchain_args=(+nightly)
elif rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
	toolchain_args=(+nightly)
else
	echo "fuzz.sh: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1" >&2
	export RUSTC_BOOTSTRAP=1
fi

for target in "${targets[@]}"; do
	write_seeds "$target"
	# cargo fuzz runs from the crate that holds the fuzz/ directory.
	crate_dir=$root/$(dirname "${crate_of[$target]}")
	echo "fuzz.sh: cargo ${toolchain_args[*]:-} fuzz run $target for ${seconds}s in $crate_dir" \
		"(rustc $(rustc "${toolchain_args[@]}" --version | cut -d' ' -f2-))"
	(cd "$crate_dir" && cargo "${toolchain_args[@]}" fuzz run "$target" -- \
		-max_total_time="$seconds" "${extra[@]}")
done
