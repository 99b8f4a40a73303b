"""Callgrind's client requests, issued from this process: switch counting on and off, dump the counts.

Asking from outside (``callgrind_control``, through vgdb) lands the request wherever the process happens to be
when valgrind's gdbserver notices it, somewhere inside the ``subprocess.run`` that asked: the rest of that
call (pipe reads, decoding, reaping: about a million instructions) fell inside the count, by an amount that
depended on timing, so the same code counted differently on a loaded machine. A client request is an
instruction sequence valgrind recognises where it stands: the counted span is exactly the code between two
requests.

No compiler is needed: the request is the documented "special instruction" of valgrind.h (its x86-64
form: four ``rol`` of ``rdi`` adding up to 128 bits, so natively a no-op, then ``xchg rbx, rbx``; the
request block's address in ``rax``, the answer in ``rdx``, which is 0 when not under valgrind). We write
those 28 bytes into a page of our own, make it executable and call it through ctypes. Only the x86-64 form
is written here (the one this project can run under valgrind and test); other machines are refused with
that reason.

Callgrind's own "zero" request is not used: it zeroes only the calling thread, so the count of a call whose
work runs on a pool thread (rayon, even with one thread) came out wrong, below zero. A dump resets every
thread: the probe dumps once before the call and once after, and the second dump is the call's count.
"""

from __future__ import annotations

import ctypes
import mmap
import platform

from pytest_pcct.gate.errors import GateInputError

_REQUEST_CODE = bytes.fromhex(
    "4889f8"  # mov rax, rdi        the request block
    "31d2"  # xor edx, edx          the answer when not under valgrind
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi, 3 / 13 / 61 / 51
    "4887db"  # xchg rbx, rbx       the request itself
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)
_CALLGRIND_BASE = (ord("C") << 24) | (ord("T") << 16)  # valgrind.h's VG_USERREQ_TOOL_BASE('C', 'T')
DUMP_STATS_AT = _CALLGRIND_BASE + 3
START_INSTRUMENTATION = _CALLGRIND_BASE + 4
STOP_INSTRUMENTATION = _CALLGRIND_BASE + 5
SUPPORTED_MACHINES = ("x86_64", "amd64")

_request = None


def check_machine() -> None:
    """Refuse, before any relaunch, a machine whose request encoding this module does not write (a 64-bit
    process on x86-64), and a system that will not run it (an executable page refused, say by SELinux)."""
    if platform.machine().lower() not in SUPPORTED_MACHINES or ctypes.sizeof(ctypes.c_void_p) != 8:
        raise GateInputError(
            f"--pcct-gate=instructions issues callgrind's client requests in x86-64 code only; this machine "
            f"is {platform.machine() or 'unknown'} with {8 * ctypes.sizeof(ctypes.c_void_p)}-bit pointers "
            "(use --pcct-gate=counters or the time gate here)")
    try:
        request(STOP_INSTRUMENTATION)  # natively a no-op: proves the page can be made and run
    except OSError as exc:
        raise GateInputError(
            f"--pcct-gate=instructions cannot run its client-request code here: {exc}") from None


def _load():
    """The request function, written once into a private page (writable while filled, then executable)."""
    global _request
    if _request is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        page = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if page in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of one page for callgrind's client request failed")
        ctypes.memmove(page, _REQUEST_CODE, len(_REQUEST_CODE))
        if libc.mprotect(page, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect could not make the client-request page executable")
        _request = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64))(page)
    return _request


_Block = ctypes.c_uint64 * 6
"""A request block: the request code and its five arguments."""


def prepared(code: int, argument: int = 0):
    """A call issuing one client request, everything built beforehand, so that issuing it inside a counted
    span runs the same few instructions each time (no ctypes type or buffer made in the span)."""
    block, run = _Block(code, argument, 0, 0, 0, 0), _load()
    return lambda: run(block)


def request(code: int, argument: int = 0) -> int:
    """Issue one client request; valgrind's answer, or 0 when not running under valgrind."""
    return prepared(code, argument)()


def prepared_dump(label: str):
    """A call writing a dump whose trigger line reads ``Client Request: <label>`` (the label's buffer kept
    alive by the call)."""
    text = ctypes.create_string_buffer(label.encode())
    issue = prepared(DUMP_STATS_AT, ctypes.addressof(text))
    return lambda: (text, issue())
