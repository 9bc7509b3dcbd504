"""Process-wide effects: each applied by ``app.main`` only, never when a module is imported.

Tests build exporters in-process with ``app.build``; nothing here changes
their interpreter unless a test asks for it.
"""

from __future__ import annotations

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default starting value


def keep_large_buffers_out_of_the_heap() -> None:
    """Have glibc give every buffer over 128 KiB back to the system as soon as it is freed.

    A poll allocates buffers of megabytes (the body, the rendered families)
    and frees them when the next poll replaces them. By default glibc then
    raises its mmap threshold to the freed size, so the next poll's buffers
    come from the heap, where holes between live objects stay resident. A
    fixed threshold keeps them in their own mappings. Nothing happens without
    glibc's ``mallopt`` (musl's is a no-op, macOS has none).
    """
    import ctypes  # only once the exposition is big: a small exporter needs none of this

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
