/* fuzz_torch_zip.c - libFuzzer target: ge_torch_load on zip checkpoints
 * (torch.save, PyTorch >= 1.6).
 *
 * Mutating a zip archive byte by byte mostly breaks a CRC or the central
 * directory, so few mutants would get past libzip into ganedit's own code.
 * The input is therefore one of two things:
 *   - an archive ("PK" first): written as it is, for hostile archives;
 *   - a recipe (anything else): parts separated by SEP. Part 0 is the bytes
 *     of archive/data.pkl; every further part is "NAME\nBYTES", stored as
 *     archive/NAME (a NAME starting with '~' is deflated instead of stored).
 *     This target builds the archive with libzip in memory, so every CRC is
 *     right and each mutation lands in the pickle, a storage record, the
 *     byteorder member or the member names.
 * fuzz/seed_corpus.sh turns real checkpoints into recipes. */
#include "fuzz_common.h"

#include <zip.h>

#define SEP "#@ZIP@#"
#define MAX_PARTS 64

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end) {
    size_t n = sizeof SEP - 1;
    for (; (size_t)(end - p) >= n; p++)
        if (!memcmp(p, SEP, n)) return p;
    return NULL;
}

/* The archive of a recipe, malloc'd into *out; 0 if libzip refuses it. */
static int build_zip(const uint8_t *data, size_t size, uint8_t **out, size_t *out_len) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &err);
    zip_t *za = src ? zip_open_from_source(src, ZIP_TRUNCATE, &err) : NULL;
    int ok = 0;
    if (!za) {
        if (src) zip_source_free(src);
        zip_error_fini(&err);
        return 0;
    }
    zip_source_keep(src);
    const uint8_t *p = data, *end = data + size;
    for (int part = 0; part < MAX_PARTS && p; part++) {
        const uint8_t *sep = find_sep(p, end), *stop = sep ? sep : end;
        char name[300] = "archive/data.pkl";
        const uint8_t *body = p;
        int deflate = 0;
        if (part > 0) {
            const uint8_t *nl = memchr(p, '\n', (size_t)(stop - p));
            size_t nlen = (size_t)((nl ? nl : stop) - p);
            if (nlen && *p == '~') deflate = 1, p++, nlen--;
            if (nlen > 256) nlen = 256;
            snprintf(name, sizeof name, "archive/%.*s", (int)nlen, (const char *)p);
            body = nl ? nl + 1 : stop;
        }
        zip_source_t *m = zip_source_buffer(za, body, (zip_uint64_t)(stop - body), 0);
        zip_int64_t idx = m ? zip_file_add(za, name, m, ZIP_FL_OVERWRITE) : -1;
        if (idx < 0) {
            if (m) zip_source_free(m);
        } else {
            zip_set_file_compression(za, (zip_uint64_t)idx, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
        }
        p = sep ? sep + sizeof SEP - 1 : NULL;
    }
    if (zip_close(za) != 0) {
        zip_discard(za);
    } else {
        zip_stat_t st;
        if (zip_source_open(src) == 0) {
            if (zip_source_stat(src, &st) == 0 && (st.valid & ZIP_STAT_SIZE)) {
                *out = malloc(st.size ? st.size : 1);
                if (*out && zip_source_read(src, *out, st.size) == (zip_int64_t)st.size) {
                    *out_len = st.size;
                    ok = 1;
                } else {
                    free(*out);
                    *out = NULL;
                }
            }
            zip_source_close(src);
        }
    }
    zip_source_free(src);
    zip_error_fini(&err);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *zipped = NULL;
    size_t zlen = 0;
    const char *path;
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        path = fz_file(data, size);
    } else {
        if (!build_zip(data, size, &zipped, &zlen)) return 0;
        path = fz_file(zipped, zlen);
    }
    ge_tensors *t = NULL;
    ge_clear_error();
    ge_status s = ge_torch_load(&t, path);
    fz_check_refusal(s, path);
    if ((s == GE_OK) != (t != NULL)) fz_die("status and result disagree", ge_errmsg());
    if (t) fz_touch_tensors(t);
    ge_tensors_free(t);
    free(zipped);
    return 0;
}
