"""Per-vector metadata: checked and encoded to JSON per batch (:mod:`.encoding`), kept as
JSON rows in one buffer (:mod:`.store`), and read by filters as numpy columns
(:mod:`.columns`)."""

from parag.metadata.columns import Column, Columns, value_key
from parag.metadata.encoding import Encoded, encode_metadata
from parag.metadata.store import MetadataStore

__all__ = ["Column", "Columns", "Encoded", "MetadataStore", "encode_metadata", "value_key"]
