/*
 * speculative.h - internal hooks of speculative.c for its tests: a fault
 * that replaces the correct residual by a wrong one, so the statistical test
 * can show that it catches one. Not part of the API.
 */
#ifndef STRIX_SPECULATIVE_H
#define STRIX_SPECULATIVE_H

enum speculative_fault {
    SPECULATIVE_FAULT_NONE = 0,
    SPECULATIVE_FAULT_RESIDUAL_P = 1,    /* residual p instead of max(0, p - q) */
    SPECULATIVE_FAULT_RESIDUAL_TOPK = 2, /* max(0, p - q) over the draft's 8 likeliest only */
};
/* Process-wide; tests set it around one call and restore NONE. */
void speculative_set_fault(int fault);

#endif /* STRIX_SPECULATIVE_H */
