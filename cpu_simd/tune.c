#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_simd/tune.h"
#include "cpu_simd/ukernel.h"

/* Measured with edgebench on the machines named; add a row when a tier or board shows a win. */
static const struct {
    uint32_t needs; /* all of these features */
    ea_cpu_tiles tiles;
} table[] = {
    {EDGEATTN_CPU_AVX512, {256, 128}},  /* Xeon (Emerald Rapids class), 2 cores: rb 128 +7-10% over 64 */
    {EDGEATTN_CPU_AVX2, {256, 128}},
    {EDGEATTN_CPU_NEON_FP16, {128, 64}},
    {EDGEATTN_CPU_NEON, {128, 64}},
    {0, {128, 32}},                     /* scalar */
};

int ea_cpu_tiles_for(uint32_t features, const char *env, ea_cpu_tiles *out)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if ((features & table[i].needs) == table[i].needs) {
            *out = table[i].tiles;
            break;
        }
    if (!env || !*env)
        return 0;
    int kb = out->kb, rb = out->rb;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", env);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int v;
        if (sscanf(tok, "kb=%d", &v) == 1)
            kb = v;
        else if (sscanf(tok, "rb=%d", &v) == 1)
            rb = v;
        else
            return -1;
    }
    if (kb < 16 || kb > EA_KB_MAX || kb % 16 || rb < EA_MR || rb > 1024 || rb % EA_MR)
        return -1;
    out->kb = kb;
    out->rb = rb;
    return 0;
}
