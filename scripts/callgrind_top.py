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

callgrind_annotate gives inclusive costs and per-file listings; this gives the two views that
tell a per-request cost apart in an LTO build, where most of the work is inlined into a few
functions."""

import argparse
import collections
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


def inline_chains(binary, addresses):
    """{address: [source line of each inline frame, outermost first]} from addr2line."""
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
            where = out[i + 1].split("/")[-1].split(" ")[0]
            chains[current].append(where)
            i += 2
        else:
            i += 1
    return {a: list(reversed(frames)) for a, frames in chains.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump")
    parser.add_argument("--requests", type=int, required=True, help="requests in the batch")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--function", help="break this function down by source line")
    parser.add_argument("--binary", help="the profiled binary (with --function)")
    parser.add_argument("--depth", type=int, default=2, help="inline frames per line (--function)")
    args = parser.parse_args()
    costs = self_costs(args.dump)
    total = sum(sum(by_address.values()) for by_address in costs.values())
    per_request = lambda cost: cost / args.requests
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
