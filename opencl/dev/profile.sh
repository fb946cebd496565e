#!/usr/bin/env bash
# Profiles the fused OpenCL kernel with Nsight Compute on the device machine (ncu does not see OpenCL
# launches, so the PTX NVIDIA's OpenCL compiled is run through the CUDA driver by opencl/dev/ptxrun.c).
#
#   source .device-carry/env.sh; EB=build/device/tools/edgebench/edgebench opencl/dev/profile.sh TILES[@OPTS]...
#
# TILES is an EDGEATTN_OPENCL_TILES prefill entry (pf=BMxTMxBNxTN[xPM], or pfh=... for the F16-Q kernel);
# OPTS are EDGEATTN_OPENCL_OPTIONS with + for spaces (without OPTS the NVIDIA class options apply). Per
# entry: the time of prefill N 4096 H 32 D 128 f16 through the CUDA driver, ptxas -v, and (N 2048) ncu's
# pipe use, shared-memory wavefronts, warp stalls and occupancy.
# Writes $OUT/profile.txt.
set -uo pipefail
OUT=${OUT:-/tmp/ea-out}
EB=${EB:-build/device/tools/edgebench/edgebench}
W=/tmp/ea-prof
mkdir -p "$OUT" "$W"
export PATH=/usr/local/cuda/bin:$PATH
NCU=$(command -v ncu || ls /usr/local/cuda*/nsight-compute*/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
gcc -O2 -I. -Iinclude -I/usr/local/cuda/include $(pkg-config --cflags OpenCL 2>/dev/null) opencl/dev/ptxrun.c -o "$W/ptxrun" -L/usr/local/cuda/lib64/stubs -lcuda -lm || exit 1
log=$OUT/profile.txt
echo "ncu: ${NCU:-not found}" > "$log"
for ent in "$@"; do
    tiles=${ent%%@*}; opts=; [[ $ent == *@* ]] && opts=${ent#*@}; opts=${opts//+/ }
    kern=ea_flash_${tiles%%=*}; spec=${tiles#*=}; IFS=x read -r bm tm bn tn pm <<< "$spec"; tn=${tn:-4}
    nt=$(( (bm / tm) * (bn / tn) ))
    rm -rf "$W/cache" "$W/ptx"; mkdir -p "$W/cache"
    EDGEATTN_OPENCL_DEVICE=nvidia EDGEATTN_OPENCL_TILES=$tiles EDGEATTN_OPENCL_OPTIONS=$opts "$EB" --backend opencl \
        --reps 1 --warmup 0 --no-ceiling --no-ref --kernel-cache "$W/cache" \
        --case "prefill:H=32,N=1024,D=128,q=f16,kv=f16,out=f16,name=pf" > "$W/eb.log" 2>&1
    python3 opencl/dev/cache2ptx.py "$W/cache" "$W/ptx" > /dev/null
    # NVIDIA's OpenCL adds %envreg0..2 (the group offset its runtime sets) to %ctaid: 0 for a CUDA launch
    ptx=$W/ptx/flash-d128-cuda.ptx
    sed -E 's/%envreg[0-9]+/0/g' "$W/ptx/flash-d128.ptx" > "$ptx"
    # the register cap: the one in OPTS, else NVIDIA's class default (opencl/ocl_backend.c)
    maxreg=128; [[ -n $opts ]] && maxreg=; [[ $opts =~ maxrregcount=([0-9]+) ]] && maxreg=${BASH_REMATCH[1]}
    export PTXRUN_MAXREG=$maxreg; [[ -z $maxreg ]] && unset PTXRUN_MAXREG
    {
        echo "==== $tiles $opts (BM $bm, NT $nt; $(basename "$ptx"))"
        ptxas -arch=sm_90 -v ${maxreg:+--maxrregcount=$maxreg} -o /dev/null "$ptx" 2>&1 | grep -A2 "for $kern\$\|for '$kern'" |
            grep -E "registers|stack"
        "$W/ptxrun" "$ptx" "$kern" "$bm" "$nt" 4096 32 128
        if [[ -n $NCU ]]; then
            st=smsp__average_warps_issue_stalled
            m=sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active
            m=$m,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum
            m=$m,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,smsp__inst_executed_op_shared_ld.sum
            m=$m,l1tex__data_pipe_lsu_wavefronts_mem_shared.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum
            m=$m,sm__warps_active.avg.per_cycle_active,smsp__issue_active.avg.pct_of_peak_sustained_active
            for r in barrier short_scoreboard long_scoreboard mio_throttle math_pipe_throttle wait not_selected selected \
                no_instruction lg_throttle dispatch_stall branch_resolving imc_miss misc; do
                m=$m,${st}_${r}_per_issue_active.ratio
            done
            timeout 240 "$NCU" --launch-skip 2 --launch-count 1 --section Occupancy --metrics "$m" \
                "$W/ptxrun" "$ptx" "$kern" "$bm" "$nt" 2048 32 128 2>&1 |
                grep -vE '^==PROF==|^\s*$|^    -+' | grep -E 'smsp__|sm__|l1tex__|Theoretical|Achieved|Block Limit' | cut -c1-150
        fi
    } >> "$log" 2>&1
done
cat "$log"
