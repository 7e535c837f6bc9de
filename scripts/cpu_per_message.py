"""Print the CPU time and wall time per message of the bench's mix, run in order.

``python scripts/cpu_per_message.py``: intake then delivery of 150 messages (no mail
lane), local store and mailserver mode, three rounds, medians. CPU time moves less
than the rates with the other work on the machine; it is what a profile change shows.
A second line per mode splits it as the spool path does: intake alone, then the
delivery jobs (store, or compose and queue), then the rest (sending).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from ums_core.app import App  # noqa: E402
from ums_core.intake import receive_message  # noqa: E402
from ums_core.queue import run_due_jobs  # noqa: E402

ROUNDS = 3


def measure(home: str, mix: list) -> tuple[float, float]:
    """Return CPU and wall milliseconds per message for MIX into HOME."""
    app = App.open(home)
    cpu, wall = time.process_time(), time.perf_counter()
    for incoming in mix:
        receive_message(app, incoming, run_now=True)
    run_due_jobs(app)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    app.close()
    return cpu / len(mix) * 1000, wall / len(mix) * 1000


def measure_steps(home: str, mix: list) -> tuple[float, float, float]:
    """Return CPU milliseconds per message of intake, delivery jobs and the rest."""
    app = App.open(home)
    start = time.process_time()
    for incoming in mix:
        receive_message(app, incoming, run_now=False)
    taken = time.process_time()
    run_due_jobs(app, kinds=("deliver_message",))
    delivered = time.process_time()
    run_due_jobs(app)
    done = time.process_time()
    app.close()
    steps = (taken - start, delivered - taken, done - delivered)
    return tuple(step / len(mix) * 1000 for step in steps)


def main() -> None:
    """Measure both modes and print one line each."""
    with tempfile.TemporaryDirectory(prefix="ums-cpu-") as root:
        samples = bench.write_samples(os.path.join(root, "samples"))
        mix = bench.build_mix(samples, bench.MESSAGES)
        sink, port = bench.start_sink_process()
        try:
            found = {"local": [], "mail": []}
            steps = {"local": [], "mail": []}
            for run in range(ROUNDS):
                for mode, sink_port in (("local", None), ("mail", port)):
                    home = bench.make_instance(root, f"{mode}{run}", sink_port)
                    found[mode].append(measure(home, mix))
                    home = bench.make_instance(root, f"{mode}-steps{run}", sink_port)
                    steps[mode].append(measure_steps(home, mix))
        finally:
            bench.stop_process(sink)
    for mode, values in found.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"{mode}: {cpu:.2f} ms CPU, {wall:.2f} ms wall per message")
        parts = [statistics.median(v[i] for v in steps[mode]) for i in range(3)]
        print(
            f"{mode}, as from the spool: intake {parts[0]:.2f}, delivery jobs"
            f" {parts[1]:.2f}, the rest {parts[2]:.2f} ms CPU per message"
        )


if __name__ == "__main__":
    main()
