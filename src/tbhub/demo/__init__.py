"""Realistic demo log roots for ``tbhub demo``: two endpoints of real TensorBoard event files.

``write_demo_logs(base)`` writes ``base/lora`` (LoRA fine-tuning runs with ``train/`` and ``eval/``
sub-folders) and ``base/router`` (mixture-of-experts router runs), both laid out
``{dataset}/{run}/...``. The runs are chosen to exercise everything tbhub shows: weeks-old runs (red,
retention candidates), runs a few days old (yellow), fresh ones (green), one run whose loss goes to NaN,
one that stopped being written mid-training three hours ago, and one live run per endpoint that a
``LiveWriter`` keeps appending to while the demo is served. Two more live runs change while you
watch: a LoRA run whose loss turns NaN within the first minute, and a router run that reaches its last
step and drops the ``DONE`` marker (finished and old runs have one too).

Event files are written with TensorBoard's protos and histogram helper (no TensorFlow) in the framing
of its ``RecordWriter`` (a test checks the bytes match), and every ``wall_time`` and every file and
folder mtime is back-dated to match the run's age, so both TensorBoard and tbhub's scanner see a
plausible history. Given ``seed`` and ``now`` the output is byte-for-byte deterministic (file names
included). The curves use the standard library only (``random``, ``math``).

Modules: ``plans`` (what each run is), ``curves`` (its scalars and weights), ``writer`` (event files
and ``write_demo_logs``), ``live`` (``LiveWriter``) and ``config`` (the demo's ``tbhub.toml``).
"""

from __future__ import annotations

from tbhub.demo.config import CONFIG_NAME, DemoPorts, write_demo_config
from tbhub.demo.live import LiveWriter
from tbhub.demo.plans import RunKind
from tbhub.demo.writer import MARKER, DemoLogs, DemoRun, write_demo_logs

__all__ = [
    "CONFIG_NAME",
    "MARKER",
    "DemoLogs",
    "DemoPorts",
    "DemoRun",
    "LiveWriter",
    "RunKind",
    "write_demo_config",
    "write_demo_logs",
]
