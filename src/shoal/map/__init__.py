"""`shoal map`: one prompt (or several roles, `--roles`) over every record of a dataset, as one job."""

from ._inputs import Record, read_records
from ._map import STAGE, MapPlan, MapResult, load_schema, plan_map, run_map
from ._roles import Role, RolesPlan, estimate_roles, plan_roles, run_roles, unit_id
from ._template import Template

__all__ = [
    "STAGE",
    "MapPlan",
    "MapResult",
    "Record",
    "Role",
    "RolesPlan",
    "Template",
    "estimate_roles",
    "load_schema",
    "plan_map",
    "plan_roles",
    "read_records",
    "run_map",
    "run_roles",
    "unit_id",
]
