/* fuzz_pickle.c - libFuzzer target: the restricted unpickler on its own,
 * straight from memory. Pickles are read back to back from the input (as
 * the legacy PyTorch format does) until one fails or the input ends. Every
 * result is walked without recursion: strings must point into the input,
 * containers must be well formed, storages and tensors must agree with the
 * storage table, and any refusal must name the input. */
#include "io/pickle.h"
#include "fuzz_common.h"

#define WHAT "fuzz.pkl"
#define MAX_VISITS 50000 /* values checked per pickle (shared ones again each time) */

FZ_NOCOV static void check_bytes(const ge_pk_value *v, const uint8_t *lo, const uint8_t *hi,
                        const unsigned char *p, size_t n) {
    if (n && (p < lo || p > hi || n > (size_t)(hi - p))) fz_die("a string outside the input", NULL);
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += p[i];
    fz_sink = (float)acc;
    (void)v;
}

FZ_NOCOV static void walk(const ge_pickle *pk, const uint8_t *lo, const uint8_t *hi) {
    if (!pk->root) fz_die("no root value", NULL);
    if (pk->n_storages < 0 || (pk->n_storages && !pk->storages)) fz_die("bad storage table", NULL);
    for (int i = 0; i < pk->n_storages; i++) {
        const ge_pk_value *st = pk->storages[i];
        if (!st || st->kind != GE_PK_STORAGE || st->u.storage.index != i || st->u.storage.numel < 0)
            fz_die("a storage table entry is wrong", NULL);
        check_bytes(st, lo, hi, st->u.storage.key, st->u.storage.key_len);
    }
    static const ge_pk_value *stack[MAX_VISITS];
    size_t sn = 0, visits = 0;
    stack[sn++] = pk->root;
    while (sn && visits < MAX_VISITS) {
        const ge_pk_value *v = stack[--sn];
        visits++;
        if (!v) fz_die("a NULL value", NULL);
        switch (v->kind) {
        case GE_PK_STR:
        case GE_PK_BYTES:
        case GE_PK_BIGINT:
            check_bytes(v, lo, hi, v->u.s.p, v->u.s.n);
            break;
        case GE_PK_TUPLE:
        case GE_PK_LIST:
        case GE_PK_DICT:
            if (v->u.seq.n > v->u.seq.cap || (v->u.seq.n && !v->u.seq.v))
                fz_die("a container's count exceeds its capacity", NULL);
            if (v->kind == GE_PK_DICT && v->u.seq.n % 2) fz_die("a dict with an odd item count", NULL);
            for (size_t i = 0; i < v->u.seq.n && sn < MAX_VISITS; i++)
                stack[sn++] = v->u.seq.v[i];
            break;
        case GE_PK_TENSOR: {
            const ge_pk_value *st = v->u.tensor.storage;
            if (!st || st->kind != GE_PK_STORAGE || st->u.storage.index < 0 ||
                st->u.storage.index >= pk->n_storages || pk->storages[st->u.storage.index] != st)
                fz_die("a tensor without a known storage", NULL);
            if (v->u.tensor.ndim < 0 || v->u.tensor.ndim > 8 || v->u.tensor.offset < 0)
                fz_die("a tensor record out of range", NULL);
            for (int d = 0; d < v->u.tensor.ndim; d++)
                if (v->u.tensor.shape[d] < 0 || v->u.tensor.stride[d] < 0)
                    fz_die("a negative size or stride", NULL);
            break;
        }
        case GE_PK_STORAGE:
        case GE_PK_GLOBAL:
        case GE_PK_NONE:
        case GE_PK_BOOL:
        case GE_PK_INT:
        case GE_PK_FLOAT:
            break;
        default:
            fz_die("an unknown value kind", NULL);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t off = 0;
    for (int k = 0; k < 8 && off < size; k++) {
        ge_pickle *pk = (ge_pickle *)1;
        size_t used = (size_t)-1;
        ge_clear_error();
        ge_status s = ge_pickle_load(&pk, data + off, size - off, &used, WHAT);
        fz_check_refusal(s, WHAT);
        if (s != GE_OK) {
            if (pk) fz_die("a result on failure", ge_errmsg());
            break;
        }
        if (!pk) fz_die("no result on success", NULL);
        if (used == 0 || used > size - off) fz_die("consumed count outside the input", NULL);
        walk(pk, data + off, data + size);
        ge_pickle_free(pk);
        off += used;
    }
    return 0;
}
