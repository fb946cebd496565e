#!/usr/bin/env python3
"""Instruction mix per function of a `cuobjdump -sass` listing: how many FFMA, LDS, LDG, local-memory
(LDL/STL: spills), barriers and so on each kernel has, to see what a kernel's inner loop spends its
issue slots on.   sass-mix.py FILE.sass"""
import collections
import re
import sys

WATCH = ["FFMA", "FMUL", "FADD", "FMNMX", "MUFU", "LDS", "STS", "LDG", "STG", "LDL", "STL", "BAR", "BRA",
         "IMAD", "IADD3", "LEA", "ISETP", "FSETP", "SHF", "LOP3", "MOV", "F2F", "HADD2", "PRMT", "I2F", "F2I"]


def main():
    func, counts = None, collections.OrderedDict()
    for line in open(sys.argv[1], errors="replace"):
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            func = m.group(1)
            counts[func] = collections.Counter()
            continue
        m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)(\.[A-Z0-9_.]+)?", line)
        if m and func:
            counts[func][m.group(1)] += 1
            counts[func]["_total"] += 1
    for f, c in counts.items():
        total = c.pop("_total", 0)
        watch = " ".join(f"{k}={c[k]}" for k in WATCH if c[k])
        rest = sum(v for k, v in c.items() if k not in WATCH)
        print(f"  {f}: {total} instructions; {watch}; other={rest}")


if __name__ == "__main__":
    main()
