"""Child processes that cannot outlive their parent (Linux `PR_SET_PDEATHSIG`), nor take more memory
and CPU than they are given (`setrlimit`).

A worker killed with SIGKILL must take its work horse and the horse's ffmpeg with it: otherwise an
orphan would keep transcoding a job that another worker has already taken over.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
from dataclasses import dataclass

from videoflix_shared import Settings

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies.

    With `parent_pid`, also exit at once if that parent is already gone (it died before the call).
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


@dataclass(frozen=True)
class ResourceLimits:
    """What one ffmpeg or ffprobe may use: address space (a decoder fed a huge picture fails to allocate
    instead of taking the machine's memory) and CPU seconds (the kernel kills it past them)."""

    memory_bytes: int
    cpu_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "ResourceLimits":
        return cls(settings.ffmpeg_memory_mb * 1024 * 1024, settings.ffmpeg_cpu_seconds)

    def apply(self) -> None:
        """In the child, before exec: limits that ffmpeg cannot raise again."""
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        # SIGXCPU at the soft limit (ffmpeg dies of it); SIGKILL a little later if it ignored that.
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5))
