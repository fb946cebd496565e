#!/usr/bin/env bash
# One device-machine call for both GPU backends (H100/H200; run from the repository root after
# `source .device-carry/env.sh`, with .device-carry carried: tools/device/prepare.sh fills it with
# cmocka and CLBlast; docs/GPU-MACHINE.md).
#
#   tools/device-check.sh [STEP...]     steps: build bench peers tests ocl sanitizer (default: all)
#
#   build      meson build in $BUILD (default /tmp/ea-dev) with CUDA (sm_$ARCHS, default 90) and OpenCL
#   bench      edgebench --backend cuda (the CUDA suite, ceilings measured in the same run)
#   peers      PyTorch SDPA peers (FlashAttention-2, cuDNN): tools/peers/torch_sdpa.py
#   tests      every suite on CUDA (AUTO picks it), CPU-only suites with the GPU hidden
#   ocl        OpenCL on NVIDIA's driver: test_opencl, shared suites forced to OpenCL, edgebench suite
#   sanitizer  compute-sanitizer memcheck + racecheck on test_cuda (short mode)
#   sparse     edgebench: the sparse pairs of issue 13 side by side in one run per backend of
#              $SPARSE_BACKENDS (default cuda opencl): block-sparse prefill N8192 H32 D128 at 10% of 64x64 and
#              128x64 blocks and Linformer k 256 (issue 14) against dense, decode after 1,000,000 tokens through 4 sinks + a ring of 4096 against a
#              plain cache of 4100, and top-k 2048 of 32768 (blocks of 64) against dense; F16 storage,
#              --check against the reference -> sparse-<backend>.txt; plus test_sparse with CUDA and OpenCL required
#   lowrank    issue 14: test_lowrank with CUDA required; edgebench Linformer k 256/128 N8192 against dense and
#              against the attention over 256 rows alone -> lowrank-cuda.txt; compute-sanitizer on small F16 cases
#              (lowrank and decsweep turn on EDGEATTN_CUDA_PREVIEW=all unless it is set: the pipelined projection
#              and the F32-Q decode, not yet run on a GPU when they were added)
#   decsweep   issue 12: CUDA decode N131072 (Nq 1, 4) for each EDGEATTN_CUDA_SPLITS of $SPLITS; OpenCL decode
#              N32768 Nq 1, 2, 4, 8 for each EDGEATTN_OPENCL_TILES of $DEC_TILES -> decsweep.txt
#   paged      edgebench: paged (pages of 16 and 64) against contiguous decode, B4 ragged, CUDA and OpenCL
#              (and OpenCL with each TILES[@OPTIONS] entry of $PAGED_TILES, as in the sweep step)
#   quickcheck compute-sanitizer memcheck + racecheck on edgebench --quick --backend cuda (every quick case's kernels)
#   tune       OpenCL edgebench --tune from the generic tile row (TUNE_SECONDS, default 240), then that
#              file, the generic row and the NVIDIA row timed side by side -> tune-ocl.txt, ocl.tune
#   sweep      OpenCL tile/option sweep: $SWEEP lists TILES[@OPTIONS] entries (EDGEATTN_OPENCL_TILES, and
#              EDGEATTN_OPENCL_OPTIONS with + for spaces) timed on the measured GPU shapes -> sweep.txt
#   ptx        NVIDIA OpenCL's compiled programs (PTX) for the default tiles, contiguous and paged, with ptxas -v (registers,
#              spills, stack) and the SASS instruction mix of each fused kernel -> ptx.tgz, ptx.txt
#
# Output: $OUT/summary.txt (also printed last), bench-cuda.txt, peers.txt, bench-ocl.txt and every log
# in $OUT/logs.tgz (the device tool returns at most 8 files).
set -uo pipefail
OUT=${OUT:-/tmp/ea-out}
B=${BUILD:-/tmp/ea-dev}
ARCHS=${ARCHS:-90}
L=/tmp/ea-logs
mkdir -p "$OUT" "$L"
export PATH=/usr/local/cuda/bin:$PATH
steps=("$@")
((${#steps[@]})) || steps=(build bench peers tests ocl sanitizer)
sum=$OUT/summary.txt
note() { echo "$*" | tee -a "$sum"; }
want() { local s; for s in "${steps[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }
t0=$SECONDS
note "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"

if want build; then
    { meson setup "$B" -Dbuildtype=release -Dnvcc_archs="$ARCHS" -Dcuda=enabled -Dopencl=enabled &&
        ninja -C "$B"; } > "$L/build.log" 2>&1 || { tail -30 "$L/build.log"; note "BUILD FAILED"; tar czf "$OUT/logs.tgz" -C "$L" .; exit 1; }
    note "build ok at $((SECONDS - t0)) s"
fi
EB=$B/tools/edgebench/edgebench

if want bench; then
    timeout 300 "$EB" --backend cuda --reps 15 --json "$L/bench-cuda.json" > "$OUT/bench-cuda.txt" 2>&1
    note "edgebench cuda: status $? at $((SECONDS - t0)) s"
fi
if want peers; then
    PYTHONUNBUFFERED=1 timeout 240 python3 tools/peers/torch_sdpa.py > "$OUT/peers.txt" 2>&1
    note "peers: status $? at $((SECONDS - t0)) s"
fi
if want tests; then
    EDGEATTN_TEST_REQUIRE_CUDA=1 meson test -C "$B" --no-rebuild --print-errorlogs --timeout-multiplier 3 \
        --no-suite opencl > "$L/test-gpu.log" 2>&1
    r=$?
    awk '/^Summary of Failures/ { exit } /^ *[0-9]+\/[0-9]+ / { print }' "$L/test-gpu.log" | grep -v " OK " | tee -a "$sum"
    grep -E "16K prefill|128K decode|ceilings:|parity over" "$B/meson-logs/testlog.txt" | sort -u | head -20 | tee -a "$sum"
    cp "$B/meson-logs/testlog.txt" "$L/testlog-gpu.txt"
    note "tests on CUDA: status $r at $((SECONDS - t0)) s"
    CUDA_VISIBLE_DEVICES= meson test -C "$B" --no-rebuild --print-errorlogs api noalloc > "$L/test-cpu.log" 2>&1
    note "api + noalloc with the GPU hidden: status $?"
fi
if want ocl; then
    export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
    EDGEATTN_TEST_REQUIRE_OPENCL=1 timeout 300 "$B/tests/opencl/test_opencl" > "$L/test-opencl.log" 2>&1
    note "test_opencl ($EDGEATTN_OPENCL_DEVICE): status $?"; grep -E '^\[  (PASSED|FAILED)' "$L/test-opencl.log" | tee -a "$sum"
    for s in parity bad_input numerics mix; do # (noalloc makes its own contexts: AUTO takes CUDA here)
        EDGEATTN_TEST_BACKEND=opencl timeout 300 "$B/tests/test_$s" > "$L/ocl-$s.log" 2>&1
        note "$s on OpenCL: status $?"; grep -E '^\[  FAILED' "$L/ocl-$s.log" | head -5 | tee -a "$sum"
    done
    timeout 300 "$EB" --backend opencl --reps 5 --json "$L/bench-ocl.json" > "$OUT/bench-ocl.txt" 2>&1
    note "edgebench opencl: status $? at $((SECONDS - t0)) s"
fi
if want sparse; then
    export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
    EDGEATTN_TEST_REQUIRE_OPENCL=1 EDGEATTN_TEST_REQUIRE_CUDA=1 timeout 600 "$B/tests/test_sparse" > "$L/test-sparse.log" 2>&1
    note "test_sparse (CPU tiers + CUDA + OpenCL $EDGEATTN_OPENCL_DEVICE): status $?"
    grep -E '^\[  (PASSED|FAILED)|^ERROR|block-sparse:|streaming:|top-k:' "$L/test-sparse.log" | head -8 | tee -a "$sum"
    f=q=f16,kv=f16,out=f16
    sp=(--case "prefill:H=32,KVH=32,N=8192,D=128,$f,name=pf-8k"
        --case "prefill:H=32,KVH=32,N=8192,D=128,$f,density=0.1,bq=64,name=pf-8k-sparse10"
        --case "prefill:H=32,KVH=32,N=8192,D=128,$f,density=0.1,bq=128,name=pf-8k-sparse10-q128"
        --case "decode:H=32,KVH=8,NKV=4100,D=128,$f,name=dec-4100"
        --case "decode:H=32,KVH=8,NKV=4100,D=128,$f,sinks=4,stream=1000000,name=dec-stream")
    tk=(--case "decode:H=32,KVH=8,NKV=32768,D=128,$f,name=dec-32k"
        --case "decode:H=32,KVH=8,NKV=32768,D=128,$f,topk=2048,sblk=64,name=dec-32k-topk2k")
    for be in ${SPARSE_BACKENDS:-cuda opencl}; do
        cs=("${sp[@]}" "${tk[@]}")
        [[ $be == cuda ]] && cs+=(--case "prefill:H=32,KVH=32,N=8192,D=128,$f,lowrank=256,name=pf-8k-lin256")
        timeout 500 "$EB" --backend $be --reps 15 --check --no-ceiling "${cs[@]}" > "$OUT/sparse-$be.txt" 2>&1
        note "sparse pairs on $be: status $?"; grep -E '^(pf|dec)|rror|fail' "$OUT/sparse-$be.txt" | tee -a "$sum"
    done
fi
# The paths not yet run on a GPU (EDGEATTN_CUDA_PREVIEW, cuda/backend_cuda.c) are on in the lowrank and decsweep
# steps unless the variable says otherwise (set it to none for the defaults)
if want lowrank || want decsweep; then export EDGEATTN_CUDA_PREVIEW=${EDGEATTN_CUDA_PREVIEW-all}; fi
if want lowrank; then # issue 14: Linformer on CUDA against dense, the attention over k rows alone, the suite, the sanitizers
    EDGEATTN_TEST_REQUIRE_CUDA=1 timeout 300 "$B/tests/test_lowrank" > "$L/test-lowrank.log" 2>&1
    note "test_lowrank (CUDA required): status $?"; grep -E '^\[  (PASSED|FAILED)' "$L/test-lowrank.log" | tee -a "$sum"
    f=q=f16,kv=f16,out=f16
    timeout 200 "$EB" --backend cuda --reps 15 --check --no-ceiling --case "prefill:H=32,KVH=32,N=8192,D=128,$f,name=pf-8k" \
        --case "prefill:H=32,KVH=32,N=8192,D=128,$f,lowrank=256,name=pf-8k-lin256" \
        --case "prefill:H=32,KVH=32,NQ=8192,NKV=256,D=128,$f,name=attn-8k-over-256" \
        --case "prefill:H=32,KVH=32,N=8192,D=64,$f,lowrank=256,name=pf-8k-lin256-d64" \
        --case "prefill:H=32,KVH=32,N=8192,D=128,$f,lowrank=128,name=pf-8k-lin128" > "$OUT/lowrank-cuda.txt" 2>&1
    note "lowrank pairs on cuda: status $?"; grep -E '^(pf|attn)|rror|fail' "$OUT/lowrank-cuda.txt" | tee -a "$sum"
    EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia} timeout 200 "$EB" --backend opencl --reps 5 --check --no-ceiling \
        --case "prefill:H=32,KVH=32,N=8192,D=128,$f,name=pf-8k" \
        --case "prefill:H=32,KVH=32,N=8192,D=128,$f,lowrank=256,name=pf-8k-lin256" > "$OUT/lowrank-opencl.txt" 2>&1
    note "lowrank pairs on opencl: status $?"; grep -E '^(pf|attn)|rror|fail' "$OUT/lowrank-opencl.txt" | tee -a "$sum"
    if command -v compute-sanitizer > /dev/null; then
        for tool in memcheck racecheck; do
            timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 20 "$EB" --backend cuda --reps 1 \
                --warmup 0 --no-ceiling --check --case "prefill:B=2,H=4,KVH=2,NQ=150,NKV=704,D=64,$f,lowrank=72,name=s1" \
                --case "prefill:B=1,H=2,KVH=1,NQ=77,NKV=1000,D=128,$f,lowrank=200,causal=0,name=s2" \
                --case "prefill:B=1,H=2,KVH=2,NQ=33,NKV=96,D=96,$f,lowrank=130,name=s3" > "$L/lowrank-$tool.log" 2>&1
            note "lowrank $tool: status $?"; grep -E "ERROR SUMMARY|^s[123] " "$L/lowrank-$tool.log" | tee -a "$sum"
        done
    fi
fi
if want decsweep; then # issue 12: CUDA split rules ($SPLITS) at N131072; OpenCL decode tiles ($DEC_TILES) for Nq 1..8
    f=q=f16,kv=f16,out=f16
    for sp in default ${SPLITS:-}; do
        [[ $sp == default ]] && unset EDGEATTN_CUDA_SPLITS || export EDGEATTN_CUDA_SPLITS=$sp
        timeout 60 "$EB" --backend cuda --reps 25 --no-ref --case "decode:H=32,KVH=8,NKV=131072,D=128,$f,name=dec-128k" \
            --case "decode:H=32,KVH=8,NKV=131072,D=128,NQ=4,$f,name=dec-128k-nq4" \
            --case "decode:H=32,KVH=8,NKV=131072,D=128,q=f32,kv=f16,out=f16,name=dec-128k-q32" \
            --case "decode:H=32,KVH=8,NKV=131072,D=128,NQ=4,q=f32,kv=f16,out=f16,name=dec-128k-q32-nq4" 2>&1 |
            grep -E '^dec|copy|rror' | sed "s/^/cuda $sp: /" | tee -a "$OUT/decsweep.txt" | tee -a "$sum"
    done
    unset EDGEATTN_CUDA_SPLITS
    EDGEATTN_CUDA_PREVIEW=none timeout 60 "$EB" --backend cuda --reps 10 --no-ref \
        --case "decode:H=32,KVH=8,NKV=131072,D=128,q=f32,kv=f16,out=f16,name=dec-128k-q32-simt" 2>&1 |
        grep -E '^dec|rror' | sed "s/^/cuda default: /" | tee -a "$OUT/decsweep.txt" | tee -a "$sum"
    export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
    for t in default ${DEC_TILES:-}; do
        [[ $t == default ]] && unset EDGEATTN_OPENCL_TILES || export EDGEATTN_OPENCL_TILES=$t
        cs=(); for nq in 1 2 4 8; do cs+=(--case "decode:H=32,KVH=8,NKV=32768,D=128,NQ=$nq,$f,name=ocl-32k-nq$nq"); done
        timeout 90 "$EB" --backend opencl --reps 15 --check "${cs[@]}" 2>&1 |
            grep -E '^ocl|copy|rror|fail' | sed "s/^/opencl $t: /" | tee -a "$OUT/decsweep.txt" | tee -a "$sum"
    done
    unset EDGEATTN_OPENCL_TILES
fi
if want sanitizer && command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck; do
        EDGEATTN_TEST_CUDA_SHORT=1 timeout 150 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 20 \
            "$B/tests/cuda/test_cuda" > "$L/sanitizer-$tool.log" 2>&1
        note "compute-sanitizer $tool: status $?; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$L/sanitizer-$tool.log" | tail -1)"
    done
    # the random call mix on CUDA (every kernel variant the mix reaches, state carried between calls)
    timeout 300 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 "$B/tests/test_mix" \
        > "$L/sanitizer-mix.log" 2>&1
    note "compute-sanitizer memcheck on test_mix: status $?; $(grep -E 'ERROR SUMMARY' "$L/sanitizer-mix.log" | tail -1)"
fi
if want paged; then # the paged cache beside the contiguous one: B4 ragged 512/3000/9000/16000, F16
    for be in cuda opencl; do
        [[ $be == opencl ]] && export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
        c="decode:B=4,H=32,KVH=8,NKV=16000,D=128,q=f16,kv=f16,out=f16,ragged=1"
        timeout 200 "$EB" --backend $be --reps 15 --no-ceiling --case "$c,name=rag" --case "$c,page=16,name=rag-p16" \
            --case "$c,page=64,name=rag-p64" --case "$c,name=rag-again" > "$OUT/paged-$be.txt" 2>&1
        note "paged vs contiguous on $be: status $?"; grep -E '^rag' "$OUT/paged-$be.txt" | tee -a "$sum"
    done
    # OpenCL tiles/options to try on both layouts: TILES[@OPTIONS] entries as in the sweep step
    for t in ${PAGED_TILES:-}; do
        tiles=${t%%@*}; opts=; [[ $t == *@* ]] && opts=${t#*@}; opts=${opts//+/ }
        EDGEATTN_OPENCL_TILES=$tiles EDGEATTN_OPENCL_OPTIONS=$opts timeout 100 "$EB" --backend opencl --reps 15 \
            --no-ceiling --no-ref --case "$c,name=rag" --case "$c,page=16,name=rag-p16" \
            --case "$c,page=64,name=rag-p64" 2>&1 | grep -E '^rag|rror|fail' | sed "s/^/$t: /" |
            tee -a "$OUT/paged-opencl.txt" | tee -a "$sum"
    done
fi
if want quickcheck && command -v compute-sanitizer > /dev/null; then # every kernel path of the quick suite
    for tool in memcheck racecheck; do
        timeout 200 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 20 "$EB" --backend cuda --quick \
            --reps 1 --no-ceiling > "$L/quick-$tool.log" 2>&1
        note "compute-sanitizer $tool on edgebench --quick (cuda): status $?"; grep -E "ERROR SUMMARY|rror" "$L/quick-$tool.log" | head -5 | tee -a "$sum"
    done
fi
if want tune; then # OpenCL: --tune from the generic tile row, against the hand-tuned NVIDIA row
    export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
    cs=(--case "prefill:H=32,N=4096,D=128,q=f16,kv=f16,out=f16,path=fused,name=pf-4k"
        --case "decode:H=32,KVH=8,NKV=32768,D=128,q=f16,kv=f16,out=f16,name=dec-32k")
    EDGEATTN_OPENCL_CLASS=other timeout $((${TUNE_SECONDS:-240} + 150)) "$EB" --backend opencl --tune "$OUT/ocl.tune" \
        --seconds "${TUNE_SECONDS:-240}" "${cs[@]}" > "$OUT/tune-ocl.txt" 2>&1
    note "tune (OpenCL, from the generic row): status $?"; tail -6 "$OUT/tune-ocl.txt" | tee -a "$sum"
    for run in nvidia-row tuned-from-generic generic-row; do
        env=(); [[ $run != nvidia-row ]] && env=(EDGEATTN_OPENCL_CLASS=other)
        [[ $run == tuned-from-generic ]] && env+=(EDGEATTN_TUNING_FILE=$OUT/ocl.tune)
        echo "---- $run" >> "$OUT/tune-ocl.txt"
        env "${env[@]}" timeout 120 "$EB" --backend opencl --reps 10 --no-ceiling "${cs[@]}" 2>&1 |
            grep -E '^(pf|dec)|rror' | tee -a "$OUT/tune-ocl.txt" | sed "s/^/$run: /" | tee -a "$sum"
    done
fi
if want sweep; then
    export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
    : > "$OUT/sweep.txt"
    # an entry is TILES[@OPTIONS], OPTIONS being EDGEATTN_OPENCL_OPTIONS with + for spaces
    for t in ${SWEEP:-pf=32x4x32x4x8 pf=64x4x16x2x8 pf=64x4x16x4x8 dec=8x1x64x4 dec=8x1x32x4}; do
        tiles=${t%%@*}; opts=; [[ $t == *@* ]] && opts=${t#*@}; opts=${opts//+/ }
        echo "---- EDGEATTN_OPENCL_TILES=$tiles EDGEATTN_OPENCL_OPTIONS=$opts" >> "$OUT/sweep.txt"
        EDGEATTN_OPENCL_TILES=$tiles EDGEATTN_OPENCL_OPTIONS=$opts timeout 60 "$EB" --backend opencl --reps 3 \
            --warmup 1 --no-ceiling --no-ref \
            --case "prefill:H=32,N=4096,D=128,q=f16,kv=f16,out=f16,path=fused,name=pf-4k" \
            --case "decode:H=32,KVH=8,NKV=32768,D=128,q=f16,kv=f16,out=f16,name=dec-32k" 2>&1 |
            grep -E '^(pf|dec)|rror|failed' >> "$OUT/sweep.txt"
    done
    note "sweep done at $((SECONDS - t0)) s"
fi
if want ptx; then
    export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
    P=/tmp/ea-ptx; rm -rf "$P"; mkdir -p "$P/cache"
    timeout 120 "$EB" --backend opencl --reps 1 --warmup 0 --no-ceiling --no-ref --kernel-cache "$P/cache" \
        --case "prefill:H=32,N=1024,D=128,q=f16,kv=f16,out=f16,path=fused,name=pf" \
        --case "decode:B=4,H=32,KVH=8,NKV=2000,D=128,q=f16,kv=f16,out=f16,ragged=1,page=16,name=paged" \
        > "$L/ptx-bench.log" 2>&1
    python3 opencl/dev/cache2ptx.py "$P/cache" "$P" > "$OUT/ptx.txt" 2>&1
    for f in "$P"/*.ptx; do
        echo "==== $(basename "$f")" >> "$OUT/ptx.txt"
        # NVIDIA's class options cap registers at 128 (opencl/ocl_backend.c); a sweep's options say their own
        mr=128; [[ -n ${EDGEATTN_OPENCL_OPTIONS:-} ]] && mr=
        [[ ${EDGEATTN_OPENCL_OPTIONS:-} =~ maxrregcount=([0-9]+) ]] && mr=${BASH_REMATCH[1]}
        ptxas -arch=sm_90 -v ${mr:+--maxrregcount=$mr} -o "${f%.ptx}.cubin" "$f" >> "$OUT/ptx.txt" 2>&1
        cuobjdump -sass "${f%.ptx}.cubin" > "${f%.ptx}.sass" 2>/dev/null
        python3 opencl/dev/sass-mix.py "${f%.ptx}.sass" >> "$OUT/ptx.txt" 2>&1
    done
    tar czf "$OUT/ptx.tgz" -C "$P" --exclude cache --exclude '*.cubin' .
    note "ptx done at $((SECONDS - t0)) s"
fi
# the text outputs go into logs.tgz as well: the device tool returns at most 8 files from $OUT, and a
# call with many steps writes more (ocl + paged + tune + ptx: 9, of which one was dropped)
cp "$OUT"/*.txt "$L"/ 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$L" .
note "== total $((SECONDS - t0)) s"
cat "$OUT/bench-cuda.txt" 2>/dev/null | tail -22
