/*
 * The CPU backend's decode path for one query row per sequence (token-by-token generation): each
 * work item is (sequence, KV head, slice of the visible keys) and owns the query rows of every head
 * of that KV head's GQA group, so each K/V row is read once, in its storage dtype, for all of them.
 * See decode_small.c.
 */
#ifndef EDGEATTN_CPU_DECODE_SMALL_H
#define EDGEATTN_CPU_DECODE_SMALL_H

#include "cpu_simd/attn_cpu.h"

/* Sets the path's rate estimates (st's dec_* fields) at create. */
void ea_cpu_decode_small_init(ea_cpu_state *st);
/* Does this call take the path: decode, Nq == 1, GQA group <= EA_MR? */
bool ea_cpu_decode_small_fits(const ea_cpu_state *st, const ea_attn_call *c);
/* Runs a call that fits. */
edgeattn_status ea_cpu_decode_small(ea_cpu_state *st, const ea_attn_call *c);

#endif
