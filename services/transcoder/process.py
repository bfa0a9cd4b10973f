"""Child processes that cannot outlive their parent (Linux `PR_SET_PDEATHSIG`).

A worker killed with SIGKILL must take its work horse and the horse's ffmpeg with it: otherwise an
orphan would keep transcoding a job that another worker has already taken over.
"""
from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies.

    With `parent_pid`, also exit at once if that parent is already gone (it died before the call).
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
