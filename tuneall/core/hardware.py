"""The CPU a run computed on: model and instruction set, recorded in provenance and in member keys.

Training on the CPU is deterministic for one machine and thread count, not across machines: another model or ISA
(AVX2 vs AVX-512 kernels) changes backward reductions in the last bits, and training amplifies them (the audit: 36 of
1,000 test predictions differ after 300 steps between thread counts). So a results directory records the CPU
(``tuneall.json``'s ``cpu``), a resume on another CPU says so in one line, and the member store's keys include
:func:`cpu_id` so a member trained elsewhere is never presented as this machine's bit-identical reuse.

Standard library only; /proc/cpuinfo where it exists (Linux), :mod:`platform` otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import platform

# Flags that select different floating-point kernels in torch/oneDNN/MKL: the ones worth naming in a warning.
_KERNEL_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "neon", "asimd",
                 "sve")


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """(model name, sorted flags) from the first processor of /proc/cpuinfo; ('', []) where unreadable."""
    model, flags = "", []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = sorted(set(value.split()))
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


@functools.lru_cache(maxsize=1)
def cpu_fingerprint() -> dict:
    """{"model", "machine" (the ISA, e.g. x86_64), "kernel_flags" (the SIMD flags that pick kernels), "flags_sha"
    (digest of every flag)}: what :data:`tuneall.json` records and resume compares."""
    model, flags = _cpuinfo()
    return {"model": model or platform.processor() or "unknown", "machine": platform.machine() or "unknown",
            "kernel_flags": [f for f in _KERNEL_FLAGS if f in flags],
            "flags_sha": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:12] if flags else ""}


def cpu_id(fp: dict | None = None) -> str:
    """One short string for a member key: 'model|machine|flags digest'."""
    fp = fp or cpu_fingerprint()
    return f"{fp.get('model', '')}|{fp.get('machine', '')}|{fp.get('flags_sha', '')}"


def cpu_mismatch(recorded: dict | None, now: dict | None = None) -> str | None:
    """One line saying how the recorded CPU differs from this one, or None (also when nothing was recorded)."""
    if not recorded:
        return None
    now = now or cpu_fingerprint()
    if cpu_id(recorded) == cpu_id(now):
        return None
    gone = sorted(set(recorded.get("kernel_flags", [])) - set(now.get("kernel_flags", [])))
    new = sorted(set(now.get("kernel_flags", [])) - set(recorded.get("kernel_flags", [])))
    isa = "; ".join(filter(None, [f"missing here: {' '.join(gone)}" if gone else "",
                                  f"new here: {' '.join(new)}" if new else ""]))
    return (f"this run was recorded on {recorded.get('model')} ({recorded.get('machine')}) and continues on "
            f"{now.get('model')} ({now.get('machine')}){' [' + isa + ']' if isa else ''}: new trials are not "
            "bit-identical to the recorded ones, and stored members are not reused across CPUs")
