"""How launched round runs execute their steps: one process per step, forked from a warm server.

Runs launched through an instance (UI, daemon, sensor, schedule) use the multiprocess executor,
so a crashing step cannot take the run worker with it and model-calling steps of different
rounds' runs stay separate processes. Its default `spawn` start method imports the code location
afresh for every step; `forkserver` imports it once (the module the job was loaded from) and
forks each step from there. `sipipeline run` and the tests use `execute_in_process` and never
go through this executor.
"""

from __future__ import annotations

import dagster as dg

MULTIPROCESS_CONFIG = {"start_method": {"forkserver": {}}}

round_run_executor = dg.multiprocess_executor.configured(
    MULTIPROCESS_CONFIG, name="multiprocess_forkserver")
