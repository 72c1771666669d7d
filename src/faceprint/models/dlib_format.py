"""The one reader of dlib's serialization primitives, for every dlib file faceprint reads.

dlib writes its objects (``serialize.h``) from a few primitives:

* an integer: one control byte -- the number of magnitude bytes in the low nibble (0..8),
  the sign in bit 0x80, bits 0x70 always clear -- then the magnitude, little endian;
* ``bool``: one ASCII byte, ``'0'`` or ``'1'``; ``uint8_t``: one raw byte;
* ``float``/``double``: two integers, an int64 mantissa and an int16 exponent, value
  ``mantissa * 2**exponent`` (exponents 32000/32001/32002 mean +inf/-inf/nan);
* strings and ``std::vector``: an unsigned length, then the bytes / the items;
* ``resizable_tensor``: a version integer (2: raw little-endian float32, 1: dlib floats),
  then the dims ``num_samples, k, nr, nc``; ``alias_tensor``: version 1 plus the dims.

:class:`ByteReader` reads these one at a time (with bounds and plausibility checks, so a
truncated or foreign file gives a :class:`~faceprint.errors.ModelError`), and long runs of
integers or floats vectorised (:meth:`ByteReader.ints`, :meth:`ByteReader.floats`).
:func:`decode_ints` is that vectorised path: it finds where each integer of a run starts
(integers have variable lengths, so the run is cut into chunks whose parsings from all 9
possible first offsets are chased in parallel until they meet), then decodes them all at
once. A file made only of integers (dlib's shape predictor) is decoded whole and walked
with :class:`IntReader`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from faceprint.errors import ModelError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: float_details' exponent codes for special values.
EXP_INF, EXP_NINF, EXP_NAN = 32000, 32001, 32002
#: The longest integer: a control byte and 8 magnitude bytes.
MAX_INT_BYTES = 9

_CHUNK = 2048  # bytes per chunk when finding where integers start
_SYNC_ROUNDS = 64  # how far the 9 parsings of a chunk are chased to meet
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _int_starts(ctrl: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """Where the consecutive integers of ``ctrl`` start (the first at 0), in order.

    Integer i + 1 starts at ``start_i + 1 + (ctrl[start_i] & 15)``: a chain through the
    buffer (lengths are capped at 8 here; a longer control byte is refused afterwards).
    The buffer is cut into chunks; in each, the chains from its first 9 offsets are
    advanced (always the ones furthest behind) until they meet: the true chain enters the
    chunk at one of those offsets, so it runs through the meeting point. Then each stretch
    between two meeting points is followed, all stretches at once.
    """
    n = len(ctrl)
    dtype: type[np.signedinteger[Any]] = np.int32 if n < 2**31 - 64 else np.int64
    nxt: npt.NDArray[np.signedinteger[Any]] = np.arange(1, n + MAX_INT_BYTES + 2, dtype=dtype)
    nxt[:n] += np.minimum(ctrl & 0x0F, 8).astype(dtype)
    nxt[n:] = np.arange(n, n + MAX_INT_BYTES + 1, dtype=dtype)  # past the end: stay
    # meeting points
    first = np.arange(0, n, _CHUNK, dtype=dtype)
    cur = np.minimum(first[:, None] + np.arange(MAX_INT_BYTES, dtype=dtype), n).astype(dtype)
    rows = np.arange(len(first))
    for _ in range(_SYNC_ROUNDS):
        sub = cur[rows]
        top = sub.max(axis=1)
        lag = sub < top[:, None]
        still = lag.any(axis=1) & (top < first[rows] + _CHUNK)
        rows, sub, lag = rows[still], sub[still], lag[still]
        if not len(rows):
            break
        sub[lag] = nxt[sub[lag]]
        cur[rows] = sub
    met = (cur.min(axis=1) == cur.max(axis=1)) & (cur[:, 0] < first + _CHUNK) & (cur[:, 0] < n)
    met[0] = False
    sync = np.concatenate(([0], cur[met, 0])).astype(dtype)
    # follow every stretch from its meeting point to the next one (the last one to the end)
    stop = nxt.copy()
    stop[sync[1:]] = sync[1:]
    mark = np.zeros(len(nxt), dtype=bool)
    mark[sync] = True
    pos = nxt[sync]
    target = np.append(sync[1:], n).astype(dtype)
    while len(pos):
        for _ in range(8):
            mark[pos] = True
            pos = stop[pos]
        running = (pos != target) & (pos < n)
        pos, target = pos[running], target[running]
    return np.flatnonzero(mark[:n])


def decode_ints(
    data: bytes | memoryview, what: str, start: int = 0, count: int | None = None
) -> tuple[IntArray, int]:
    """Decode consecutive dlib integers from ``data[start:]``, vectorised.

    ``count`` integers, or with ``count=None`` every byte to the end (which must then be
    made only of integers). Returns the values (int64) and the offset just past the last.
    Errors are ModelErrors reading "<what>: <problem>".
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if count == 0:
        return np.zeros(0, dtype=np.int64), start
    stop = len(raw) if count is None else min(len(raw), start + MAX_INT_BYTES * count)
    if start >= stop:
        raise ModelError(f"{what}: file is truncated (wanted {count or 1} more integers)")
    found = _int_starts(raw[start:stop])
    if count is not None:
        if len(found) < count:
            raise ModelError(f"{what}: file is truncated (wanted {count} integers at {start})")
        found = found[:count]
    padded = np.zeros(stop - start + MAX_INT_BYTES, dtype=np.uint8)
    padded[: stop - start] = raw[start:stop]
    ctrl = padded[found]
    size = ctrl & 0x0F
    bad = np.flatnonzero(((ctrl & 0x70) != 0) | (size > 8))
    if len(bad):
        at, byte = start + int(found[bad[0]]), int(ctrl[bad[0]])
        raise ModelError(f"{what}: bad integer control byte 0x{byte:02x} at offset {at}")
    # the bytes after each control byte as one little-endian word, cut to its size
    magnitude = np.zeros(len(found), dtype=np.uint64)
    for k in range(int(size.max(initial=0))):
        magnitude |= padded[found + (1 + k)].astype(np.uint64) << np.uint64(8 * k)
    magnitude &= _MASKS[size]
    if np.any(magnitude > np.uint64(2**63 - 1)):
        raise ModelError(f"{what}: integer out of range")
    end = int(found[-1]) + 1 + int(size[-1])
    if end > stop - start:
        raise ModelError(f"{what}: file is truncated (the last integer is cut off)")
    values = magnitude.astype(np.int64)
    negative = (ctrl & 0x80) != 0
    values[negative] = -values[negative]
    return values, start + end


def to_floats(mantissa: IntArray, exponent: IntArray) -> FloatArray:
    """dlib floats (mantissa, exponent pairs) as float32."""
    with np.errstate(over="ignore"):  # special exponents are replaced below
        out = np.ldexp(mantissa.astype(np.float64), exponent.clip(-2000, 2000).astype(np.int32))
    out[exponent == EXP_INF] = np.inf
    out[exponent == EXP_NINF] = -np.inf
    out[exponent == EXP_NAN] = np.nan
    return out.astype(np.float32)


class ByteReader:
    """A cursor over the bytes of a dlib serialization; every read checks bounds.

    ``source`` and ``kind`` name the file in errors: "<source> is not a readable <kind>: ...".
    """

    def __init__(self, data: bytes, source: str, kind: str = "dlib file") -> None:
        self.data = data
        self.pos = 0
        self.source = source
        self.kind = kind

    def fail(self, what: str) -> ModelError:
        return ModelError(
            f"{self.source} is not a readable {self.kind}: {what} (offset {self.pos})"
        )

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"file is truncated (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self, max_bytes: int = 8) -> int:
        ctrl = self.take(1)[0]
        size = ctrl & 0x0F
        if size > max_bytes or ctrl & 0x70:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if ctrl & 0x80 else value

    def uint(self, max_bytes: int = 8) -> int:
        value = self.int_(max_bytes)
        if value < 0:
            raise self.fail("negative value for an unsigned integer")
        return value

    def peek_int(self) -> int | None:
        """The integer at the cursor, without moving; None if there is none."""
        pos = self.pos
        try:
            return self.int_()
        except ModelError:
            return None
        finally:
            self.pos = pos

    def float_(self) -> float:
        mantissa = self.int_(8)
        exponent = self.int_(2)
        if exponent == EXP_INF:
            return math.inf
        if exponent == EXP_NINF:
            return -math.inf
        if exponent == EXP_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def bool_(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def byte(self) -> int:
        return self.take(1)[0]

    def string(self, max_len: int = 1 << 20) -> str:
        n = self.uint()
        if n > max_len:
            raise self.fail(f"implausible string length {n}")
        raw = self.take(n)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("string is not ASCII") from exc

    def peek_string(self) -> str | None:
        """The string at the cursor if there plausibly is one, without moving."""
        pos = self.pos
        try:
            return self.string(max_len=64)
        except ModelError:
            return None
        finally:
            self.pos = pos

    def ints(self, n: int) -> IntArray:
        """``n`` consecutive integers, decoded vectorised."""
        if n < 0:
            raise self.fail(f"negative count {n}")
        what = f"{self.source} is not a readable {self.kind}"
        values, self.pos = decode_ints(self.data, what, self.pos, n)
        return values

    def floats(self, n: int) -> FloatArray:
        """``n`` consecutive dlib floats, decoded vectorised."""
        pairs = self.ints(2 * n).reshape(n, 2)
        if np.any(np.abs(pairs[:, 1]) > 0x7FFF):
            raise self.fail("float exponent out of range")
        return to_floats(pairs[:, 0], pairs[:, 1])

    def tensor(self) -> FloatArray:
        version = self.int_()
        dims = [self.int_() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims}")
        count = math.prod(dims)
        if version == 2:
            arr = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        elif version == 1:
            arr = self.floats(count)
        else:
            raise self.fail(f"unknown tensor version {version}")
        return arr.reshape(dims)

    def tensor_shape(self) -> tuple[int, ...]:
        return tuple(self.tensor().shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int_()
        if version != 1:
            raise self.fail(f"unknown alias_tensor version {version}")
        n, k, nr, nc = (self.int_() for _ in range(4))
        return (n, k, nr, nc)


class IntReader:
    """A cursor over a file decoded whole into integers (:func:`decode_ints`)."""

    def __init__(self, data: bytes, source: str, kind: str = "dlib file") -> None:
        self.source = source
        self.kind = kind
        self.values, _ = decode_ints(data, f"{source} is not a readable {kind}")
        self.pos = 0

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.source} is not a readable {self.kind}: {what} (value {self.pos})")

    @property
    def remaining(self) -> int:
        return len(self.values) - self.pos

    def peek(self) -> int | None:
        return int(self.values[self.pos]) if self.pos < len(self.values) else None

    def take(self, n: int) -> IntArray:
        if n < 0 or self.pos + n > len(self.values):
            raise self.fail("unexpected end of data (file is truncated)")
        out = self.values[self.pos : self.pos + n]
        self.pos += n
        return out

    def int_(self) -> int:
        return int(self.take(1)[0])

    def count(self, limit: int = 10_000_000) -> int:
        v = self.int_()
        if v < 0 or v > limit:
            raise self.fail(f"implausible element count {v}")
        return v

    def floats(self, n: int) -> FloatArray:
        pairs = self.take(2 * n).reshape(n, 2)
        return to_floats(pairs[:, 0], pairs[:, 1])

    def column(self, limit: int = 100_000) -> FloatArray:
        """A ``matrix<float,0,1>``: its sizes (negated in the current format), then values."""
        nr, nc = (abs(int(v)) for v in self.take(2))
        if nc != 1 or nr > limit:
            raise self.fail(f"unexpected matrix size {nr}x{nc}")
        return self.floats(nr)
