/* st_write.c - see st_write.h. */
#include "st_write.h"

#include <stdio.h>

int st_write(const char *path, const st_entry *e, int n, const char *meta) {
    char hdr[16384];
    size_t len = 0, off = 0;
    len += snprintf(hdr + len, sizeof hdr - len, "{");
    if (meta) len += snprintf(hdr + len, sizeof hdr - len, "\"__metadata__\":%s,", meta);
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        len += snprintf(hdr + len, sizeof hdr - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                        i ? "," : "", e[i].name);
        for (int d = 0; d < e[i].ndim; d++)
            len += snprintf(hdr + len, sizeof hdr - len, "%s%lld", d ? "," : "",
                            (long long)e[i].shape[d]);
        len += snprintf(hdr + len, sizeof hdr - len, "],\"data_offsets\":[%zu,%zu]}", off,
                        off + numel * 4);
        off += numel * 4;
    }
    len += snprintf(hdr + len, sizeof hdr - len, "}");
    if (len >= sizeof hdr - 8) return 0;
    while (len % 8) hdr[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    for (int i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        ok = fwrite(e[i].data, 4, numel, f) == numel;
    }
    return fclose(f) == 0 && ok;
}
