"""The machine a benchmark ran on, printed first by every script: figures from one CPU do not carry
over to another (oneDNN's kernels, numba's loops and float16 conversion all differ between AVX2
and AVX-512), so every figure goes with the CPU's vector extensions."""

import os
import platform

# The x86 extensions that change which kernels TensorFlow, oneDNN and numba pick.
VECTOR_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
)


def describe() -> str:
    """'machine: <CPU model>, N logical CPUs usable, vector extensions: ...' (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    extensions = [flag for flag in VECTOR_FLAGS if flag in flags] or ["unknown"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"machine: {model}, {cpus} logical CPUs usable, vector extensions: {' '.join(extensions)}"


if __name__ == "__main__":
    print(describe())
