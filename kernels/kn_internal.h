/* kn_internal — the kn_ctx layout, shared by the kernel files only. */
#ifndef KN_INTERNAL_H
#define KN_INTERNAL_H

struct kn_ctx {
    int cuda; /* 1: run the CUDA implementations */
    int gpus;
    char reason[256];
};

#endif
