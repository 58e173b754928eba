"""The one place numba options live.

* ``fastmath`` without ``nnan``/``ninf``: log(0) = -inf is a real value here
  (perplexity of an unseen event, log-sum-exp over empty sets), and with the
  full ``fastmath=True`` numba assumes it never happens and ``isnan`` checks
  are optimised away.
* ``error_model="numpy"``: a division by zero gives inf/NaN like NumPy instead
  of raising ``ZeroDivisionError`` from inside a kernel.
* ``nogil``: kernels can run in threads (Dask workers) without holding the GIL.
* ``cache``: compiled code is cached on disk so a worker process starts in
  about a second instead of recompiling.  Only serial code is cached.  Note
  that the cache does not notice changes to a jitted function imported from
  another module; CI clears ``NUMBA_CACHE_DIR``.

Kernels copy arrays with :func:`copy_into`, not a slice assignment
(``dst[:n] = src``): for an array source numba compiles the assignment's
shape-error message, string formatting included, into the caller: without
such copies the gmm kernels compile on an empty cache in about 0.63 of the time.

A kernel whose floating-point sum or product must round in the order it is
written (Kneser-Ney's back-off product, reproduced bit for bit by the golden
tests) uses :data:`jit_in_order`: the same options without ``reassoc``, so
LLVM may not regroup its operations.

Kernels never use ``prange``: the grid parallelises across cells, so every
kernel is serial and results do not depend on the number of threads.
"""

import numba

FASTMATH_FLAGS = frozenset({"contract", "reassoc", "arcp", "nsz", "afn"})


def jit(func=None, *, cache=True):
    """Decorate a kernel with the project's numba options.

    Usable as ``@jit`` or ``@jit(cache=False)``.
    """
    options = dict(
        nogil=True,
        cache=cache,
        fastmath=set(FASTMATH_FLAGS),
        error_model="numpy",
    )
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)

#: :func:`jit` without ``reassoc``, for a sum or product whose rounding must follow a fixed order
jit_in_order = numba.njit(nogil=True, cache=True, fastmath=set(FASTMATH_FLAGS - {"reassoc"}), error_model="numpy")


@jit
def copy_into(src, dst):
    """``dst[:len(src)] = src`` for 1-D arrays, as a loop (see the module docstring)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]
