"""Process-wide C allocator settings for the processes that stream pieces.

Farmers and the client's encoding workers allocate and free buffers of 64 KiB to 16 MiB many
times a second (socket reads, HTTP body chunks, codec output). glibc's defaults hand blocks that
large straight back to the kernel (``mmap`` above the threshold, heap trimming above 128 KiB of
free top), so every new buffer is fresh memory the kernel must fault in and zero. Measured on a
whole local upload (docs/architecture.md, "Allocator"), page faults were a fifth of the farmers'
CPU; keeping freed memory in the heap cut the farmers' CPU per MiB by about a fifth.

Only for processes metadisk owns (``metadisk farmer run``, ``metadisk bridge run``, the client's
worker processes, the CLI): a library must not retune its host's allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks below this come from the heap and are reused; larger ones (rare: whole 64 MiB segments)
# still go to mmap. 32 MiB is glibc's own ceiling for its dynamic threshold.
MMAP_THRESHOLD = 32 << 20
# Free memory at the top of the heap kept for reuse instead of returned to the kernel: a few
# segments' or a few dozen uploads' worth of buffers.
TRIM_THRESHOLD = 128 << 20


@functools.cache
def tune_for_streaming() -> bool:
    """Keep freed large buffers for reuse; True if the C library took the settings (glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt), or no libc at all
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting either one also turns off glibc's dynamic threshold
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
