#!/usr/bin/env python3
"""Run one Jupyter notebook headless on the evcxr Rust kernel and fail loudly.

Usage:
    run_notebook.py NOTEBOOK.ipynb --out EXECUTED.ipynb
                    [--timeout SECONDS_PER_CELL] [--kernel rust]
                    [--evcxr-tmpdir DIR] [--cwd DIR] [--solutions]

Exit status: 0 every code cell ran to completion; 1 a cell failed (report on
stderr); 2 the notebook could not be run at all (kernel not installed, no
rustc, unreadable notebook, bad arguments).

Why not `jupyter nbconvert --execute`: evcxr (0.22) catches a panic in a cell
and swallows an `Err` returned through `?`. It prints them to the cell's stderr
stream and answers the execute request with status "ok", so nbconvert exits 0.
For `?` it prints nothing but the error's Display text (for
`"x".parse::<i32>()?` just "invalid digit found in string"), which no pattern
can tell apart from an ordinary `eprintln!`. So this runner:

  * runs the code cells one by one with nbclient, cwd = the notebook's folder
    (or --cwd: the kernel warm-up runs a generated notebook as if it were in
    notebooks/, so that its relative `:dep` path is the learner's);
  * puts a marker statement `let __nbrunner_cell_N_ok: bool = true;` on its own
    line before the first line of Rust code of cell N (after any leading
    `:dep`-style commands, `!` lines, blank lines, `//` comments and `#![..]`
    attributes). evcxr
    keeps the variables a cell defined only if the cell ran to its end: after a
    panic or an early return through `?` it drops them. A hidden `:type
    __nbrunner_cell_N_ok` (not recorded in the notebook) then tells whether
    cell N completed. The executed notebook keeps the original source; if the
    cell does not compile, it is run once more unchanged (nothing of it ran) so
    that the recorded compiler message has the cell's own line numbers;
  * fails a cell when (see `judge_cell`):
      1. the kernel replied status "error", or the cell has an output of type
         "error" (compile errors, evcxr command errors, and "Subprocess
         terminated with status ..." when the code called process::exit or
         aborted);
      2. a stream output has a line `thread '<name>' [(<id>)] panicked at ...`
         (the Rust panic message; also catches a panic in a spawned thread);
      3. the marker variable is missing after the cell: a panic or an `Err`
         returned through `?`. The report quotes the cell's stderr, whose last
         line is the error as evcxr printed it.
    Anything else on stderr (eprintln! progress lines, cargo's "Compiling ..."
    lines, which go to the kernel log anyway) is not a failure;
  * stops at the first failing cell, except in cells tagged
    "raises-exception" (nbclient's convention): their failure is expected,
    recorded and execution goes on;
  * always writes the executed notebook to --out, and the kernel process's own
    output (cargo progress, evcxr diagnostics) next to it as *.kernel.log.

evcxr keeps compiled dependencies in EVCXR_TMPDIR. Each notebook gets its own
fixed directory (--evcxr-tmpdir, else $EVCXR_TMPDIR, else
~/.cache/kafka-delivery-course/evcxr/<notebook name>) so that reruns are fast;
two kernels running at the same time must not share one.

On Linux the kernel is started with LD_LIBRARY_PATH prefixed by
`rustc --print target-libdir`: evcxr loads each cell as a cdylib linked to
libstd-*.so, and the relative RUNPATH rustc writes into it is one directory
off (it is computed for target/<triple>/debug/deps/, evcxr loads the copy in
target/<triple>/debug/). That only works by luck when EVCXR_TMPDIR and
~/.rustup have no common parent besides /; under ~/.cache it fails with
"dlopen failed" and the kernel dies before it starts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_RUN = 2

SETUP_HINT = "run `cargo xtask setup` (it installs evcxr_jupyter and its Jupyter kernelspec)"
ALLOW_TAG = "raises-exception"
MARKER = "__nbrunner_cell_{n}_ok"
HIDDEN_TIMEOUT = 60.0

# The Rust panic message of the default hook: "thread 'main' panicked at
# src/lib.rs:3:1:" and, since Rust 1.9x, "thread '<unnamed>' (22723) panicked at".
PANIC_RE = re.compile(r"^thread '[^'\n]*'(?: \(\d+\))? panicked at ", re.M)
# How evcxr recognises a command line at the top of a cell (code_block.rs).
EVCXR_COMMAND_RE = re.compile(r"^ *(:[^ ]*)( +(.*))?$")
# A crate-level attribute such as `#![allow(unused)]`: it must stay before statements.
INNER_ATTRIBUTE_RE = re.compile(r"^\s*#!\[.*\]\s*$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


def as_text(value: object) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def add_marker(source: str, n: int) -> tuple[str, str] | None:
    """Return (source with the marker line, marker name), or None if the cell
    has no Rust code (only commands, comments, blank lines)."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if (line.startswith("!") or line.startswith("//") or not line.strip()
                or EVCXR_COMMAND_RE.match(line) or INNER_ATTRIBUTE_RE.match(line)):
            continue
        name = MARKER.format(n=n)
        lines.insert(i, f"let {name}: bool = true;")
        return "\n".join(lines), name
    return None


def stream_text(cell: dict, names: tuple[str, ...] = ("stdout", "stderr")) -> str:
    return strip_ansi("".join(as_text(o.get("text")) for o in cell.get("outputs", [])
                              if o.get("output_type") == "stream" and o.get("name") in names))


def error_outputs(cell: dict) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def error_output_text(output: dict) -> str:
    lines = [strip_ansi(as_text(line)) for line in output.get("traceback") or []]
    text = "\n".join(lines).strip()
    if not text:
        text = f"{output.get('ename', '')}: {output.get('evalue', '')}".strip(": ")
    return text or "(the kernel reported an error without text)"


def nothing_ran(cell: dict) -> bool:
    """True if the cell's errors are compile/command errors, i.e. none of its
    code ran. evcxr sends runtime failures ("Subprocess terminated with
    status ...") with a traceback that is exactly [evalue]; compile errors come
    with a rendered report."""
    errors = error_outputs(cell)
    return bool(errors) and all(
        [as_text(t) for t in (o.get("traceback") or [])] != [as_text(o.get("evalue"))]
        for o in errors)


def judge_cell(cell: dict, reply_status: str | None,
               completed: bool | None) -> tuple[str, str] | None:
    """(kind, text) if this executed code cell failed, else None.

    completed: whether the marker variable survived (None: not checked)."""
    errors = error_outputs(cell)
    if errors:
        kind = "compile error" if nothing_ran(cell) else "error"
        return kind, "\n\n".join(error_output_text(o) for o in errors)
    text = stream_text(cell)
    match = PANIC_RE.search(text)
    if match:
        return "panic", text[match.start():].strip()
    if reply_status == "error":
        return "error", "(the kernel answered status \"error\" without an error output)"
    if completed is False:
        stderr = stream_text(cell, ("stderr",)).strip()
        if stderr:
            return ("error returned by `?` (the cell stopped early)",
                    "evcxr printed to stderr (last line = the error):\n" + tail(stderr, 20))
        return ("the cell stopped early",
                "the cell did not run to its end (an `Err` returned by `?` or a panic) "
                "and printed nothing to stderr")
    return None


# An exercise's verdict line: "✘ ..." (wrong) or "… ..." (not attempted).
VERDICT_RE = re.compile(r"^\s*(✘|…) ", re.M)


def judge_exercise(cell: dict) -> tuple[str, str] | None:
    """With --solutions, every exercise in the notebook must pass: a verdict
    line of a wrong or unattempted exercise in any output fails the cell."""
    texts = [stream_text(cell)]
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        texts.append(as_text(data.get("text/plain")))
    match = VERDICT_RE.search(strip_ansi("\n".join(texts)))
    if match:
        text = "\n".join(texts)
        return ("exercise not passed with its solution filled in",
                tail(text[max(0, match.start() - 200):], 20))
    return None


# --- Reporting ---------------------------------------------------------------

MAX_SOURCE_LINES = 6
MAX_ERROR_LINES = 60


def head(text: str, limit: int) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more lines, see the executed notebook)"]
    return "\n".join(lines)


def tail(text: str, limit: int) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > limit:
        lines = [f"... ({len(lines) - limit} earlier lines, see the executed notebook)"] + lines[-limit:]
    return "\n".join(lines)


def file_tail(path: Path, limit: int = 15) -> str:
    try:
        return tail(path.read_text(errors="replace"), limit)
    except OSError:
        return ""


def report_failure(nb_name: str, code_no: int, cell: dict | None, kind: str, text: str) -> None:
    err = sys.stderr
    print(f"FAILED: {nb_name}, code cell {code_no}: {kind}", file=err)
    if cell is not None:
        print("--- cell source " + "-" * 44, file=err)
        print(head(as_text(cell.get("source")), MAX_SOURCE_LINES), file=err)
    print("--- error " + "-" * 50, file=err)
    print(head(text, MAX_ERROR_LINES), file=err)
    print("-" * 60, file=err)


def cannot_run(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


# --- Kernel helpers ----------------------------------------------------------


async def hidden_execute(kc, code: str, timeout: float) -> tuple[str, list[dict]]:
    """Run `code` without recording it. Returns (reply status, stream outputs
    seen meanwhile). evcxr sends a cell's output lines asynchronously and tags
    them with the latest request, so stream lines that arrive now belong to
    the cell just run."""
    from queue import Empty

    from jupyter_core.utils import ensure_async

    msg_id = await ensure_async(kc.execute(code, store_history=False, allow_stdin=False,
                                           stop_on_error=False))
    deadline = time.monotonic() + timeout
    streams: list[dict] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer to {code!r} within {timeout:g} s")
        try:
            msg = await ensure_async(kc.get_iopub_msg(timeout=remaining))
        except Empty:
            raise TimeoutError(f"no answer to {code!r} within {timeout:g} s") from None
        mtype, content = msg["msg_type"], msg["content"]
        if mtype == "stream":
            streams.append({"name": content.get("name", "stdout"), "text": content.get("text", "")})
        elif (mtype == "status" and content.get("execution_state") == "idle"
              and msg["parent_header"].get("msg_id") == msg_id):
            break
    while True:
        remaining = max(deadline - time.monotonic(), 1.0)
        try:
            reply = await ensure_async(kc.get_shell_msg(timeout=remaining))
        except Empty:
            raise TimeoutError(f"no reply to {code!r} within {timeout:g} s") from None
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"].get("status", "error"), streams


def rust_target_libdir(cwd: Path) -> str:
    out = subprocess.run(["rustc", "--print", "target-libdir"], cwd=cwd, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


# --- Main --------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Execute a notebook on the evcxr Rust kernel; exit 1 if a cell fails, "
        "including panics and `?` errors that evcxr only prints.")
    p.add_argument("notebook", type=Path, help="the .ipynb to run (cwd = its directory)")
    p.add_argument("--out", type=Path, required=True,
                   help="where to write the executed notebook (written even on failure)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds allowed for each cell (default: 900; a cell that compiles "
                   "dependencies with :dep can be slow the first time)")
    p.add_argument("--kernel", default="rust", help="kernelspec name (default: rust)")
    p.add_argument("--evcxr-tmpdir", type=Path, default=None,
                   help="EVCXR_TMPDIR for this kernel (default: $EVCXR_TMPDIR, else "
                   "~/.cache/kafka-delivery-course/evcxr/<notebook name>)")
    p.add_argument("--solutions", action="store_true",
                   help="run each exercise cell as its solution fills it in (the cell's "
                   "metadata \"solution\"), grade write-code exercises with the course's "
                   "solutions (COURSE_EXERCISES=solutions), and fail any cell whose output "
                   "holds a verdict that is wrong (✘) or not attempted (…)")
    p.add_argument("--cwd", type=Path, default=None,
                   help="the kernel's working directory (default: the notebook's folder)")
    return p.parse_args(argv)


def default_tmpdir(notebook: Path) -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kafka-delivery-course" / "evcxr" / notebook.stem


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.solutions:
        # The kernel inherits it: lab::exercise::grade then runs the solutions.
        os.environ["COURSE_EXERCISES"] = "solutions"

    try:
        import nbformat
        from jupyter_client.kernelspec import NoSuchKernel
        from jupyter_core.utils import run_sync
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as e:
        return cannot_run(f"missing Python package ({e}); {SETUP_HINT}, or "
                          "`pip install -r xtask/requirements-test.txt` in a venv")

    nb_path: Path = args.notebook.resolve()
    nb_name = nb_path.name
    out_path: Path = args.out.resolve()
    log_path = out_path.with_name(out_path.stem + ".kernel.log")
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except FileNotFoundError:
        return cannot_run(f"notebook not found: {args.notebook}")
    except Exception as e:  # noqa: BLE001 - any parse error is reported plainly
        return cannot_run(f"cannot read notebook {args.notebook}: {e}")

    if args.evcxr_tmpdir is not None:
        tmpdir = args.evcxr_tmpdir
    elif os.environ.get("EVCXR_TMPDIR"):
        tmpdir = Path(os.environ["EVCXR_TMPDIR"])
    else:
        tmpdir = default_tmpdir(nb_path)
    tmpdir = tmpdir.resolve()
    try:
        tmpdir.mkdir(parents=True, exist_ok=True)
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return cannot_run(f"cannot create a directory: {e}")

    # The kernel process inherits this environment.
    os.environ["EVCXR_TMPDIR"] = str(tmpdir)
    if sys.platform.startswith("linux"):
        try:
            libdir = rust_target_libdir(tmpdir)
        except (OSError, subprocess.CalledProcessError) as e:
            return cannot_run(f"`rustc --print target-libdir` failed ({e}); is Rust installed? "
                              f"{SETUP_HINT}")
        old = os.environ.get("LD_LIBRARY_PATH")
        os.environ["LD_LIBRARY_PATH"] = libdir + (os.pathsep + old if old else "")

    client = NotebookClient(
        nb,
        kernel_name=args.kernel,
        timeout=args.timeout,
        startup_timeout=300,
        interrupt_on_timeout=False,
        allow_errors=False,
        resources={"metadata": {"path": str((args.cwd or nb_path.parent).resolve())}},
    )
    replies: dict[int, str] = {}

    def on_cell_executed(cell, cell_index, execute_reply, **_kw):  # noqa: ANN001
        if execute_reply:
            replies[cell_index] = execute_reply.get("content", {}).get("status")

    client.on_cell_executed = on_cell_executed

    def write_out() -> None:
        try:
            nbformat.write(nb, str(out_path))
        except OSError as e:
            print(f"warning: could not write {out_path}: {e}", file=sys.stderr)

    def run_cell(cell, index: int, count: int) -> str | None:
        """Execute one cell as recorded; return the reply status."""
        replies.pop(index, None)
        try:
            client.execute_cell(cell, index, execution_count=count)
        except CellExecutionError:
            return "error"
        return replies.get(index)

    code_no = 0
    cells_run = 0
    allowed_failures: list[str] = []
    failure: tuple[int, int, str, str] | None = None  # (cell index, code no, kind, text)
    current: int | None = None
    started = time.monotonic()
    log = open(log_path, "w")  # noqa: SIM115 - kept open for the kernel's lifetime
    try:
        with client.setup_kernel(stdout=log, stderr=log):
            info = client.wait_for_reply(client.kc.kernel_info())
            if info and "language_info" in info.get("content", {}):
                nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                code_no += 1
                if not as_text(cell.source).strip():
                    continue
                current = index
                count = client.code_cells_executed + 1
                if args.solutions and "solution" in cell.metadata:
                    # An exercise cell, run as its solution fills it in.
                    cell.source = as_text(cell.metadata["solution"])
                original = cell.source
                marked = add_marker(as_text(original), code_no)
                if marked:
                    cell.source = marked[0]
                try:
                    status = run_cell(cell, index, count)
                finally:
                    cell.source = original
                cells_run += 1
                completed = None
                if status == "error":
                    if marked and nothing_ran(cell):
                        # Record the compiler's message for the unchanged source.
                        cell.outputs = []
                        status = run_cell(cell, index, count) or "error"
                elif marked:
                    st, late = run_sync(hidden_execute)(
                        client.kc, f":type {marked[1]}", HIDDEN_TIMEOUT)
                    completed = st == "ok"
                    for s in late:
                        cell.outputs.append(nbformat.v4.new_output("stream", **s))
                found = judge_cell(cell, status, completed) or (
                    args.solutions and judge_exercise(cell))
                if found:
                    if ALLOW_TAG in cell.metadata.get("tags", []):
                        allowed_failures.append(f"code cell {code_no}: {found[0]}")
                        continue
                    failure = (index, code_no, *found)
                    break
    except NoSuchKernel:
        write_out()
        return cannot_run(f"Jupyter kernel {args.kernel!r} is not installed; {SETUP_HINT}")
    except FileNotFoundError as e:
        write_out()
        return cannot_run(f"cannot start kernel {args.kernel!r} ({e}); {SETUP_HINT}")
    except CellTimeoutError:
        failure = (current, code_no, "timeout",
                   f"the cell did not finish within {args.timeout:g} s (--timeout)")
    except (DeadKernelError, TimeoutError) as e:
        failure = (current, code_no, "kernel died",
                   f"the kernel stopped answering: {e}\nlast lines of {log_path}:\n"
                   f"{file_tail(log_path)}")
    except RuntimeError as e:
        # e.g. "Kernel died before replying to kernel_info", "Kernel didn't respond in N seconds"
        if current is None:
            write_out()
            return cannot_run(f"kernel {args.kernel!r} did not start: {e}\n"
                              f"last lines of {log_path}:\n{file_tail(log_path)}")
        failure = (current, code_no, "kernel error", str(e))
    except KeyboardInterrupt:
        write_out()
        print(f"interrupted: {nb_name}", file=sys.stderr)
        return 130
    finally:
        log.close()
    elapsed = time.monotonic() - started

    write_out()
    for note in allowed_failures:
        print(f"note: {nb_name}: expected failure in {note} (tag {ALLOW_TAG})", file=sys.stderr)
    if failure is not None:
        index, number, kind, text = failure
        cell = nb.cells[index] if index is not None else None
        if cell is not None and kind in ("timeout", "kernel died", "kernel error"):
            found = judge_cell(cell, None, None)  # it may have printed the real reason
            if found:
                text = f"{text}\n{found[1]}"
        report_failure(nb_name, number, cell, kind, text)
        print(f"FAILED: {nb_name} ({elapsed:.1f} s); executed notebook: {out_path}; "
              f"kernel log: {log_path}", file=sys.stderr)
        return EXIT_FAILED

    print(f"ok: {nb_name} ({cells_run} cells, {elapsed:.1f} s)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
