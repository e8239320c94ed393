#!/usr/bin/env python3
"""What a learner sees when they use a notebook the wrong way: a measurement.

Starts the course's Rust kernel the way JupyterLab does (kernel `rust`, the
warm build directories of `cargo xtask course`), with the notebooks/ folder as
its working directory, and runs cells of notebooks/08-crashes.ipynb in the
orders a learner might: out of order, twice, interrupted, against a wrong
address, and with the brokers stopped in the middle of a cell. It prints, for
each step, the wall time and what the cell printed, and at the end whether
any child process of the lab (a crash scenario's worker, an exercise program)
was left running.

    cargo xtask kafka up            # the cells use 127.0.0.1:9092
    cargo xtask kafka up --three    # stopped and started again by the last step
    ~/.cache/kafka-delivery-course/venv/bin/python xtask/measure_mistakes.py

It takes several minutes (the last step waits for the three brokers to start
again) and is not part of the tests: the tests check each mechanism on its own
(tests/no_broker.rs, the runner's fixtures, `support::local`'s unit tests).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "08-crashes.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text())
    return ["".join(c["source"]) for c in nb["cells"]]


class Kernel:
    def __init__(self) -> None:
        self.km = KernelManager(kernel_name="rust")
        self.km.start_kernel(cwd=str(REPO / "notebooks"))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=300)
        KERNEL_PID.append(self.km.provisioner.pid)

    def run(self, code: str, interrupt_after: float | None = None,
            then: "callable | None" = None, after: float | None = None) -> tuple[float, str]:
        """Runs `code`; returns (seconds, everything it printed)."""
        msg_id = self.kc.execute(code)
        started = time.monotonic()
        timers = []
        if interrupt_after is not None:
            timers.append(threading.Timer(interrupt_after, self.km.interrupt_kernel))
        if then is not None and after is not None:
            timers.append(threading.Timer(after, then))
        for t in timers:
            t.start()
        out: list[str] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=900)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                data = content["data"]
                text = data.get("text/plain") or re.sub(r"<[^>]+>", " ", data.get("text/html", ""))
                out.append(re.sub(r"[ \t]+", " ", text) + "\n")
            elif kind == "error":
                out.append("\n".join(content.get("traceback") or [content.get("evalue", "")]) + "\n")
            elif kind == "status" and content["execution_state"] == "idle":
                break
        for t in timers:
            t.cancel()
        return time.monotonic() - started, ANSI.sub("", "".join(out)).strip()

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def set_bootstrap(address: str) -> str:
    # What a learner would do in a cell (set_var is unsafe from Rust 2024 on).
    return f'unsafe {{ std::env::set_var("KAFKA_BOOTSTRAP_SERVERS", "{address}") }}'


KERNEL_PID: list[int] = []


def lab_children() -> list[str]:
    """The lab's worker and exercise processes below the kernel (only ours:
    other users of the machine may run the lab too)."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in ps.splitlines() if len(line.split(None, 2)) == 3]
    parent = {int(pid): int(ppid) for pid, ppid, _ in rows}

    def below_kernel(pid: int) -> bool:
        while pid > 1:
            if pid in KERNEL_PID:
                return True
            pid = parent.get(pid, 1)
        return False

    return [f"{pid} {args}" for pid, _, args in rows
            if re.search(r"/lab worker |/(exercises|solutions) ", args) and below_kernel(int(pid))]


def show(step: str, seconds: float, text: str, limit: int = 1200) -> None:
    if len(text) > limit:
        text = text[:limit // 2] + "\n[...]\n" + text[-limit // 2:]
    print(f"### {step} ({seconds:.1f} s)\n```\n{text}\n```\n", flush=True)


def xtask(*args: str) -> None:
    subprocess.run(["cargo", "xtask", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    src = cells()
    dep, setup, alo_cell, eos_cell, chart_cell = src[1], src[2], src[4], src[9], src[11]
    k = Kernel()
    try:
        show("fresh kernel: the chart cell first, before anything", *k.run(chart_cell))
        show("then the :dep cell", *k.run(dep))
        show("the chart cell again, still out of order", *k.run(chart_cell))
        show("the setup cell", *k.run(setup))
        t, text = k.run(alo_cell)
        show("'C: at-least-once' cell", t, text)
        first_topic = k.run("alo.input_topic.clone()")[1]
        t, again = k.run(alo_cell)
        show("the same cell again", t, again)
        print(f"input topics of the two runs: {first_topic} then {k.run('alo.input_topic.clone()')[1]}\n")
        show("a learner's variable", *k.run("let mine = 42;\nmine"))

        show("a cell points the lab at a wrong address", *k.run(set_bootstrap("127.0.0.1:9999")))
        show("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9999, then the setup cell", *k.run(setup))
        show("... and the 'C: at-least-once' cell", *k.run(alo_cell))
        show("the learner's variable after those errors", *k.run("mine"))
        k.run(set_bootstrap("127.0.0.1:9092"))

        before: list[list[str]] = []

        def interrupt_once_a_worker_runs() -> None:
            # Interrupts as soon as the cell has a worker process, so that the
            # interrupt lands while a child is writing to Kafka.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not before:
                if children := lab_children():
                    before.append(children)
                    k.km.interrupt_kernel()
                time.sleep(0.2)

        t, text = k.run(eos_cell, then=interrupt_once_a_worker_runs, after=0.5)
        show("'B: exactly-once' cell, interrupted once its worker runs", t, text)
        print(f"lab child processes when the interrupt was sent: {before[0] if before else 'none seen in 60 s'}\n", flush=True)
        time.sleep(2)
        left = lab_children()
        print(f"lab child processes 2 s after the interrupt: {left or 'none'}\n", flush=True)
        show("the learner's variable after the interrupt", *k.run("mine"))
        show("the setup cell after the interrupt", *k.run(setup))

        three = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
        k.run(set_bootstrap(three))
        k.run("let mine = 42;")
        show("pointed at the three-broker cluster: the setup cell", *k.run(setup))
        stopped: list[float] = []

        def stop_brokers() -> None:
            stopped.append(time.monotonic())
            xtask("kafka", "down", "--three")
            stopped.append(time.monotonic())

        t, text = k.run(alo_cell, then=stop_brokers, after=5.0)
        now = time.monotonic()
        show("'C: at-least-once' cell, every broker stopped 5 s in "
             f"(error {now - stopped[0]:.1f} s after the stop began, "
             f"{now - stopped[-1]:.1f} s after the last broker was gone)"
             if len(stopped) == 2 else "'C' cell (the brokers were not stopped in time)", t, text)
        time.sleep(2)
        print(f"lab child processes after the broker stop: {lab_children() or 'none'}\n", flush=True)
        show("the learner's variable after the broker stop", *k.run("mine"))
    finally:
        k.stop()
        xtask("kafka", "up", "--three")
    return 0


if __name__ == "__main__":
    sys.exit(main())
