"""An implicit-reward pair on disk: one folder of tables and a manifest, swapped in whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.implicit.tables import PairTables

MANIFEST_KIND = "implicit-rewards"


def write_pair_tables(out_dir: str | Path, pair: PairTables) -> Path:
    """Write ``<metric>.parquet``, one CSV per table, ``join.json`` and ``manifest.json``.

    Written into a staged folder swapped in whole, so the folder never mixes two runs.
    """
    from rmvalues.io import staged_folder
    from rmvalues.store.manifest import build_manifest, write_manifest

    res = pair.result
    with staged_folder(out_dir, MANIFEST_KIND) as out:
        res.table.to_parquet(out / f"{res.metric}.parquet", index=False)
        for name, frame in pair.tables.items():
            frame.to_csv(out / f"{name}.csv", index=False)
        (out / "join.json").write_text(json.dumps(res.report.to_dict(), indent=2) + "\n", "utf-8")
        write_manifest(out / "manifest.json", build_manifest(MANIFEST_KIND, **pair.fields))
    return Path(out_dir)
