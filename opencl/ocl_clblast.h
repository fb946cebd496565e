/* CLBlast through dlopen (libclblast.so.1), C API declared here: only SGEMM with a caller-owned
 * temporary buffer, so a GEMM allocates nothing on the device. */
#ifndef EDGEATTN_OPENCL_OCL_CLBLAST_H
#define EDGEATTN_OPENCL_OCL_CLBLAST_H

#include "opencl/ocl_loader.h"

enum { EA_BLAST_ROW_MAJOR = 101, EA_BLAST_NO_TRANS = 111, EA_BLAST_TRANS = 112 };

typedef int (*ea_blast_sgemm_tmp_fn)(int layout, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                                     cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta,
                                     cl_mem c, size_t c_off, size_t ldc, cl_command_queue *queue, cl_event *event,
                                     cl_mem temp);
typedef int (*ea_blast_tmp_size_fn)(int layout, int ta, int tb, size_t m, size_t n, size_t k, size_t a_off,
                                    size_t lda, size_t b_off, size_t ldb, size_t c_off, size_t ldc,
                                    cl_command_queue *queue, size_t *bytes);

typedef struct ea_clblast {
    void *lib;
    ea_blast_sgemm_tmp_fn sgemm;
    ea_blast_tmp_size_fn tmp_size;
} ea_clblast;

bool ea_clblast_load(ea_clblast *b, char *why, size_t whylen);
void ea_clblast_unload(ea_clblast *b);

#endif
