"""Print the SIMD targets numpy dispatches to at run time, space-separated.

``make test`` runs the doctests and feature tests a second time with
``NPY_DISABLE_CPU_FEATURES`` set to this list, so numpy falls back to its baseline
(SSE4.2-class on x86-64) kernels: results that depended on the last bits of a wider SIMD
path fail there instead of on a user's machine. The names differ between numpy
releases (``AVX2 FMA3 AVX512F ...`` before 2.4, ``X86_V3 X86_V4 ...`` since), so they
are read from the installed numpy rather than written down.
"""

from __future__ import annotations

try:
    from numpy._core._multiarray_umath import __cpu_dispatch__
except ImportError:  # numpy < 2
    from numpy.core._multiarray_umath import __cpu_dispatch__

if __name__ == "__main__":
    print(" ".join(__cpu_dispatch__))
