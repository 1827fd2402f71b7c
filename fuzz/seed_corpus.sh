#!/usr/bin/env bash
# seed_corpus.sh - builds the fuzzers' seed corpora from real files, at fuzz
# time, into a build folder (never into the repository: ../shared may not be
# copied into it).
#
#   fuzz/seed_corpus.sh OUT_DIR      (run from the repository root)
#
# Writes OUT_DIR/<target>/ for every target in fuzz/: the small test vectors
# of tests/vectors, the weights and reference files of ../shared (or
# $GANEDIT_SHARED) cut to the target's input size, data.pkl members pulled out
# of zip checkpoints, zip checkpoints turned into fuzz_torch_zip recipes,
# photos and sketches of ../shared/data, .npy arrays shaped like ganedit's
# latents and a few command lines. A Python 3 (standard library only; Pillow
# if present for extra JPEG/PNG variants) converts what a shell cannot.
# Missing inputs are skipped with a note, so the script also works without
# ../shared. Re-running replaces OUT_DIR's contents.
set -euo pipefail

OUT=${1:?usage: fuzz/seed_corpus.sh OUT_DIR}
SHARED=${GANEDIT_SHARED:-../shared}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
MAXLEN=65536 # keep in step with fuzz/run.sh

rm -rf "$OUT"
for t in safetensors npy torch_zip torch_legacy pickle image cli; do mkdir -p "$OUT/$t"; done

# cp_cut TARGET FILE...: copies each file, cut to MAXLEN bytes.
cp_cut() {
    local t=$1
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        head -c "$MAXLEN" "$f" >"$OUT/$t/$(basename "$f")"
    done
}

[ -d "$SHARED" ] || echo "seed_corpus: $SHARED not found: seeding from tests/vectors only" >&2

# safetensors: test vectors whole, shared weights and reference files cut
# (their headers are complete; offsets then point past the cut data).
cp_cut safetensors tests/vectors/*.safetensors "$SHARED"/weights/*.safetensors \
    "$SHARED"/ref/*.safetensors

# legacy PyTorch: small vectors whole, real legacy checkpoints cut.
cp_cut torch_legacy tests/vectors/io_sd_legacy.pt tests/vectors/io_evil_legacy.pt \
    "$SHARED"/ref/vgg19_tv_conv3_1_legacy.pth "$SHARED"/weights/vgg19_normalised_conv3_1.pth

# pickle: bare pickles, the header and main pickles of legacy files.
cp_cut pickle tests/vectors/*.pkl tests/vectors/io_sd_legacy.pt tests/vectors/io_evil_legacy.pt \
    "$SHARED"/ref/vgg19_tv_conv3_1_legacy.pth "$SHARED"/weights/vgg19_normalised_conv3_1.pth

# zip checkpoints: small ones whole (raw mode); every zip checkpoint as a
# recipe (see fuzz_torch_zip.c), and its data.pkl for the pickle target.
cp_cut torch_zip tests/vectors/io_sd_zip.pt tests/vectors/io_sd_proto4.pt \
    tests/vectors/io_evil_zip.pt tests/vectors/io_noncontig.pt
ZIPS=()
for f in tests/vectors/*.pt "$SHARED"/ref/*.pt "$SHARED"/ref/*.pth "$SHARED"/weights/*.pkl \
    "$SHARED"/weights/*.pth; do
    [ -f "$f" ] && [ "$(head -c 2 "$f")" = "PK" ] && ZIPS+=("$f")
done
"$PY" - "$OUT" "$MAXLEN" "${ZIPS[@]}" <<'EOF'
import os, sys, zipfile
out, maxlen, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
SEP = b"#@ZIP@#"
for path in files:
    base = os.path.basename(path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkl:
            continue
        stem = pkl[0][: -len("data.pkl")]
        data_pkl = z.read(pkl[0])
        with open(os.path.join(out, "pickle", base + ".data.pkl"), "wb") as f:
            f.write(data_pkl[:maxlen])
        if SEP in data_pkl:
            continue
        recipe = bytearray(data_pkl)
        # other members, small ones first, while the recipe stays under maxlen
        rest = sorted((n for n in names if n.startswith(stem) and n != pkl[0]),
                      key=lambda n: z.getinfo(n).file_size)
        for n in rest:
            body = z.read(n)
            part = SEP + n[len(stem):].encode() + b"\n" + body
            if SEP in body or len(recipe) + len(part) > maxlen:
                continue
            recipe += part
        with open(os.path.join(out, "torch_zip", base + ".recipe"), "wb") as f:
            f.write(recipe)
EOF

# .npy: latents as ganedit writes them (version 1.0, <f4, padded to 64),
# plus float64, 0-d, version 2.0/3.0 and the refused kinds.
"$PY" - "$OUT/npy" <<'EOF'
import struct, sys, os
out = sys.argv[1]
def npy(name, descr, shape, data, version=(1, 0), fortran=False):
    shp = "(" + "".join("%d, " % d for d in shape).rstrip(" ")
    shp = shp[:-1] + ")" if len(shape) > 1 else shp + ")"
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shp)
    pre = 10 if version[0] == 1 else 12
    h += " " * ((64 - (pre + len(h) + 1) % 64) % 64) + "\n"
    hb = h.encode("latin1" if version[0] < 3 else "utf8")
    size = struct.pack("<H", len(hb)) if version[0] == 1 else struct.pack("<I", len(hb))
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\x93NUMPY" + bytes(version) + size + hb + data)
def f4(n): return struct.pack("<%df" % n, *[(i % 17) / 8.0 - 1 for i in range(n)])
npy("z_dcgan.npy", "<f4", (1, 100), f4(100))
npy("z_batch.npy", "<f4", (4, 64), f4(256))
npy("wplus.npy", "<f4", (1, 8, 64), f4(512))
npy("scalar.npy", "<f4", (), f4(1))
npy("empty.npy", "<f4", (0, 3), b"")
npy("f8.npy", "<f8", (3, 2), struct.pack("<6d", 1, -2, 3.5, 1e300, -0.0, 7))
npy("v2.npy", "<f4", (5,), f4(5), version=(2, 0))
npy("v3.npy", "<f4", (2, 2), f4(4), version=(3, 0))
npy("fortran.npy", "<f4", (2, 2), f4(4), fortran=True)
npy("big_endian.npy", ">f4", (2,), struct.pack(">2f", 1, 2))
npy("int64.npy", "<i8", (2,), struct.pack("<2q", 1, 2))
npy("rank8.npy", "<f4", (1,) * 8, f4(1))
EOF

# images: sketches (RGBA), targets and faces (RGB PNG), photos (JPEG), and,
# with Pillow, the variants libpng/libjpeg take other paths for.
cp_cut image "$SHARED"/data/sketches/*.png
for f in docs/images/*.png; do # only whole files: a cut PNG is only a truncation test
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "$MAXLEN" ] && cp "$f" "$OUT/image/"
done
for d in "$SHARED"/data/grumpy64/grumpy "$SHARED"/data/cats64; do
    [ -d "$d" ] && cp_cut image $(ls "$d"/*.png | head -n 4)
done
[ -d "$SHARED"/data/cats256 ] && cp_cut image $(ls "$SHARED"/data/cats256/*.jpg | head -n 6)
"$PY" - "$OUT/image" <<'EOF' || echo "seed_corpus: Pillow not available: no image variants" >&2
import os, sys
from PIL import Image
out = sys.argv[1]
srcs = sorted(f for f in os.listdir(out) if f.endswith((".png", ".jpg")))
if not srcs:
    sys.exit(0)
im = Image.open(os.path.join(out, srcs[0])).convert("RGB").resize((24, 16))
variants = [
    ("v_progressive.jpg", lambda: im.save(os.path.join(out, "v_progressive.jpg"), progressive=True)),
    ("v_gray.jpg", lambda: im.convert("L").save(os.path.join(out, "v_gray.jpg"))),
    ("v_cmyk.jpg", lambda: im.convert("CMYK").save(os.path.join(out, "v_cmyk.jpg"))),
    ("v_444.jpg", lambda: im.save(os.path.join(out, "v_444.jpg"), subsampling=0)),
    ("v_palette.png", lambda: im.convert("P").save(os.path.join(out, "v_palette.png"))),
    ("v_gray_alpha.png", lambda: im.convert("LA").save(os.path.join(out, "v_gray_alpha.png"))),
    ("v_gray.png", lambda: im.convert("L").save(os.path.join(out, "v_gray.png"))),
    ("v_16bit.png", lambda: im.convert("L").convert("I").save(os.path.join(out, "v_16bit.png"))),
    ("v_1bit.png", lambda: im.convert("1").save(os.path.join(out, "v_1bit.png"))),
]
for name, make in variants:
    try:
        make()
    except Exception as e:  # an old Pillow: skip that variant
        print("seed_corpus: no %s (%s)" % (name, e), file=sys.stderr)
EOF

# command lines: NUL-separated argv, as fuzz_cli.c splits them.
c=0
while IFS= read -r line; do
    c=$((c + 1))
    printf '%s' "$line" | tr '|' '\0' >"$OUT/cli/args$c"
done <<'EOF'
a.png|--out|dir|--steps|100
--model=weights.pkl|--lr=0.01|a.png|b.png
--quiet|--threads|2|a.png
--help
--steps|nan|a.png
--lr|1e39|a.png
--|--not-an-option|x
--steps=2147483648|a.png
--quiet=1|a.png
-x|a.png
--lr|0x1p-3|--steps|-5|a.png|b.png
EOF

for t in "$OUT"/*/; do
    printf 'seed_corpus: %-13s %4d files\n' "$(basename "$t")" "$(ls "$t" | wc -l)"
done
