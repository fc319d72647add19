"""The machine's pace: the same small piece of the services' own work, timed, so that figures
taken at different hours can be compared.

    python -m bench.pace

This 2-core machine's speed drifts by a factor of three from hour to hour (the same consumer
cost 0.9 ms an event one evening and 0.3 ms the next night) while /proc/stat shows no steal
time: whatever slows it is invisible from inside. So each benchmark prints the pace before
and after it runs, and a figure is compared only with figures taken at a similar pace. The
work is what every service does to every event: an envelope serialised to JSON, parsed back
and its payload validated (pydantic-core and the interpreter, no I/O).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench import tickets

TICKETS = 100
SAMPLES = 9
GAP_S = 0.2


def pace_ms(samples: int = SAMPLES) -> float:
    """Milliseconds of CPU that 1,000 tickets' events take to be serialised, parsed and validated.

    The pace also flips between two levels from one second to the next (about 17 and 28 ms
    on 24 November): the median of `samples` short timings 0.2 s apart, each the best of two,
    in the thread's own CPU time so that a busy machine's queueing does not count.
    """
    envelopes = tickets.received(TICKETS, prefix="pace")
    timings = []
    for i in range(samples):
        if i:
            time.sleep(GAP_S)
        best = math.inf
        for _ in range(2):
            started = time.thread_time()
            for envelope in envelopes:
                type(envelope).from_bytes(envelope.to_bytes()).parsed()
            best = min(best, time.thread_time() - started)
        timings.append(best)
    return statistics.median(timings) * 1000 * 1000 / TICKETS


def describe(ms: float) -> str:
    return f"{ms:.1f} ms per 1,000 events serialised, parsed and validated (bench.pace; lower is faster)"


@contextmanager
def paced() -> Iterator[None]:
    """Print the pace before and after the benchmark run inside."""
    print(f"pace before: {describe(pace_ms())}", flush=True)
    yield
    print(f"pace after: {describe(pace_ms())}")


def main() -> int:
    print(f"pace: {describe(pace_ms())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
