/*
 * pack.c - a model's weights copied once, at load, into the layout the active
 * instruction set's kernels read fastest (kernels.h: pack_bytes, pack,
 * mm_packed), for example 16 rows' blocks interleaved so one register load
 * feeds sixteen rows. Only whole groups of 16 rows are packed; the rows
 * after the last whole group, and every other use of a weight (embedding
 * lookups, saving, quantizing), read the original bytes.
 *
 * When the originals are mapped from the file, the pages of the packed rows
 * are given back to the kernel afterwards (they are read again from the
 * file if ever needed), so a packed model costs about the memory of one
 * copy.
 */
#define _DEFAULT_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model/model.h"
#include "quant/dtype.h"

#define PACK_ALIGN 64

static void release_pages(const strix_model *m, const void *p, size_t n)
{
    if (!m->map.mapped || n == 0)
        return;
    const uintptr_t lo = (uintptr_t)m->map.data, hi = lo + m->map.size;
    uintptr_t a = (uintptr_t)p, b = a + n;
    if (a < lo || b > hi)
        return; /* not from the mapping (converted at load) */
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    a = (a + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    b = b / (uintptr_t)page * (uintptr_t)page;
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED); /* advice only: failure is harmless */
}

/* PEER's key and expert tables are read a row at a time (runtime/ffn_peer.c),
 * never by a matrix product: a packed copy would only cost memory. */
static int read_by_row(const strix_model *m, const struct tensor *t)
{
    for (int il = 0; m->hp.ffn_kind == FFN_PEER && il < m->hp.n_layer; il++) {
        const struct layer *L = &m->layers[il];
        if (t == &L->peer_keys || t == &L->peer_down || t == &L->peer_up)
            return 1;
    }
    return 0;
}

/* The bytes of tensor i's packed copy, 0 when it is not packed. */
static size_t pack_size(const strix_model *m, int i, const struct kern_isa *isa)
{
    const struct tensor *t = m->all[i];
    if (!t || !t->data || t->n_dims != 2 || t->type >= 64 || !isa->pack[t->type] || t->ne[1] < 16 ||
        t->ne[0] > INT32_MAX || t->ne[1] > INT32_MAX || !model_weight_in_stage(m, i) ||
        read_by_row(m, t))
        return 0; /* (another stage's weights are never read: their pages stay out) */
    return isa->pack_bytes[t->type]((int)t->ne[1], (int)t->ne[0]);
}

/* Float weights (F32, F16, BF16) have no packed layout: the kernels read
 * them as stored. Those read from the file's mapping are copied once into
 * memory offered to huge pages, and the mapping's pages given back, for the
 * reason the packed copies are (util_malloc_huge): a decoding step streams
 * every weight, and on a virtual machine a stream over 4 KiB pages ran at a
 * third of the speed, varying from one process to the next. The bytes are
 * the same, so nothing that reads data can tell. Weights below 2 MiB, and
 * another stage's, stay in the mapping. */
static void copy_floats(strix_model *m)
{
    const uintptr_t lo = (uintptr_t)m->map.data, hi = lo + m->map.size;
    for (int i = 0; i < m->n_all; i++) {
        struct tensor *t = m->all[i];
        if (!m->map.mapped || !t || !t->data || t->packed || t->data_mem || t->n_dims != 2 ||
            (t->type != DTYPE_F32 && t->type != DTYPE_F16 && t->type != DTYPE_BF16) ||
            t->nbytes < ((size_t)2 << 20) || !model_weight_in_stage(m, i) || read_by_row(m, t))
            continue;
        const uintptr_t a = (uintptr_t)t->data;
        if (a < lo || a + t->nbytes > hi)
            continue; /* converted at load: already in memory of our own */
        void *copy = util_malloc_huge(t->nbytes);
        if (!copy)
            continue; /* the mapping still works */
        util_copy_parallel(copy, t->data, t->nbytes);
        release_pages(m, t->data, t->nbytes);
        t->data = copy;
        t->data_mem = copy;
    }
}

/* All the copies go into one allocation offered to huge pages as a whole: a
 * small model's tensors are each far below a huge page, and on some systems
 * every 4 KiB page touched costs microseconds at start-up. The tensor whose
 * copy starts it owns it (packed_mem); if it cannot be had, each copy gets
 * its own. */
void model_pack(strix_model *m)
{
    kern_init();
    const struct kern_isa *isa = kern_isa_active();
    size_t total = 0;
    for (int i = 0; i < m->n_all; i++) {
        const size_t bytes = pack_size(m, i, isa);
        total += bytes ? bytes + PACK_ALIGN : 0;
    }
    uint8_t *const arena = total ? util_malloc_huge(total) : NULL;
    uint8_t *next = arena;
    for (int i = 0; i < m->n_all; i++) {
        const size_t bytes = pack_size(m, i, isa);
        if (bytes == 0)
            continue;
        struct tensor *t = m->all[i];
        const int rows = (int)t->ne[1], cols = (int)t->ne[0];
        uint8_t *mem = next;
        if (arena)
            next += bytes + PACK_ALIGN;
        else if (!(mem = util_malloc_huge(bytes + PACK_ALIGN)))
            continue; /* unpacked still works */
        uint8_t *dst = mem + (PACK_ALIGN - (uintptr_t)mem % PACK_ALIGN) % PACK_ALIGN;
        isa->pack[t->type](t->data, t->row_bytes, rows, cols, dst);
        t->packed = dst;
        t->packed_stride = bytes / (size_t)(rows / 16);
        t->packed_isa = isa;
        t->packed_mem = !arena || mem == arena ? mem : NULL;
        release_pages(m, t->data, (size_t)(rows / 16 * 16) * t->row_bytes);
    }
    copy_floats(m);
    if (m->tied_output)
        m->output = m->tok_embd;
}

void model_unpack(strix_model *m)
{
    for (int i = 0; m->all && i < m->n_all; i++) {
        struct tensor *t = m->all[i];
        if (!t)
            continue; /* a load that failed half way */
        util_free(t->packed_mem);
        t->packed_mem = NULL;
        t->packed = NULL;
        t->packed_isa = NULL;
    }
    m->output.packed = NULL;
}
