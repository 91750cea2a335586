#!/usr/bin/env bash
# Fuzzes the rpcx decoder (codec/fuzz, target `decode`) with cargo-fuzz and libFuzzer.
#
# Seeds the corpus with the golden vectors, installs cargo-fuzz if it is missing, picks a toolchain
# that accepts cargo-fuzz's -Z flags, and runs for a fixed time. Crashes land in
# codec/fuzz/artifacts/decode/; corpus and artifacts are not committed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/fuzz.sh [SECONDS] [-- LIBFUZZER_ARGS...]

Runs the codec's `decode` fuzz target for SECONDS (default 60), after writing one seed per golden
vector (docs/vectors/rpcx-golden.txt) into codec/fuzz/corpus/decode.

Toolchain, first that works:
  1. an installed nightly (cargo +nightly fuzz);
  2. `rustup toolchain install nightly --profile minimal`;
  3. the default toolchain with RUSTC_BOOTSTRAP=1, which makes stable accept cargo-fuzz's -Z flags.
Set FUZZ_TOOLCHAIN=<name> to force one (e.g. FUZZ_TOOLCHAIN=stable uses route 3 directly).

Environment:
  FUZZ_TOOLCHAIN     toolchain to use instead of the search above
  RPCX_VECTORS       golden vector file (default: docs/vectors/rpcx-golden.txt)
  CARGO_TARGET_DIR   build directory (default: codec/fuzz/target)

Examples:
  scripts/fuzz.sh                   # 60 seconds
  scripts/fuzz.sh 600 -- -jobs=2    # 10 minutes, two processes
  scripts/fuzz.sh 30 -- -max_len=65536
EOF
}

seconds=60
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        ''|*[!0-9]*) echo "fuzz.sh: not a number of seconds: $1 (see --help)" >&2; exit 2 ;;
        *) seconds=$1 ;;
    esac
    shift
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vectors=${RPCX_VECTORS:-$root/docs/vectors/rpcx-golden.txt}
corpus=$root/codec/fuzz/corpus/decode

# One seed per vector, plus every request back to back (a pipelined stream).
write_seeds() {
    if [[ ! -f $vectors ]]; then
        echo "fuzz.sh: no golden vectors at $vectors; starting from an empty corpus" >&2
        return
    fi
    mkdir -p "$corpus"
    local name hex i stream=$corpus/golden-all-requests
    : > "$stream"
    while read -r name hex; do
        [[ -z $name || $name == \#* ]] && continue
        for ((i = 0; i < ${#hex}; i += 2)); do printf '%b' "\\x${hex:i:2}"; done > "$corpus/golden-$name"
        [[ $name == *.res ]] || cat "$corpus/golden-$name" >> "$stream"
    done < "$vectors"
    echo "fuzz.sh: $(ls "$corpus" | wc -l) corpus files in $corpus"
}

if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes -Zsanitizer and other unstable flags to rustc.
toolchain_args=()
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
    toolchain_args=("+$FUZZ_TOOLCHAIN")
    [[ $FUZZ_TOOLCHAIN == nightly* ]] || export RUSTC_BOOTSTRAP=1
elif rustup run nightly rustc --version > /dev/null 2>&1; then
    toolchain_args=(+nightly)
elif rustup toolchain install nightly --profile minimal > /dev/null 2>&1; then
    toolchain_args=(+nightly)
else
    echo "fuzz.sh: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
fi

write_seeds
cd "$root/codec"
echo "fuzz.sh: cargo ${toolchain_args[*]:-} fuzz run decode for ${seconds}s" \
    "(rustc $(rustc "${toolchain_args[@]}" --version | cut -d' ' -f2-))"
exec cargo "${toolchain_args[@]}" fuzz run decode -- -max_total_time="$seconds" "${extra[@]}"
