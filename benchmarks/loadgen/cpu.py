"""CPU use of the load generator, the gunicorn workers and the whole machine (Linux /proc)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _process_seconds(pid: int, with_reaped_children: bool = False) -> float:
    """user+system CPU seconds of a process (plus its reaped children); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3 of stat): utime is field 14, cutime field 16.
    used = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def _machine_busy_idle() -> tuple[float, float]:
    """(busy, idle) CPU seconds of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICKS, idle / TICKS


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one moment."""

    wall: float
    generator: float
    server: float
    machine_busy: float
    machine_idle: float


def sample(master_pid: int | None, worker_pids: list[int]) -> CpuSample:
    """Read every counter now."""
    server = 0.0
    if master_pid is not None:
        server = _process_seconds(master_pid, with_reaped_children=True)
        server += sum(_process_seconds(pid) for pid in worker_pids)
    busy, idle = _machine_busy_idle()
    return CpuSample(time.monotonic(), time.process_time(), server, busy, idle)


def usage(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Cores used on average between two samples, and the machine's core count and idle share."""
    wall = max(after.wall - before.wall, 1e-9)
    busy = after.machine_busy - before.machine_busy
    idle = after.machine_idle - before.machine_idle
    return {
        "generator_cores": (after.generator - before.generator) / wall,
        "server_cores": (after.server - before.server) / wall,
        "machine_cores": os.cpu_count() or 1,
        "machine_idle_share": idle / max(busy + idle, 1e-9),
        "generator_cpu_s": after.generator - before.generator,
    }
