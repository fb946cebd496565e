/* Where each part of the context's block lives (offsets from its base). */
#ifndef EDGEATTN_CORE_PLAN_H
#define EDGEATTN_CORE_PLAN_H

#include "backends/backend.h"
#include "core/ea_core.h"

typedef struct ea_layout {
    size_t ctx_off;
    size_t kv_k_off, kv_v_off, kv_total_off, kv_held_off;
    size_t kv_table_off, kv_ref_off, kv_free_off, kv_pmark_off; /* paged cache only */
    size_t kv_stats_off; /* quantised cache only */
    size_t kv_summ_off;  /* block summaries only */
    bool kv_on_device; /* k/v storage is the backend's (kv_k_off, kv_v_off unused) */
    size_t lens_off;   /* [max_batch] int32: the copy of a call's kv_lens / n_new */
    size_t ids_off;    /* [max_batch] int32: the copy of a call's seq_ids */
    size_t qlens_off;  /* [max_batch] int32: the copy of a decode's q_lens */
    size_t mark_off;   /* [max_batch] bytes, zero between calls: repeated seq ids */
    size_t backend_off, backend_bytes;
    size_t total;
} ea_layout;

/* Checks a resolved config, selects the backend and lays out the block. */
edgeattn_status ea_plan_layout(const edgeattn_config *cfg, const ea_backend_ops **backend, ea_layout *lay,
                               edgeattn_plan_info *info, char *msg);

#endif
