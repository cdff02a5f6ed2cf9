"""safetensors_io.py: a small, strict reader and writer for the safetensors format.

The test tools need safetensors without the `safetensors` package (absent on
this system) and torch 1.13 has no support of its own, so this is the format
written out from its specification:

    8 bytes   little-endian u64 N: length of the header
    N bytes   UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
              plus an optional "__metadata__" object of string -> string
    rest      the byte buffer; offsets are relative to its start

The reader rejects anything it cannot vouch for: unknown dtypes, offsets out
of bounds, overlapping or unordered tensors, gaps, trailing bytes, sizes that
do not match the shape. The writer sorts tensors by name, lays them out
contiguously in that order and pads the header with spaces to a multiple of 8,
which is what the reference implementation does.

Only numpy is required; tensors come back as little-endian numpy arrays.
"""

import json
import struct

import numpy as np

# safetensors dtype name -> numpy dtype (little-endian)
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# (numpy kind, itemsize) -> safetensors name, whatever the byte order
_NAMES = {(v.kind, v.itemsize): k for k, v in _DTYPES.items()}

# A header larger than this is certainly not one of ours (the reference
# implementation uses the same bound).
_MAX_HEADER = 100 * 1000 * 1000


class SafetensorsError(ValueError):
    pass


def _fail(path, msg):
    raise SafetensorsError("%s: %s" % (path, msg))


def loads(data, path="<bytes>"):
    """Parse a safetensors file held in `data` (bytes).

    Returns (tensors, metadata): an ordered dict name -> numpy array (in file
    order) and the __metadata__ dict or None."""
    if len(data) < 8:
        _fail(path, "file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        _fail(path, "header length %d out of bounds (file is %d bytes)" % (n, len(data)))
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key in %s" % sorted(keys))
        return dict(pairs)

    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        _fail(path, "header is not valid UTF-8 JSON: %s" % e)
    if not isinstance(header, dict):
        _fail(path, "header is not a JSON object")
    buf = memoryview(data)[8 + n :]
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            _fail(path, "__metadata__ must map strings to strings")

    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            _fail(path, "tensor %r: entry must have exactly dtype, shape, data_offsets" % name)
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            _fail(path, "tensor %r: unsupported dtype %r" % (name, info["dtype"]))
        shape = info["shape"]
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            _fail(path, "tensor %r: bad shape %r" % (name, shape))
        off = info["data_offsets"]
        if (
            not isinstance(off, list)
            or len(off) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in off)
            or not 0 <= off[0] <= off[1] <= len(buf)
        ):
            _fail(path, "tensor %r: data_offsets %r out of bounds (buffer %d bytes)"
                  % (name, off, len(buf)))
        numel = 1
        for s in shape:
            numel *= s
        if off[1] - off[0] != numel * dt.itemsize:
            _fail(path, "tensor %r: %d bytes for shape %r of %s"
                  % (name, off[1] - off[0], shape, info["dtype"]))
        entries.append((off[0], off[1], name, dt, shape))

    # The tensors must tile the buffer exactly: sorted by offset, no gaps,
    # no overlaps, nothing after the last one.
    entries.sort()
    pos = 0
    for begin, end, name, _, _ in entries:
        if begin != pos:
            _fail(path, "tensor %r starts at %d, expected %d (gap or overlap)" % (name, begin, pos))
        pos = end
    if pos != len(buf):
        _fail(path, "%d trailing bytes after the last tensor" % (len(buf) - pos))

    tensors = {}
    for begin, end, name, dt, shape in entries:
        arr = np.frombuffer(buf[begin:end], dtype=dt).reshape(shape).copy()
        tensors[name] = arr
    return tensors, metadata


def load(path):
    """Read a safetensors file: (dict name -> numpy array, metadata or None)."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, path)


def dumps(tensors, metadata=None):
    """Serialise a dict name -> numpy array to safetensors bytes."""
    header = {}
    chunks = []
    pos = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        key = _NAMES.get((arr.dtype.kind, arr.dtype.itemsize))
        if key is None:
            raise SafetensorsError("tensor %r: unsupported dtype %s" % (name, arr.dtype))
        raw = np.ascontiguousarray(arr, dtype=_DTYPES[key]).tobytes()
        header[name] = {"dtype": key, "shape": list(arr.shape), "data_offsets": [pos, pos + len(raw)]}
        chunks.append(raw)
        pos += len(raw)
    if metadata is not None:
        header = dict(header)
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(path, tensors, metadata=None):
    """Write a dict name -> numpy array as a safetensors file."""
    data = dumps(tensors, metadata)
    with open(path, "wb") as f:
        f.write(data)
