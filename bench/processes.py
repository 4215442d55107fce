"""The server's processes and their memory, for the memory and soak benches.

The server is this process (the API, with the bench's own small client) and every process under it: Ray's
gcs_server and raylet, Ray's agents, and the worker processes, one per actor. USS (pages only that process
maps) and PSS (its own pages plus its share of every shared one) add up across processes without counting
a shared page twice; RSS does not, and is kept per process only to follow one process over time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

MIB = 2**20
# Ray titles an actor's worker process "ray::[<actor name>:]<class name>[.<method>]", an unused one "ray::IDLE".
WORKER_KINDS = {"RegionActorProcess": "region_actor", "StreamHostProcess": "stream_host", "IDLE": "idle_worker"}


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    pid: int
    kind: str  # api, gcs_server, raylet, region_actor, stream_host, idle_worker, a Ray agent, or the program
    rss_mib: float
    uss_mib: float
    pss_mib: float


def kind_of(process: psutil.Process, root_pid: int) -> str:
    if process.pid == root_pid:
        return "api"
    cmdline = process.cmdline()
    title = cmdline[0] if cmdline else process.name()
    if title.startswith("ray::"):
        name = title.removeprefix("ray::").split(".", 1)[0].rsplit(":", 1)[-1]
        return WORKER_KINDS.get(name, name)  # else one of Ray's own agents
    for name in ("gcs_server", "raylet"):
        if name in Path(title).name:
            return name
    scripts = [Path(part).stem for part in cmdline[1:3] if part.endswith(".py")]
    return scripts[0] if scripts else Path(title).name


def server_processes(root_pid: int | None = None) -> list[ProcessMemory]:
    """Every live process of the tree under ``root_pid`` (default: this one), with its memory."""
    root = psutil.Process(root_pid or os.getpid())
    out = []
    for process in [root, *root.children(recursive=True)]:
        try:
            memory = process.memory_full_info()
            kind = kind_of(process, root.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # it ended while we looked
        out.append(ProcessMemory(process.pid, kind, memory.rss / MIB, memory.uss / MIB, memory.pss / MIB))
    return out


def totals(rows: list[ProcessMemory]) -> dict[str, float]:
    return {"uss_mib": round(sum(r.uss_mib for r in rows), 1), "pss_mib": round(sum(r.pss_mib for r in rows), 1),
            "processes": len(rows)}


def by_kind(rows: list[ProcessMemory]) -> dict[str, dict[str, float]]:
    """Per kind of process: how many, and their summed USS and PSS."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = out.setdefault(row.kind, {"count": 0, "uss_mib": 0.0, "pss_mib": 0.0})
        entry["count"] += 1
        entry["uss_mib"] += row.uss_mib
        entry["pss_mib"] += row.pss_mib
    return {kind: {k: round(v, 1) for k, v in entry.items()} for kind, entry in sorted(out.items())}


def mapped_extensions(pid: int) -> dict[str, int]:
    """Compiled extension modules mapped into a process, counted by top-level package: what it imported
    (a Ray worker's modules cannot be listed from outside; their shared objects can)."""
    seen: set[str] = set()
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.rsplit(" ", 1)[-1].strip()
            if "site-packages/" in path and (".so" in path):
                seen.add(path)
    out: dict[str, int] = {}
    for path in seen:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        out[package] = out.get(package, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))
