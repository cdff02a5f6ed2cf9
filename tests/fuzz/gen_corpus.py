#!/usr/bin/env python3
"""gen_corpus.py: write the seed corpus for the fuzz targets.

Valid files of every supported kind plus one malformed file per validation
rule, so the fuzzer starts next to every branch. Deterministic: running it
again rewrites the same bytes. Files the fuzzer found later live beside
these (named by their SHA-1, as libFuzzer writes them) and are kept."""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def st(entries, data, meta=None, raw_header=None, pad=True):
    if raw_header is None:
        h = {}
        if meta is not None:
            h["__metadata__"] = meta
        h.update(entries)
        raw_header = json.dumps(h, separators=(",", ":"), ensure_ascii=False)
    hb = raw_header if isinstance(raw_header, bytes) else raw_header.encode()
    if pad:
        hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def t(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


def npy(descr, shape, data, version=1, fortran=False, raw=None):
    d = raw if raw is not None else "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False",
        "(" + "".join("%d," % s for s in shape) + ")" if len(shape) == 1 else repr(tuple(shape)))
    pre = 10 if version == 1 else 12
    h = d.encode()
    n = len(h) + 1
    while (pre + n) % 64:
        n += 1
    h = h + b" " * (n - len(h) - 1) + b"\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H", n) if version == 1 else struct.pack("<I", n)
    return head + h + data


def write(target, name, data):
    path = os.path.join(HERE, "corpus", target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


f4 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
ok = st({"w": t("F32", [2, 3], 0, 24), "i": t("I32", [2], 24, 32), "m": t("U8", [3], 32, 35)},
        f4 + struct.pack("<2i", 7, -8) + bytes([1, 0, 1]), meta={"format": "pt"})
seeds = {
    "valid_mixed": ok,
    "valid_empty": st({}, b""),
    "valid_zero_size": st({"e": t("F32", [0, 4], 0, 0), "s": t("F32", [], 0, 4)}, f4[:4]),
    "valid_convert": st({"h": t("F16", [2], 0, 4), "b": t("BF16", [1], 4, 6),
                         "d": t("F64", [1], 6, 14), "l": t("I64", [1], 14, 22),
                         "o": t("BOOL", [1], 22, 23)},
                        struct.pack("<2H", 0x3c00, 0x0001) + struct.pack("<H", 0xc040)
                        + struct.pack("<d", 0.5) + struct.pack("<q", -3) + b"\x01"),
    "bad_truncated": ok[:-1],
    "bad_header_len": struct.pack("<Q", 1 << 40) + ok[8:],
    "bad_json": st(None, b"", raw_header='{"a":{"dtype":"F32",'),
    "bad_overlap": st({"a": t("F32", [2], 0, 8), "b": t("F32", [1], 4, 8)}, f4[:8]),
    "bad_hole": st({"a": t("F32", [1], 0, 4), "b": t("F32", [1], 8, 12)}, f4[:12]),
    "bad_size": st({"a": t("F32", [3], 0, 8)}, f4[:8]),
    "bad_dtype": st({"a": t("Q4", [2], 0, 8)}, f4[:8]),
    "bad_dup": st(None, f4[:8], raw_header='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                  '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
    "bad_negative": st({"a": t("F32", [-2], 0, 8)}, f4[:8]),
    "bad_huge_shape": st({"a": t("F32", [1 << 32, 1 << 32, 1 << 32], 0, 8)}, f4[:8]),
    "bad_metadata": st({}, b"", meta={"k": 1}),
    "valid_utf8": st({"w\u00e9\u20ac\U0001d11e": t("F32", [1], 0, 4)}, f4[:4],
                     meta={"k": "\U0010ffff"}),
    "bad_utf8_name": st(None, f4[:4], raw_header=b'{"h.0\xc0\xaf.w":{"dtype":"F32","shape":[1],'
                        b'"data_offsets":[0,4]}}'),
    "bad_utf8_metadata": st({}, b"", raw_header=b'{"__metadata__":{"k":"\xed\xa0\x80"}}'),
}
for k, v in seeds.items():
    write("safetensors", k, v)

nseeds = {
    "valid_f4": npy("<f4", [2, 3], f4),
    "valid_i4": npy("<i4", [2], struct.pack("<2i", -1, 2)),
    "valid_u1_scalar": npy("|u1", [], b"\x07"),
    "valid_f8": npy("<f8", [1, 1], struct.pack("<d", 0.25)),
    "valid_i8": npy("<i8", [2], struct.pack("<2q", 1, -2)),
    "valid_v2": npy("<f4", [1], f4[:4], version=2),
    "valid_v3": npy("<f4", [0, 2], b"", version=3),
    "bad_magic": b"\x93NUMPX" + npy("<f4", [1], f4[:4])[6:],
    "bad_truncated": npy("<f4", [2, 3], f4[:-1]),
    "bad_fortran": npy("<f4", [6], f4, fortran=True),
    "bad_big_endian": npy(">f4", [6], f4),
    "bad_huge_shape": npy("<f4", [1 << 32, 1 << 32, 1 << 32], f4),
    "bad_dict": npy(None, None, f4, raw="{'descr': '<f4', 'shape': (6,)"),
    "bad_i8_range": npy("<i8", [1], struct.pack("<q", 1 << 40)),
}
for k, v in nseeds.items():
    write("npy", k, v)
print("wrote %d safetensors and %d npy seeds" % (len(seeds), len(nseeds)))
