"""One provenance record for every loaded model: reward models, causal LMs and plan probes.

A model's identity (where its files came from, which snapshot, dtype, device, attention, weights)
is collected once, by the loader, into :class:`ModelProvenance`. The record names the snapshot
unambiguously: ``revision`` is what was asked for (a branch, tag or sha; ``None`` for a local
folder) and ``commit`` the sha of the hub snapshot actually read.

Outputs keep the keys they always had, through one serialiser each, rather than migrating stored
files: a reward model's fields are hashed into the shard keys of every scoring run (renaming one
would invalidate every resume key), and log-prob manifests already on disk are read back as they
are. So :meth:`ModelProvenance.rm_fields` writes the snapshot as ``revision`` (the pinned sha, else
the revision asked for) and :meth:`ModelProvenance.lm_fields` writes ``revision`` (as asked) and
``commit`` (the sha) — two spellings of one record, never two records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelProvenance:
    """Where a loaded model came from and how it was loaded (see the module docstring)."""

    name: str
    source: str
    revision: str | None
    commit: str | None
    dtype: str
    device: str
    attn_implementation: str
    weights_fingerprint: str | None
    trust_remote_code: bool = False
    head: str | None = None
    device_map: str | None = None
    gguf_file: str | None = None
    gguf_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device_type(self) -> str:
        """``cpu``, ``cuda``, ``mps``: what the engines' numerics depend on (not the GPU index)."""
        return self.device.split(":", 1)[0]

    @property
    def pinned_revision(self) -> str | None:
        """The snapshot's sha where there is one, else the revision as asked."""
        return self.commit or self.revision

    def rm_fields(self) -> dict[str, Any]:
        """A reward model's manifest fields (hashed into shard keys: keys and order are frozen)."""
        return {
            "model": self.name,
            "source": self.source,
            "revision": self.pinned_revision,
            "weights_fingerprint": self.weights_fingerprint,
            "head": self.head,
            "dtype": self.dtype,
            "attn_implementation": self.attn_implementation,
            "device_type": self.device_type,
            **self.extra,
        }

    def lm_fields(self) -> dict[str, Any]:
        """A log-prob run's ``load`` manifest entry (stored runs are read back with these keys)."""
        out: dict[str, Any] = {"source": self.source, "revision": self.revision,
                               "dtype": self.dtype, "device": self.device,
                               "trust_remote_code": self.trust_remote_code}
        if self.device_map is not None:
            out["device_map"] = self.device_map
        if self.gguf_file is not None:
            out["gguf_file"] = self.gguf_file
            if self.gguf_sha256 is not None:
                out["gguf_sha256"] = self.gguf_sha256
        extra = dict(self.extra)
        if "hf_device_map" in extra:
            out["hf_device_map"] = extra.pop("hf_device_map")
        return {**out, "commit": self.commit, **extra}
