"""One check for NaN/inf wherever a model or an input table can produce them.

By default non-finite values are refused with a message naming where they are and the fix, so no
output is ever silently wrong; with ``drop=True`` the rows holding them are left out instead and
counted, for the caller to record in its manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rmvalues.errors import RmvaluesError, ScoreError

#: How many offending rows a message lists.
SHOW = 5
DROP_HINT = "pass --drop-nonfinite to leave those rows out (the count goes into the manifest)"


def finite_rows(
    values,
    *,
    what: str,
    fix: str,
    label: Callable[[int], str] | Sequence[str] | None = None,
    drop: bool = False,
    error: type[RmvaluesError] = ScoreError,
    rows: str = "row(s)",
    drop_hint: str | None = DROP_HINT,
    outcome: str = "Nothing was written",
) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (1-D: each value; 2-D: each row) with only finite values.

    Raises ``error`` when some row is not finite, unless ``drop``; ``label(i)`` (or ``label[i]``)
    names row ``i`` in the message, ``rows`` what a row is, ``drop_hint`` how to leave the rows out
    (``None`` where the caller cannot) and ``outcome`` what the refusal left unwritten.
    """
    arr = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(arr) if arr.ndim <= 1 else np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    bad = np.flatnonzero(~keep)
    if bad.size and not drop:
        name = label if callable(label) else (
            (lambda i: str(label[i])) if label is not None else (lambda i: f"row {i}"))
        kinds = sorted({"NaN" if np.isnan(v) else ("+inf" if v > 0 else "-inf")
                        for v in arr[bad].ravel()[:10_000] if not np.isfinite(v)})
        shown = ", ".join(name(int(i)) for i in bad[:SHOW])
        more = f" and {bad.size - SHOW} more" if bad.size > SHOW else ""
        raise error(
            f"{what}: {bad.size} of {len(keep)} {rows} hold non-finite values ({'/'.join(kinds)}): "
            f"{shown}{more}. {fix} {outcome}" + (f"; {drop_hint}." if drop_hint else ".")
        )
    return keep
