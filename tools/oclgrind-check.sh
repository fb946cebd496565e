#!/usr/bin/env bash
# Runs every kernel of the OpenCL backend under Oclgrind, a simulator that checks each memory access
# of each work-item (as compute-sanitizer does for the CUDA kernels): out-of-bounds reads and writes,
# data races in local and global memory, barrier divergence, invalid API use.
#
#   tools/oclgrind-check.sh [BUILD_DIR [CASES]]
#     BUILD_DIR  a native build with the OpenCL backend (default build/release; configured with
#                -Dcuda=disabled and built when it does not exist)
#     CASES      comma-separated substrings of case names: run only those (no coverage check)
#
# tools/oclgrind-check.c (compiled here against BUILD_DIR's static library) drives the cases: small
# odd shapes, every tensor in a cl_mem of exactly its size (an access past a tensor leaves its
# buffer), each result checked against the double reference. Oclgrind is registered through its ICD
# (a private OCL_ICD_VENDORS folder, so it is the only platform), not through the `oclgrind` wrapper
# command, which crashes with a library that dlopens libOpenCL. Its --uninitialized check stays off:
# it aborts on LLVM's `freeze` instruction.
#
# Fails on: any line Oclgrind writes to stderr other than the compiler's "N warnings generated."
# (every report), a result off the reference, a case that did not launch the kernels it names, or a
# kernel of opencl/*.cl (flash kernels: for every head-dim class) that no case launched. Kernels
# launched are read from Oclgrind's instruction counter (OCLGRIND_INST_COUNTS), which names each.
set -euo pipefail

cd "$(dirname "$0")/.."
build=${1:-build/release}
filter=${2:-}
t0=$SECONDS

icd=$(dpkg -L oclgrind 2>/dev/null | grep '/liboclgrind-rt-icd\.so$' | head -n 1 || true)
if [[ -z "$icd" || ! -f "$icd" ]]; then
    echo "oclgrind-check: liboclgrind-rt-icd.so not found: install oclgrind (tools/install-deps.sh)" >&2
    exit 1
fi

if [[ ! -f "$build/build.ninja" ]]; then
    meson setup "$build" --buildtype=release -Dcuda=disabled
fi
ninja -C "$build"
if ! ar t "$build/libedgeattn.a" | grep -q '^opencl_ocl_backend\.c\.o$'; then
    echo "oclgrind-check: $build has no OpenCL backend (OpenCL headers missing at configure?)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/oclgrind-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# compiled programs are kept in the build folder (keyed by the sources, options and Oclgrind's
# version): a run after no kernel change skips the simulator's compiler (about a third of the time)
cache=$build/oclgrind-kernel-cache
mkdir -p "$tmp/vendors" "$cache"
echo "$icd" >"$tmp/vendors/oclgrind.icd"
${CC:-cc} -std=c11 -O1 -g -Wall -Wextra -I. -Iinclude tools/oclgrind-check.c "$build/libedgeattn.a" \
    -lOpenCL -lm -ldl -pthread -o "$tmp/cases"

# the simulator's settings; nothing of the caller's environment that would weaken or move its reports
unset OCLGRIND_QUICK OCLGRIND_LOG OCLGRIND_PLUGINS OCLGRIND_INTERACTIVE OCLGRIND_UNINITIALIZED \
      OCLGRIND_BUILD_OPTIONS OCLGRIND_COMPUTE_UNITS
unset EDGEATTN_OPENCL_TILES EDGEATTN_OPENCL_OPTIONS EDGEATTN_OPENCL_CLASS EDGEATTN_OPENCL_LOCAL_MEM \
      EDGEATTN_OPENCL_PATH EDGEATTN_BACKEND
export OCL_ICD_VENDORS=$tmp/vendors EDGEATTN_OPENCL_DEVICE=Oclgrind
# One simulator thread: the instruction counter is not thread-safe (with two threads it corrupts the
# heap, found at exit as "corrupted double-linked list" in most runs); the time is about the same.
export OCLGRIND_DATA_RACES=1 OCLGRIND_CHECK_API=1 OCLGRIND_INST_COUNTS=1 OCLGRIND_NUM_THREADS=1
# Oclgrind counts the local arrays of all three flash kernels of a program against each launch (one
# kernel takes at most 72 KiB: PoCL's table at head dim 256, planned as on PoCL's 512 KiB); 256
# work-items at most per work-group.
export OCLGRIND_LOCAL_MEM_SIZE=$((1 << 20)) OCLGRIND_MAX_WGSIZE=1024

echo "oclgrind-check: $(oclgrind --version 2>/dev/null | grep -m 1 -i oclgrind || echo Oclgrind), $icd, build $build"
set +e
"$tmp/cases" "$cache" ${filter:+"$filter"} >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e

set +e
python3 - "$tmp/out" "$tmp/err" "$rc" "$filter" <<'EOF'
import re, sys

out_path, err_path, rc, filt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

# the kernels the backend has: __kernel functions of util.cl, the flash kernel names of ocl_backend.c
# for every head-dim class it builds
util = open("opencl/util.cl").read()
backend = open("opencl/ocl_backend.c").read()
util_k = re.findall(r"__kernel\b[^;{]*?\bvoid\s+(\w+)\s*\(", util)
m_names = re.search(r'kname\[3\]\s*=\s*\{([^}]*)\}', backend)
m_dims = re.search(r'dims\[EA_OCL_NVAR\]\s*=\s*\{([^}]*)\}', backend)
if not util_k or not m_names or not m_dims:
    sys.exit("oclgrind-check: cannot read the kernel list from opencl/util.cl and opencl/ocl_backend.c "
             "(kname[3], dims[EA_OCL_NVAR]): update tools/oclgrind-check.sh")
flash = re.findall(r'"(\w+)"', m_names.group(1))
dims = [int(x) for x in re.findall(r"\d+", m_dims.group(1))]
required = set(util_k) | {f"{k}@{d}" for k in flash for d in dims}

# stdout: markers and the instruction counter's "Instructions executed for kernel 'X':"
cases, order, cur = {}, [], None
for line in open(out_path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("@@case "):
        parts = line.split()
        cur = parts[1]
        order.append(cur)
        cases[cur] = {"expect": parts[2:], "ran": [], "result": None, "why": "", "reports": []}
    elif line.startswith("@@setup "):
        cur = None
    elif line.startswith("@@result "):
        parts = line.split(" ", 3)
        cases[parts[1]]["result"] = parts[2]
        cases[parts[1]]["why"] = parts[3] if len(parts) > 3 else ""
    else:
        m = re.match(r"Instructions executed for kernel '(\w+)'", line)
        if m and cur:
            cases[cur]["ran"].append(m.group(1))

# stderr: everything but the markers and the compiler's warning count is a report; lines outside a
# case (context creation and program builds, exit) are reports too
benign = re.compile(r"^\d+ warnings? generated\.$")
outside, where, label = [], None, "start"
for line in open(err_path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("@@case "):
        where = cases.get(line.split()[1], {}).get("reports")
        continue
    if line.startswith(("@@setup ", "@@done")):
        where, label = None, (line[8:] + ": create" if line.startswith("@@setup ") else "exit")
        continue
    if benign.match(line.strip()):
        continue
    if where is not None:
        where.append(line)
    else:
        outside.append(f"[{label}] {line}")

def headlines(lines):
    return [l for l in lines if l.strip() and not l.startswith(("\t", " "))]

failed, covered = 0, set()
for name in order:
    c = cases[name]
    ran = sorted(set(c["ran"]))
    missing = [e for e in c["expect"] if e.split("@")[0] not in c["ran"]]
    heads = headlines(c["reports"])
    ok = c["result"] == "ok" and not missing and not heads
    failed += not ok
    if c["result"] == "ok" and not missing:
        covered |= set(c["expect"])
    counts = ", ".join(f"{k} x{c['ran'].count(k)}" if c["ran"].count(k) > 1 else k for k in ran) or "no kernel"
    print(f"{'ok  ' if ok else 'FAIL'}  {name:<38} {counts}  [{c['why'] or c['result'] or 'no result'}]")
    if missing:
        print(f"      expected but not launched: {' '.join(missing)}")
    if heads:
        print(f"      {len(heads)} Oclgrind report(s):")
        for l in c["reports"][:60]:
            print("      | " + l)

if outside:
    failed += 1
    print("FAIL  output outside the cases:")
    for l in outside[:60]:
        print("      | " + l)

total = sum(len(headlines(c["reports"])) for c in cases.values()) + len(outside)
if total >= 1000:
    print(f"note: {total} reports; Oclgrind stops reporting after OCLGRIND_MAX_ERRORS (1000 by default): "
          "later cases may show none")

if rc not in (0, 1):
    failed += 1
    print(f"FAIL  the case driver exited with status {rc}")

if filt:
    print(f"(cases '{filt}' only: coverage not checked)")
else:
    gaps = sorted(required - covered)
    print(f"covered {len(required & covered)}/{len(required)} kernels: {' '.join(sorted(required & covered))}")
    if gaps:
        failed += 1
        print(f"FAIL  never launched (or only in failing cases): {' '.join(gaps)}")
sys.exit(1 if failed else 0)
EOF
status=$?
set -e
echo "oclgrind-check: $((SECONDS - t0)) s, $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
