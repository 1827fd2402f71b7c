/* fuzz_torch_legacy.c - libFuzzer target: ge_torch_load on the input as a
 * file, seeded with legacy (pre-1.6, non-zip) PyTorch checkpoints: five
 * pickles back to back and the raw storages. This reaches the restricted
 * unpickler, the walk that names tensors, and the storage records. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    ge_tensors *t = NULL;
    ge_clear_error();
    ge_status s = ge_torch_load(&t, path);
    fz_check_refusal(s, path);
    if ((s == GE_OK) != (t != NULL)) fz_die("status and result disagree", ge_errmsg());
    if (t) fz_touch_tensors(t);
    ge_tensors_free(t);
    return 0;
}
