"""Jobs built on the engine. `map`: one prompt over every record of a dataset."""

from ._inputs import Record, read_records
from ._map import STAGE, MapPlan, MapResult, load_schema, plan_map, run_map
from ._template import Template

__all__ = [
    "STAGE",
    "MapPlan",
    "MapResult",
    "Record",
    "Template",
    "load_schema",
    "plan_map",
    "read_records",
    "run_map",
]
