"""The sipipeline code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

from sipipeline.defs import build_defs
from sipipeline.defs.resources import llm_resource_from_env
from sipipeline.defs.round_defaults import round_run_config_from_env
from sipipeline.paths import storage_base

defs = build_defs(storage_base(), llm_resource_from_env(),
                  round_config=round_run_config_from_env())
