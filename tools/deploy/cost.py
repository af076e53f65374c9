"""What the functions' minimum instances cost a month, at most, from Google's published prices.

Cloud Functions (2nd gen) run on Cloud Run and are billed as Cloud Run services. The rates here
are the active-instance rates of Tier 1 regions with request-based billing (the functions'
default); an idle minimum instance is billed at Cloud Run's lower idle rate, so the figure is a
ceiling. A 2nd gen function's vCPU follows its memory (Cloud Functions' table: 512Mi comes with
0.333 vCPU).
"""

from __future__ import annotations

import re

SOURCE = (
    "Cloud Run pricing, Tier 1, request-based billing: $0.000024 per vCPU-second, $0.0000025 "
    "per GiB-second (https://cloud.google.com/run/pricing, read 2026-12-04)"
)
CPU_SECOND = 0.000024
GIB_SECOND = 0.0000025
MONTH_SECONDS = 30 * 24 * 3600
# Cloud Functions 2nd gen: the vCPU a memory setting comes with.
VCPU_OF_MIB = {128: 0.083, 256: 0.167, 512: 0.333, 1024: 0.583, 2048: 1.0, 4096: 2.0,
               8192: 2.0, 16384: 4.0, 32768: 8.0}  # fmt: skip


def mib(memory: str) -> int:
    """A Cloud Functions memory setting (512Mi, 1Gi, 512M, 1GB …) in MiB."""
    match = re.fullmatch(r"([0-9]+)(Mi|Gi|M|G|MB|GB)", memory.strip())
    if not match:
        raise ValueError(f"not a memory setting: {memory!r}")
    number, unit = int(match.group(1)), match.group(2)
    return number * 1024 if unit in ("Gi", "G", "GB") else number


def vcpu(memory: str) -> float:
    """The vCPU of an instance with ``memory`` (the next size up when between two)."""
    size = mib(memory)
    return next((cpu for limit, cpu in sorted(VCPU_OF_MIB.items()) if size <= limit), 8.0)


def monthly_ceiling(memory: str, instances: int) -> float:
    """USD a month, at most, for ``instances`` minimum instances of ``memory`` each."""
    per_instance = MONTH_SECONDS * (vcpu(memory) * CPU_SECOND + mib(memory) / 1024 * GIB_SECOND)
    return round(instances * per_instance, 2)
