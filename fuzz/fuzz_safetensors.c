/* fuzz_safetensors.c - libFuzzer target: ge_safetensors_load on the input as
 * a file. A result must hold readable tensors whose floats all lie inside
 * the mapping or owned buffers; a refusal must name the file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    ge_tensors *t = NULL;
    ge_clear_error();
    ge_status s = ge_safetensors_load(&t, path);
    fz_check_refusal(s, path);
    if ((s == GE_OK) != (t != NULL)) fz_die("status and result disagree", ge_errmsg());
    if (t) fz_touch_tensors(t);
    ge_tensors_free(t);
    return 0;
}
