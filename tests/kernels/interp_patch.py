"""Fixes for Triton interpreter (CPU) bugs: bf16 tl.dot, fp32->bf16 and fp32->fp8 rounding. Applied by conftest."""

import numpy as np
import torch
import triton.language as tl
from triton.runtime import interpreter as ti

_T = {tl.bfloat16: torch.bfloat16, tl.float16: torch.float16, tl.float32: torch.float32,
      tl.float8e4nv: torch.float8_e4m3fn, tl.float8e5: torch.float8_e5m2}


def _to_f32(h):
    if h.dtype.scalar == tl.bfloat16:
        return ti.TensorHandle((h.data.astype(np.uint32) << 16).view(np.float32), tl.float32)
    return h


def _torch_cast(src, dst_type):
    s, d = src.dtype.scalar, dst_type.scalar
    t = torch.from_numpy(np.ascontiguousarray(src.data))
    if s.primitive_bitwidth in (8, 16) and s is not tl.float16:
        t = t.view(_T[s])
    out = t.to(_T[d])
    if d is tl.bfloat16:
        out = out.view(torch.uint16)
    elif d.primitive_bitwidth == 8:
        out = out.view(torch.uint8)
    return ti.TensorHandle(out.numpy().reshape(src.data.shape), d)


_B = ti.InterpreterBuilder
_dot, _cast, _f2f = _B.create_dot, _B.cast_impl, _B.create_fp_to_fp


def create_dot(self, a, b, d, p, m):
    return _dot(self, _to_f32(a), _to_f32(b), d, p, m)


def cast_impl(self, src, dst):
    if (src.dtype.scalar, dst.scalar) == (tl.float32, tl.bfloat16):
        return _torch_cast(src, dst)
    return _cast(self, src, dst)


def create_fp_to_fp(self, src, dst, rm):
    if src.dtype.scalar in _T and dst.scalar in _T and dst.scalar.primitive_bitwidth == 8:
        return _torch_cast(src, dst)
    return _f2f(self, src, dst, rm)


def apply():
    b = ti.InterpreterBuilder
    b.create_dot, b.cast_impl, b.create_fp_to_fp = create_dot, cast_impl, create_fp_to_fp
    b.create_fp_trunc = lambda self, src, dst: self.cast_impl(src, dst)
