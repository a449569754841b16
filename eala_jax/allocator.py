"""Run a command-line entry point under tcmalloc where it is installed (CPU speed, all platforms).

With glibc's malloc, XLA's CPU runtime returns its working memory to the system after each step
and faults it in again on the next: on 2 CPU cores this cost 1.8-2.2 s of system time per
ELinFormer training step at 170 sensors. tcmalloc with a release rate of 0 keeps that memory.
An allocator can only be chosen before the process starts, so `reexec_with_tcmalloc()` restarts
the current command once with `LD_PRELOAD` set; it is a no-op when tcmalloc is absent, already
loaded, or switched off with `EALA_TCMALLOC=0`. On Debian/Ubuntu: `apt-get install
libgoogle-perftools4`.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence

__all__ = ["find_tcmalloc", "reexec_with_tcmalloc", "tcmalloc_loaded"]

#: Set to "0" to keep the system allocator; set to a path to use that library.
ENV_SWITCH = "EALA_TCMALLOC"

_SEARCH = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc.so.4",
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/local/lib/libtcmalloc.so*",
    "/opt/homebrew/lib/libtcmalloc.dylib",
)


def find_tcmalloc() -> str | None:
    """Path of an installed tcmalloc shared library (or `$EALA_TCMALLOC` if it names one)."""
    chosen = os.environ.get(ENV_SWITCH, "")
    if chosen and chosen != "1":
        return chosen if chosen != "0" and os.path.isfile(chosen) else None
    for pattern in _SEARCH:
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[0]
    return None


def tcmalloc_loaded() -> bool:
    """Whether this process runs with tcmalloc preloaded."""
    return "tcmalloc" in os.environ.get("LD_PRELOAD", "")


def reexec_with_tcmalloc(module: str, argv: Sequence[str] | None = None) -> None:
    """Restart `python -m module argv...` under tcmalloc, once; returns when nothing is to be done.

    Call it first thing in a `main()`, before JAX is imported. Prints one line saying which
    allocator runs, so logs record it.
    """
    if os.environ.get(ENV_SWITCH) == "0" or tcmalloc_loaded():
        if tcmalloc_loaded():
            print(f"allocator: tcmalloc ({os.environ['LD_PRELOAD']})", file=sys.stderr)
        return
    library = find_tcmalloc()
    if library is None:
        print(
            "allocator: system malloc (tcmalloc not found; `apt-get install libgoogle-perftools4`"
            " makes CPU training faster)",
            file=sys.stderr,
        )
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    env.setdefault("TCMALLOC_RELEASE_RATE", "0")
    args = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *args], env)


if __name__ == "__main__":
    # `python -m eala_jax.allocator`: say which allocator an entry point would run with.
    reexec_with_tcmalloc("eala_jax.allocator")
    print("tcmalloc" if tcmalloc_loaded() else "system malloc")
