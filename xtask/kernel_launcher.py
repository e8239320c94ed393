"""Starts the course's Rust kernel (evcxr_jupyter) in a warm build directory.

Usage, as the `rust` kernel spec's argv (`cargo xtask setup` writes it):

    python kernel_launcher.py POOL_DIR SLOTS -- evcxr_jupyter --control_file {connection_file}

Why: evcxr compiles every `:dep` crate (the course's `lab`, librdkafka) in its
build directory, EVCXR_TMPDIR. Left unset, each kernel gets a fresh temporary
one and compiles all of it again: minutes, in every new or restarted kernel.
This launcher gives the kernel one of a few lasting directories instead,
POOL_DIR/1 .. POOL_DIR/SLOTS, which `cargo xtask course` warmed once, so the
first `:dep` takes seconds.

Two kernels must never build in one directory at the same time (they would
overwrite each other's crate), so each slot has a lock file, POOL_DIR/N.lock.
The kernel takes it with flock and holds it for its whole life: the locked
descriptor is passed on through exec to evcxr_jupyter, and the kernel's own
children inherit it too, so the lock is released only when all of them are
gone, however they end (no stale lock after a crash or a kill).
If every slot is taken, the kernel builds in a fresh temporary directory, as
evcxr does by default, and says so on stderr (the terminal of JupyterLab).

If EVCXR_TMPDIR is already set (the headless notebook runner and the warm-up
set it), it is used as it is: whoever set it takes care of exclusivity.
"""

from __future__ import annotations

import fcntl
import os
import sys


def take_slot(pool: str, slots: int) -> tuple[str, int] | None:
    """The first free slot, locked: (its directory, the locked descriptor)."""
    os.makedirs(pool, exist_ok=True)
    for n in range(1, slots + 1):
        fd = os.open(os.path.join(pool, f"{n}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another kernel has it
            os.close(fd)
            continue
        directory = os.path.join(pool, str(n))
        os.makedirs(directory, exist_ok=True)
        return directory, fd
    return None


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--" or not argv[1].isdigit():
        print("usage: kernel_launcher.py POOL_DIR SLOTS -- KERNEL [ARGS...]", file=sys.stderr)
        return 2
    pool, slots, kernel = argv[0], int(argv[1]), argv[3:]
    if not os.environ.get("EVCXR_TMPDIR"):
        taken = take_slot(pool, slots)
        if taken is None:
            print(f"kafka-delivery-course: all {slots} warm Rust build directories in {pool} "
                  "are in use by other kernels; this kernel builds in a fresh temporary "
                  "directory, so its first `:dep` cell takes minutes. Shut down a kernel "
                  "you no longer need to free one.", file=sys.stderr, flush=True)
        else:
            directory, fd = taken
            os.set_inheritable(fd, True)  # survives exec: the kernel holds the lock
            os.environ["EVCXR_TMPDIR"] = directory
    try:
        os.execvp(kernel[0], kernel)
    except OSError as e:
        print(f"kafka-delivery-course: cannot start {kernel[0]} ({e}); "
              "run `cargo xtask setup` to install the Rust kernel", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
