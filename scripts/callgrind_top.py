#!/usr/bin/env python3
"""Where a server's instructions per request go, from one callgrind dump of a measured batch
(scripts/instructions.sh --keep DIR keeps them: DIR/callgrind.SERVER.LOAD.2).

  callgrind_top.py DUMP --requests N [--top K]
      self cost per request of the K costliest functions (instructions spent in the function's own
      code, inlined callees included, calls excluded)
  callgrind_top.py DUMP --requests N --function NAME --binary BIN [--depth D] [--top K]
      the self cost of one function (its exact name as in the first form) by source line, D frames
      of the inline chain deep, outermost first (`connection.rs:331 < table.rs:279`): which inlined
      code the function's instructions belong to. Needs the dump recorded with --dump-instr=yes
      (instructions.sh does so), the very binary that was profiled, and addr2line (binutils).

  callgrind_top.py DUMP --requests N --by-crate --binary BIN [--top K]
      the self cost of every function split by the crate whose code each instruction is: the
      innermost inline frame outside the standard library (`core`, `alloc`, `std`) names it, so
      serde_json's parser inlined into a service's decode counts for serde_json, and `ptr::write`
      inlined into ringrpc's code for ringrpc. Code a derive generates counts for the crate that
      derives; C code built into the binary for the crate that builds it (mimalloc's for
      libmimalloc-sys), and code in other objects (glibc's memcpy, the loader) as "C". The same
      needs as the form above.

callgrind_annotate gives inclusive costs and per-file listings; this gives the views that tell a
per-request cost apart in an LTO build, where most of the work is inlined into a few functions."""

import argparse
import collections
import os
import re
import subprocess
import sys

# A cost line: a position (an address in hex or a line number, absolute, +/- relative, or * for
# the same) then the cost. With --dump-instr=yes the positions are "instr line", so a line carries
# two positions; the first is then the instruction's address.
COST = re.compile(r"^(0x[0-9a-f]+|[+-]?\d+|\*)(?:\s+(?:[+-]?\d+|\*))?\s+(\d+)$")


def self_costs(dump):
    """{function: {instruction address: self cost}} of the dump (calls' costs left out)."""
    costs = collections.defaultdict(collections.Counter)
    function = None
    after_calls = False
    address = 0
    with open(dump, errors="replace") as lines:
        for line in lines:
            if line.startswith("fn="):
                function = line[3:].strip()
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost, not this function's own.
                after_calls = True
                continue
            match = COST.match(line.strip())
            if not match:
                continue
            position = match.group(1)
            if position.startswith("0x"):
                address = int(position, 16)
            elif position[0] in "+-":
                address += int(position)
            elif position != "*":
                address = int(position)
            if after_calls:
                after_calls = False
                continue
            costs[function][address] += int(match.group(2))
    return costs


def inline_chains(binary, addresses, full_paths=False):
    """{address: [source line of each inline frame, outermost first]} from addr2line: file names
    alone, or whole paths with `full_paths`."""
    listing = "\n".join(hex(a) for a in addresses) + "\n"
    out = subprocess.run(
        ["addr2line", "-e", binary, "-i", "-f", "-C", "-a"],
        input=listing,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    chains = {}
    current = None
    i = 0
    while i < len(out):
        line = out[i]
        if line.startswith("0x"):
            current = int(line, 16)
            chains[current] = []
            i += 1
        elif current is not None and i + 1 < len(out):
            # A function name, then its file:line (innermost frame first).
            where = out[i + 1].split(" ")[0]
            if not full_paths:
                where = where.split("/")[-1]
            chains[current].append(where)
            i += 2
        else:
            i += 1
    return {a: list(reversed(frames)) for a, frames in chains.items()}


# A source path's crate: a registry crate by its directory (`serde_json-1.0.154`), the standard
# library by its place in the toolchain's sources, a workspace crate by its manifest directory.
REGISTRY_CRATE = re.compile(r"/registry/src/[^/]+/([A-Za-z0-9_.-]+?)-\d+\.\d+\.\d+[^/]*/")
STD_CRATE = re.compile(r"/library/(core|alloc|std|proc_macro|panic_unwind)/")
WORKSPACE = (
    ("/server/io/", "ringrpc-io"),
    ("/server/", "ringrpc-server"),
    ("/codec/", "ringrpc-codec"),
    ("/bench-client/", "ringrpc-bench-client"),
    ("/benches/", "ringrpc-benches"),
)


def crate_of(path):
    """The crate a source path belongs to: a name, "std", or None when unknown.

    >>> crate_of("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde_json-1.0.154/src/de.rs:1851")
    'serde_json'
    >>> crate_of("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/io-uring-0.6.4/src/lib.rs:412")
    'io-uring'
    >>> crate_of("/rustc/0123abcd/library/core/src/ptr/mod.rs:1805")
    'std'
    >>> crate_of("/work/main/server/io/src/frame_reader.rs:90"), crate_of("/work/main/server/src/connection.rs:545")
    ('ringrpc-io', 'ringrpc-server')
    >>> crate_of("??:0") is None
    True
    """
    if match := REGISTRY_CRATE.search(path):
        return match.group(1)
    if STD_CRATE.search(path):
        return "std"
    for directory, crate in WORKSPACE:
        if directory in path:
            return crate
    return None


def crate_of_function(name):
    """A function's crate from its name (`serde_json::de::...`, `<serde_json::... as ...>`), for
    code with no line information; a name with no path is C code (glibc's `memcpy`).

    >>> crate_of_function("<serde_json::read::SliceRead as serde_json::read::Read>::parse_str")
    'serde_json'
    >>> crate_of_function("core::str::converts::from_utf8"), crate_of_function("__memcpy_avx_unaligned_erms")
    ('std', 'C')
    """
    match = re.match(r"<?&?(?:mut )?([A-Za-z_][A-Za-z0-9_]*)::", name)
    if not match:
        return "C"
    crate = match.group(1)
    return "std" if crate in ("core", "alloc", "std") else crate


def function_objects(dump):
    """{function: the object file its code is in} (the dump's `ob=` lines)."""
    objects = {}
    current = None
    with open(dump, errors="replace") as lines:
        for line in lines:
            if line.startswith("ob="):
                current = line[3:].strip()
            elif line.startswith("fn="):
                objects[line[3:].strip()] = current
    return objects


def costs_by_crate(costs, binary, dump):
    """{crate: self cost}: each instruction counted for its innermost non-std inline frame; code
    in other objects (glibc, the loader) as "C"."""
    by_crate = collections.Counter()
    objects = function_objects(dump)
    in_binary = lambda name: os.path.realpath(objects.get(name) or "") == os.path.realpath(binary)
    # Addresses are offsets in their own object: only the binary's are looked up, in one
    # addr2line run for the whole dump (one per function took minutes).
    chains = inline_chains(
        binary,
        sorted({a for name, by_address in costs.items() if in_binary(name) for a in by_address}),
        full_paths=True,
    )
    for name, by_address in costs.items():
        if not in_binary(name):
            by_crate["C"] += sum(by_address.values())
            continue
        for address in by_address:
            crates = [crate_of(frame) for frame in chains.get(address, [])]
            known = [crate for crate in crates if crate]
            inner = [crate for crate in known if crate != "std"]
            crate = inner[-1] if inner else (known[-1] if known else crate_of_function(name))
            by_crate[crate] += by_address[address]
    return by_crate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump")
    parser.add_argument("--requests", type=int, required=True, help="requests in the batch")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--function", help="break this function down by source line")
    parser.add_argument("--binary", help="the profiled binary (with --function, --by-crate)")
    parser.add_argument("--by-crate", action="store_true", help="self cost by crate")
    parser.add_argument("--depth", type=int, default=2, help="inline frames per line (--function)")
    args = parser.parse_args()
    costs = self_costs(args.dump)
    total = sum(sum(by_address.values()) for by_address in costs.values())
    per_request = lambda cost: cost / args.requests
    if args.by_crate:
        if not args.binary:
            parser.error("--by-crate needs --binary")
        print(f"{per_request(total):9.1f}  total")
        for crate, cost in costs_by_crate(costs, args.binary, args.dump).most_common(args.top):
            print(f"{per_request(cost):9.1f}  {crate}")
        return
    if not args.function:
        print(f"{per_request(total):9.1f}  total")
        by_function = {name: sum(c.values()) for name, c in costs.items()}
        for name, cost in sorted(by_function.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"{per_request(cost):9.1f}  {name}")
        return
    if not args.binary:
        parser.error("--function needs --binary")
    if args.function not in costs:
        sys.exit(f"no function named {args.function!r} in {args.dump}")
    by_address = costs[args.function]
    chains = inline_chains(args.binary, sorted(by_address))
    by_line = collections.Counter()
    for address, cost in by_address.items():
        frames = chains.get(address) or ["?"]
        by_line[" < ".join(frames[: args.depth])] += cost
    print(f"{per_request(sum(by_address.values())):9.1f}  {args.function}")
    for where, cost in by_line.most_common(args.top):
        print(f"{per_request(cost):9.1f}  {where}")


if __name__ == "__main__":
    main()
