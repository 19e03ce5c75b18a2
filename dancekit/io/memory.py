"""How much memory this machine can give a job: checked before big allocations, not after."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes available now (MemAvailable, capped by a cgroup limit); None where it cannot be read.

    ``DANCEKIT_MEMORY_LIMIT`` (bytes) overrides it, e.g. to keep a cron job within a share of a node.
    """
    if os.environ.get("DANCEKIT_MEMORY_LIMIT"):
        return int(float(os.environ["DANCEKIT_MEMORY_LIMIT"]))
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and available is not None:
            available = min(available, int(text))
    return available


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"
