"""gen_regress.py - writes the hand-made inputs of tests/vectors/fuzz_regress/
(the fuzzers' own crash inputs are copied there as they are; see README.md).

    /usr/bin/python3 fuzz/gen_regress.py    (from the repository root; Pillow for the JPEGs)

torch_zip-terabyte_storage.pt: a zip checkpoint whose data.pkl says storage
'0' holds 2^38 floats (1 TiB) while archive/data/0 has 16 bytes. Before the
fix in src/io/torch.c (member size checked before the storage is allocated)
ge_torch_load asked malloc for 1 TiB: GE_ERR_NOMEM in a normal build, an
allocation-size abort under ASan, a malloc-limit crash under libFuzzer
(build-fuzz/fuzz_torch_zip on this file). Now: GE_ERR_FORMAT.

image-jpeg_claims_16000_rgb.jpg, image-jpeg_claims_16000_gray.jpg: complete
24x16 JPEGs (a synthetic gradient) whose frame header says 16000x16000.
libjpeg reaches the end-of-image marker long before the last row, warns
"premature end of data segment" and pads the rest with grey; ge_image_read
used to accept that as a 16000x16000 photo: 3 GB of floats and 3.7 GB of
memory for the RGB file (a libFuzzer out-of-memory crash in
build-fuzz/fuzz_image), 20 s for the grey one (a libFuzzer timeout). Now
both are GE_ERR_FORMAT before the float image is allocated.
"""
import os
import struct
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors",
                   "fuzz_regress")


def bu(s):  # BINUNICODE
    return b"X" + struct.pack("<I", len(s)) + s.encode()


def terabyte_storage():
    pkl = (b"\x80\x02}" + bu("w") + b"ctorch._utils\n_rebuild_tensor_v2\n"
           + b"((" + bu("storage") + b"ctorch\nFloatStorage\n" + bu("0") + bu("cpu")
           + b"\x8a\x08" + struct.pack("<q", 1 << 38) + b"tQ"      # ('storage', ..., 2**38) persid
           + b"K\x00K\x04\x85K\x01\x85\x89NtRs.")                 # offset 0, (4,), (1,), False, None
    path = os.path.join(OUT, "torch_zip-terabyte_storage.pt")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in (("archive/data.pkl", pkl), ("archive/byteorder", b"little"),
                           ("archive/data/0", struct.pack("<4f", 1, 2, 3, 4))):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, data)


def jpeg_size_claims():
    import io
    from PIL import Image
    im = Image.new("RGB", (24, 16))
    im.putdata([(10 * x, 15 * y, 128) for y in range(16) for x in range(24)])
    for mode, name in (("RGB", "rgb"), ("L", "gray")):
        buf = io.BytesIO()
        im.convert(mode).save(buf, "JPEG", quality=90)
        b = bytearray(buf.getvalue())
        i = b.index(b"\xff\xc0")  # baseline frame header: FF C0 len(2) precision(1) h(2) w(2)
        b[i + 5:i + 9] = struct.pack(">HH", 16000, 16000)
        with open(os.path.join(OUT, "image-jpeg_claims_16000_%s.jpg" % name), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    terabyte_storage()
    jpeg_size_claims()
