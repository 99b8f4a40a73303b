"""A bounded max-heap of (distance, index) pairs: the k best candidates of one query."""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def _worse(d1, i1, d2, i2):
    """Ordering by (distance, index): is (d1, i1) after (d2, i2)?"""
    return d1 > d2 or (d1 == d2 and i1 > i2)


@njit(cache=True)
def offer(heap_d, heap_i, size, d, i):
    """Insert (d, i) if it beats the worst kept pair; return the new size and whether it was pushed."""
    k = heap_d.shape[0]
    if size < k:
        pos = size
        size += 1
        while pos > 0:
            parent = (pos - 1) // 2
            if not _worse(d, i, heap_d[parent], heap_i[parent]):
                break
            heap_d[pos] = heap_d[parent]
            heap_i[pos] = heap_i[parent]
            pos = parent
        heap_d[pos] = d
        heap_i[pos] = i
        return size, True
    if not _worse(heap_d[0], heap_i[0], d, i):
        return size, False
    _replace_top(heap_d, heap_i, k, d, i)
    return size, True


@njit(cache=True)
def _replace_top(heap_d, heap_i, n, d, i):
    """Put (d, i) in place of the top of the heap of the first n pairs: the hole sifts down (the worse
    child moves up) to where (d, i) belongs."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _worse(heap_d[child + 1], heap_i[child + 1], heap_d[child], heap_i[child]):
            child += 1
        if not _worse(heap_d[child], heap_i[child], d, i):
            break
        heap_d[pos] = heap_d[child]
        heap_i[pos] = heap_i[child]
        pos = child
    heap_d[pos] = d
    heap_i[pos] = i


@njit(cache=True)
def write_sorted(heap_d, heap_i, size, out_i, out_d):
    """Write the kept pairs in (distance, index) order, padding the row with (-1, inf). A heapsort of a
    copy of the heap, O(k log k): the worst pair goes to the last slot, the worst of the rest before it,
    and so on (an insertion sort of the heap's array was O(k^2): 4.3 s for 10 queries at k = 40,000)."""
    for j in range(out_i.shape[0]):
        out_i[j] = -1
        out_d[j] = float("inf")
    for j in range(size):
        out_i[j] = heap_i[j]
        out_d[j] = heap_d[j]
    for end in range(size - 1, 0, -1):
        d, i = out_d[end], out_i[end]
        out_d[end], out_i[end] = out_d[0], out_i[0]
        _replace_top(out_d, out_i, end, d, i)
