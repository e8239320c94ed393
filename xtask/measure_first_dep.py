#!/usr/bin/env python3
"""How long a notebook's first `:dep` cell takes in a kernel that JupyterLab
would start: in a new kernel, then again after a kernel restart.

Usage (with the course venv's python, which has jupyter_client):

    ~/.cache/kafka-delivery-course/venv/bin/python xtask/measure_first_dep.py [--hold N] [NOTEBOOK...]

Default: every notebook in notebooks/. The kernel is started as JupyterLab
starts it: jupyter_client's KernelManager with the kernel spec "rust" (so
through the course's kernel launcher), cwd = the notebook's folder, and no
EVCXR_TMPDIR of its own. For each notebook it prints the wall time of the
first code cell holding a `:dep` line (read from the notebook), and the build
directory the kernel got. --hold N first starts N idle kernels that stay up
meanwhile, as other open notebooks would: the measured kernels then get the
next build directory of the pool (or, with all taken, a fresh one: cold).
Exit status 1 if a cell failed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

TIMEOUT = 1800.0


def dep_cell(notebook: Path) -> str | None:
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and any(
                line.lstrip().startswith(":dep ") for line in cell.source.splitlines()):
            return cell.source
    return None


def build_dir(km) -> str:  # noqa: ANN001
    """The kernel process's EVCXR_TMPDIR (Linux: read from /proc)."""
    try:
        pid = km.provisioner.process.pid
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (AttributeError, OSError):
        return "?"
    for item in env:
        if item.startswith(b"EVCXR_TMPDIR="):
            return item.split(b"=", 1)[1].decode()
    return "a fresh temporary directory"


def timed(kc, code: str) -> tuple[float, str]:  # noqa: ANN001
    errors: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "error":
            errors.append(msg["content"].get("evalue", ""))

    started = time.monotonic()
    reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=hook,
                                   store_history=False)
    elapsed = time.monotonic() - started
    status = reply["content"]["status"]
    if errors:
        status += ": " + " ".join(errors)[:300]
    return elapsed, status


def measure(notebook: Path) -> bool:
    from jupyter_client.manager import KernelManager

    code = dep_cell(notebook)
    if code is None:
        print(f"{notebook.name}: no `:dep` cell")
        return True
    km = KernelManager(kernel_name="rust")
    km.start_kernel(cwd=str(notebook.parent))
    ok = True
    try:
        for label in ("new kernel", "after restart"):
            if label == "after restart":
                km.restart_kernel(now=False)  # what JupyterLab's "Restart Kernel" does
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=120)
            seconds, status = timed(kc, code)
            kc.stop_channels()
            ok = ok and status == "ok"
            print(f"{notebook.name:28} {label:14} first :dep {seconds:7.1f} s  "
                  f"[{status}]  build dir: {build_dir(km)}", flush=True)
    finally:
        km.shutdown_kernel(now=False)
    return ok


def main(argv: list[str]) -> int:
    if os.environ.pop("EVCXR_TMPDIR", None):
        print("(EVCXR_TMPDIR was set here; JupyterLab does not set it, so it is dropped)")
    from jupyter_client.manager import KernelManager

    hold = 0
    if argv[:1] == ["--hold"] and len(argv) > 1 and argv[1].isdigit():
        hold, argv = int(argv[1]), argv[2:]
    root = Path(__file__).resolve().parent.parent
    notebooks = [Path(a).resolve() for a in argv] or sorted((root / "notebooks").glob("*.ipynb"))
    held = []
    try:
        for _ in range(hold):
            km = KernelManager(kernel_name="rust")
            km.start_kernel(cwd=str(root / "notebooks"))
            time.sleep(1)  # let its launcher take a build directory first
            print(f"holding an idle kernel; build dir: {build_dir(km)}")
            held.append(km)
        results = [measure(nb) for nb in notebooks]
    finally:
        for km in held:
            km.shutdown_kernel(now=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
