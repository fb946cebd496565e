#!/bin/bash
# One device call: build, resource report, SASS summary, checks, sanitizers, timings, peers.
# usage (repo root, on the device machine): bash cuda/dev/device_run.sh [quick]
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
ARCH="-gencode arch=compute_90,code=sm_90"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
nvcc -std=c++17 -O3 $ARCH -Xptxas -v -cubin -o /tmp/k.cubin cuda/kernels_all.cu 2> /tmp/ptxas.txt || { cat /tmp/ptxas.txt; exit 1; }
python3 - <<'PY' > $OUT/ptxas.txt
import re
name=None
for l in open('/tmp/ptxas.txt'):
    m=re.search(r"Compiling entry function '(\w+)'",l)
    if m: name=m.group(1)
    m=re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads',l)
    if m: st=m.groups()
    m=re.search(r'Used (\d+) registers',l)
    if m and name: print(f"{name:28s} regs {m.group(1):>3s} stack {st[0]} spill {st[1]}/{st[2]}"); name=None
PY
cuobjdump -sass /tmp/k.cubin > /tmp/sass.txt
python3 - <<'PY' > $OUT/sass.txt
import re
cur=None; cnt={}
for line in open('/tmp/sass.txt'):
    m=re.search(r'Function : (\S+)',line)
    if m: cur=m.group(1); cnt[cur]={}; continue
    if cur:
        for op in ('HMMA','LDSM','LDGSTS','LDL','STL','MUFU.EX2','BAR.SYNC','LDG.E.128','LDS','STS'):
            if re.search(r'\b'+re.escape(op)+r'\b',line): cnt[cur][op]=cnt[cur].get(op,0)+1
for k,v in sorted(cnt.items()): print(k, ' '.join(f'{a}={b}' for a,b in sorted(v.items())))
PY
cat $OUT/sass.txt
nvcc -std=c++17 -O3 $ARCH -cubin -o /tmp/kv.cubin cuda/dev/variants.cu || exit 1
nvcc -std=c++17 -O3 $ARCH -I. -o /tmp/harness cuda/dev/harness.cu cuda/launch.c -lcuda || exit 1
/tmp/harness /tmp/k.cubin check 2>&1 | tee $OUT/check.txt
/tmp/harness /tmp/kv.cubin dec 2>&1 | grep -v "^  kernel" > $OUT/dec.txt; grep -E "FAIL|checks:|^bench decode" $OUT/dec.txt
if [ "$1" != "quick" ]; then
  compute-sanitizer --tool memcheck /tmp/harness /tmp/k.cubin small > /tmp/memcheck.txt 2>&1
  compute-sanitizer --tool racecheck /tmp/harness /tmp/k.cubin small > /tmp/racecheck.txt 2>&1
  (grep -v "^ok" /tmp/memcheck.txt | head -60; grep -v "^ok" /tmp/racecheck.txt | head -40) | tee $OUT/sanitizer.txt
fi
if [ "$1" != "quick" ]; then
  timeout 120 ncu --clock-control none -k regex:"ea_attn_mma_f16_d128_plain|ea_decode_mma_f16_d128" -c 2 --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis /tmp/harness /tmp/k.cubin one > /tmp/ncu.txt 2>&1
  grep -E "ea_|Throughput|Stall|Issued|Eligible|Active Warps|Warp Cycles|Bandwidth|Duration|Pipe|Bank" /tmp/ncu.txt | head -80 > $OUT/ncu.txt
fi
/tmp/harness /tmp/kv.cubin bench 2>&1 | grep -v "^  kernel" | tee $OUT/bench.txt
if python3 -c 'import torch' 2>/dev/null; then PYTHONUNBUFFERED=1 python3 tools/peers/torch_sdpa.py 2>&1 | tee $OUT/peers.txt; fi
echo "=== summary"; grep -c "^ok" $OUT/check.txt; grep -E "FAIL|UNSUPP|checks:" $OUT/check.txt $OUT/dec.txt | head -30; grep ERROR $OUT/sanitizer.txt | head
