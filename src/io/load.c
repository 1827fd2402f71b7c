/* load.c - ge_tensors_load: one call for every weight or array file.
 *
 * The format is found from the first bytes, never from the file name, so a
 * checkpoint called .pkl, .pt, .pth or .bin loads the same way:
 *   "PK\x03\x04" (or an empty archive's "PK\x05\x06")  PyTorch zip format
 *   "\x93NUMPY"                                         NumPy .npy (one tensor, "array")
 *   any 8 bytes, then '{'                               safetensors (u64 header length, JSON)
 *   0x80 (pickle PROTO opcode)                          legacy PyTorch format
 * safetensors is tested before the pickle because its first byte is the low
 * byte of the header length and may itself be 0x80; a legacy PyTorch file
 * has the magic-number LONG1 opcode (0x8a) at byte 2 and never '{' at 8. */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

ge_status ge_tensors_load(ge_tensors **out, const char *path) {
    *out = NULL;
    if (!path) return ge_fail(GE_ERR_ARG, "no file name given");
    unsigned char h[16] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ge_fail(GE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ssize_t n = 0, r = 0;
    while (n < (ssize_t)sizeof h && (r = read(fd, h + n, sizeof h - (size_t)n)) > 0)
        n += r;
    int err = n < (ssize_t)sizeof h && r < 0 ? errno : 0;
    close(fd);
    if (err) return ge_fail(GE_ERR_IO, "%s: cannot read: %s", path, strerror(err));
    if (n >= 4 && h[0] == 'P' && h[1] == 'K' &&
        ((h[2] == 3 && h[3] == 4) || (h[2] == 5 && h[3] == 6)))
        return ge_torch_load(out, path);
    if (n >= 6 && !memcmp(h, "\x93NUMPY", 6)) return ge_npy_read_tensors(out, path);
    if (n >= 9 && h[8] == '{') return ge_safetensors_read(out, path);
    if (n >= 1 && h[0] == 0x80) return ge_torch_load(out, path);
    if (n == 0) return ge_fail(GE_ERR_FORMAT, "%s: empty file", path);
    return ge_fail(GE_ERR_FORMAT,
                   "%s: unknown format (not safetensors, a PyTorch checkpoint or a .npy file)",
                   path);
}
