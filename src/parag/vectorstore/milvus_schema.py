"""A parag collection on a Milvus server: its schema, its configuration, and the connection.

One collection per store, with the fields

======== ============================ ==================================================
id       INT64 or VARCHAR primary key the store's ids (all ints or all strings)
seq      INT64                        insertion order: ``ids()`` lists oldest first
vector   FLOAT_VECTOR                 the index's field (FLAT, IVF_FLAT or HNSW)
meta     JSON                         the metadata dict
doc      VARCHAR (65,535 bytes)       the document, ``""`` where there is none
has_doc  BOOL                         whether there is a document (Milvus 2.3 has no null)
======== ============================ ==================================================

and the build parameters in the collection's description, so that :func:`read_config`
gives back everything a store was created with; the search parameters ``tune`` chose later
are in the collection's property :data:`SEARCH_PROPERTY`, which :func:`read_config` prefers.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from parag._ids import ID_KINDS, INT_IDS, MAX_STR_ID_LENGTH, STR_IDS, IdKind
from parag._validation import check_int
from parag.errors import (
    CollectionMismatchError,
    InvalidArgumentError,
    InvalidTypeError,
    MissingDependencyError,
    ServerAuthenticationError,
    ServerConnectionError,
    ServerError,
    UnsupportedOperationError,
)
from parag.vectorstore.kinds import KINDS as FAISS_KINDS

INDEX_TYPES = {"flat": "Flat", "ivfflat": "IVFFlat", "ivf_flat": "IVFFlat", "hnsw": "HNSW"}
METRICS = {"l2": "L2", "ip": "IP", "cosine": "cosine"}
MILVUS_INDEX = {"Flat": "FLAT", "IVFFlat": "IVF_FLAT", "HNSW": "HNSW"}
MILVUS_METRIC = {"L2": "L2", "IP": "IP", "cosine": "COSINE"}


def _faiss_range(index_type: str, name: str) -> tuple[int, int]:
    """The FAISS store's range for a parameter: both stores take the same values."""
    param = FAISS_KINDS[index_type].params_by_name()[name]
    assert param.high is not None  # every int parameter has a largest value
    return param.low, param.high


# name: (default, smallest, largest, Milvus's build parameter or None for a search one). The
# ranges are the FAISS store's (kinds/), so a store's parameters and searches carry over to
# either backend (parag.migrate both ways).
PARAMS: dict[str, dict[str, tuple[int, int, int, str | None]]] = {
    "Flat": {},
    "IVFFlat": {"nlist": (256, *_faiss_range("IVFFlat", "nlist"), "nlist"),
                "nprobe": (64, *_faiss_range("IVFFlat", "nprobe"), None)},
    "HNSW": {"M": (32, *_faiss_range("HNSW", "M"), "M"),
             "ef_construction": (40, *_faiss_range("HNSW", "ef_construction"), "efConstruction"),
             "ef_search": (64, *_faiss_range("HNSW", "ef_search"), None)},
}
#: The search parameters of each index type (the rest are built into the index).
SEARCH_PARAMS = {t: tuple(n for n, spec in table.items() if spec[3] is None) for t, table in PARAMS.items()}
# The Milvus 2.3 server's own maxima where they are below those ranges. A search asks for at
# most SERVER_MAX ef (a wider ef_search searches at the server's widest, as nprobe above nlist
# probes every list on both backends); a larger nlist cannot be built: an error naming the limit.
SERVER_MAX = {"ef_search": 32768, "nlist": 65536}
SEARCH_PROPERTY = "parag.search_params"  # the collection property holding tune's choice (JSON)
CONSISTENCY = ("Strong", "Session", "Bounded", "Eventually")
MAX_DOCUMENT_BYTES = 65_535  # Milvus's longest VARCHAR
MAX_METADATA_BYTES = 65_536  # Milvus's longest JSON field value (a row's metadata as compact JSON)
MAX_DIMENSION = 32_768
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def pymilvus() -> Any:
    """The pymilvus module, or MissingDependencyError naming the pip command."""
    try:
        import pymilvus as module
    except ImportError:
        raise MissingDependencyError("MilvusVectorStore needs pymilvus: pip install 'parag[milvus]'") from None
    return module


def check_config(dimension: Any, collection: Any, consistency: Any) -> int:
    """The store's dimension, with its collection name and consistency level checked."""
    dimension = check_int(dimension, "dimension")
    if dimension > MAX_DIMENSION:
        raise InvalidArgumentError(f"dimension must be an int from 1 to {MAX_DIMENSION} (Milvus's limit), got {dimension}")
    if consistency not in CONSISTENCY:
        raise InvalidArgumentError(f"consistency must be one of {list(CONSISTENCY)}, got {consistency!r}")
    if not isinstance(collection, str) or not _NAME.fullmatch(collection):
        raise InvalidArgumentError(
            f"collection must be a Milvus collection name (letters, digits, _; not starting with a digit), got {collection!r}"
        )
    return dimension


def check_id_type(id_type: Any) -> IdKind | None:
    """``id_type`` ("int", "str" or None: fixed by the first ids written) as an IdKind."""
    if id_type is None:
        return None
    if id_type not in ID_KINDS:
        raise InvalidArgumentError(f"id_type must be 'int', 'str' or None (the first ids decide), got {id_type!r}")
    return ID_KINDS[id_type]


def check_params(index_type: str, params: dict[str, Any]) -> dict[str, int]:
    """``params`` checked against the index type's table, defaults filled in."""
    table = PARAMS[index_type]
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise InvalidArgumentError(
            f"{unknown[0]!r} does not apply to a {index_type} store; its parameters: {list(table) or 'none'}"
        )
    checked = {name: check_int(params.get(name, default), name, low, high)
               for name, (default, low, high, _) in table.items()}
    if checked.get("nlist", 0) > SERVER_MAX["nlist"]:
        raise InvalidArgumentError(
            f"nlist must be at most {SERVER_MAX['nlist']} on Milvus (the server's limit for IVF_FLAT; a "
            f"FAISSVectorStore takes up to {table['nlist'][2]}), got {checked['nlist']}"
        )
    return checked


def search_params(index_type: str, params: dict[str, int], k: int) -> dict[str, int]:
    """Milvus's search parameters for a top-``k`` search with the store's ``params``."""
    if index_type == "HNSW":  # Milvus requires ef >= k
        return {"ef": min(max(params["ef_search"], k), SERVER_MAX["ef_search"])}
    if index_type == "IVFFlat":
        return {"nprobe": min(params["nprobe"], params["nlist"])}
    return {}


def connect(uri: Any, token: Any, timeout: Any, db_name: Any) -> Any:
    """A MilvusClient, connected; ServerConnectionError / ServerAuthenticationError if not."""
    if not isinstance(uri, str) or not uri:
        raise InvalidTypeError(f"uri must be a server address such as 'http://127.0.0.1:19530', got {uri!r}")
    if uri.endswith(".db"):
        raise UnsupportedOperationError(
            f"uri {uri!r} names a Milvus Lite file, which MilvusVectorStore does not support (another engine "
            "than the server, with other filter semantics: docs/milvus.md); for a store in local files use "
            "FAISSVectorStore, for Milvus a server address such as 'http://127.0.0.1:19530'"
        )
    if "://" not in uri:
        raise InvalidArgumentError(f"uri must be a server address with its scheme, such as 'http://127.0.0.1:19530', got {uri!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if token is not None and not isinstance(token, str):
        raise InvalidTypeError(f"token must be a string ('user:password' or an API key), got {type(token).__name__}")
    module = pymilvus()
    extra = {} if db_name is None else {"db_name": db_name}
    try:
        return module.MilvusClient(uri=uri, token=token or "", timeout=timeout, **extra)
    except module.MilvusException as e:
        raise server_error(e, f"Milvus at {uri}") from e


def check_client(client: Any) -> Any:
    """``client`` if it is a ``pymilvus.MilvusClient``, else InvalidTypeError naming it."""
    if not isinstance(client, pymilvus().MilvusClient):
        raise InvalidTypeError(
            f"client must be a pymilvus.MilvusClient (a connection to share), got {type(client).__name__}: "
            "pass MilvusClient(uri=...), or no client to have the store connect to uri"
        )
    return client


def server_error(e: Exception, where: str) -> Exception:
    """pymilvus's exception ``e`` as the fitting parag error."""
    text = str(getattr(e, "message", "") or e)
    causes, cause = [], e.__cause__ or e.__context__
    while cause is not None and len(causes) < 5:  # pymilvus wraps gRPC's UNAUTHENTICATED
        causes.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    lowered = " ".join([text, *causes]).lower()
    if any(w in lowered for w in ("unauthenticated", "auth", "credential", "password", "token", "permission")):
        return ServerAuthenticationError(f"{where} refused the credentials ({text}); check the token ('user:password' or an API key)")
    if any(w in lowered for w in ("connect", "unavailable", "deadline", "timeout", "timed out")):
        return ServerConnectionError(f"cannot reach {where}: {text}; check the uri and that the server is running")
    return ServerError(f"{where} failed: {text}")


def create_collection(client: Any, name: str, config: dict[str, Any], kind: IdKind, consistency: str) -> None:
    """Create, index and load the collection of a store of ``config`` with ``kind`` ids."""
    module = pymilvus()
    types = module.DataType
    params = config["params"]
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                  description="parag " + orjson.dumps(params).decode())
    if kind is STR_IDS:  # max_length counts UTF-8 bytes: 4 per character at most
        schema.add_field("id", types.VARCHAR, is_primary=True, max_length=4 * MAX_STR_ID_LENGTH)
    else:
        schema.add_field("id", types.INT64, is_primary=True)
    schema.add_field("seq", types.INT64)
    schema.add_field("vector", types.FLOAT_VECTOR, dim=config["dimension"])
    schema.add_field("meta", types.JSON)
    schema.add_field("doc", types.VARCHAR, max_length=MAX_DOCUMENT_BYTES)
    schema.add_field("has_doc", types.BOOL)
    index = client.prepare_index_params()
    build = {spec[3]: params[n] for n, spec in PARAMS[config["index_type"]].items() if spec[3]}
    index.add_index(field_name="vector", index_type=MILVUS_INDEX[config["index_type"]],
                    metric_type=MILVUS_METRIC[config["metric"]], params=build)
    client.create_collection(name, schema=schema, index_params=index, consistency_level=consistency)


def read_config(client: Any, name: str) -> dict[str, Any]:
    """``{"dimension", "index_type", "metric", "params", "id_kind", "tuned"}`` of a parag
    collection: the build parameters read from its index, the search ones as ``tune`` last set
    them (``tuned``: those, or {}) or else as saved at creation."""
    info = client.describe_collection(name)
    fields = {f["name"]: f for f in info["fields"]}
    types = pymilvus().DataType
    expected = {"seq": types.INT64, "vector": types.FLOAT_VECTOR, "meta": types.JSON,
                "doc": types.VARCHAR, "has_doc": types.BOOL}
    key = fields.get("id", {})
    if (any(n not in fields or fields[n]["type"] != t for n, t in expected.items()) or not key.get("is_primary")
            or key["type"] not in (types.INT64, types.VARCHAR)):
        has = ", ".join(f"{n} {f['type'].name}" for n, f in fields.items())
        raise CollectionMismatchError(
            f"collection {name!r} is not a parag collection (it needs fields id INT64 or VARCHAR primary key, "
            f"seq INT64, vector FLOAT_VECTOR, meta JSON, doc VARCHAR, has_doc BOOL; it has {has})"
        )
    index = client.describe_index(name, "vector")
    index_type = {v: k for k, v in MILVUS_INDEX.items()}.get(index.get("index_type"))
    metric = {v: k for k, v in MILVUS_METRIC.items()}.get(index.get("metric_type"))
    if metric is None or index_type is None:
        raise CollectionMismatchError(
            f"collection {name!r} has a {index.get('index_type')} index with metric {index.get('metric_type')}; "
            f"parag reads {sorted(MILVUS_INDEX.values())} with {sorted(MILVUS_METRIC.values())}"
        )
    description = info.get("description", "")
    params = _saved_params(description[6:] if description.startswith("parag ") else None, index_type, name)
    tuned = _saved_params(info.get("properties", {}).get(SEARCH_PROPERTY), index_type, name)
    params.update(tuned)
    for param, (_, _, _, built) in PARAMS[index_type].items():
        if built and built in index:  # what the index was really built with
            params[param] = int(index[built])
    return {"dimension": int(fields["vector"]["params"]["dim"]), "index_type": index_type, "metric": metric,
            "params": params, "id_kind": STR_IDS if key["type"] == types.VARCHAR else INT_IDS, "tuned": tuned}


def search_property(index_type: str, params: dict[str, int]) -> dict[str, str]:
    """The collection property that keeps the search parameters of ``params`` (tune's choice)."""
    search = {n: params[n] for n in SEARCH_PARAMS[index_type]}
    return {SEARCH_PROPERTY: orjson.dumps(search).decode()}


def _saved_params(text: str | None, index_type: str, name: str) -> dict[str, int]:
    """The parameters of ``index_type`` in a saved JSON object (None: none saved), each an int
    in its range; CollectionMismatchError for anything else."""
    saved = {}
    if text is not None:
        try:
            saved = orjson.loads(text)
        except orjson.JSONDecodeError:
            saved = None
    table = PARAMS[index_type]
    if not isinstance(saved, dict) or not all(
            type(v) is int and table[n][1] <= v <= table[n][2] for n, v in saved.items() if n in table):
        raise CollectionMismatchError(
            f"collection {name!r} holds parameters parag cannot read or use ({text[:100]!r}; each must be an int "
            "in the range parag takes): it was changed by hand, or made by an earlier parag with wider ranges; "
            "copy it into a new collection with parag.migrate, or use another collection name"
        )
    return {n: v for n, v in saved.items() if n in table}


def config_on_server(name: str, uri: Any, token: Any, timeout: Any, db_name: Any) -> dict[str, Any]:
    """:func:`read_config` of the collection ``name``, through a connection of its own."""
    client = connect(uri, token, timeout, db_name)
    try:
        if not client.has_collection(name):
            raise CollectionMismatchError(f"there is no collection {name!r} on the server at {uri}")
        return read_config(client, name)
    except pymilvus().MilvusException as e:
        raise server_error(e, f"Milvus at {uri}") from e
    finally:
        client.close()


def mismatch(name: str, found: dict[str, Any], wanted: dict[str, Any], kind: IdKind | None) -> None:
    """CollectionMismatchError unless the collection ``name`` (``found``) is what the store
    asked for (``wanted``: dimension, index_type, metric and build parameters; ``kind``)."""
    asked = {n: wanted[n] for n in ("dimension", "index_type", "metric")}
    asked.update({n: v for n, v in wanted["params"].items() if n not in SEARCH_PARAMS[wanted["index_type"]]})
    have = {n: found[n] for n in ("dimension", "index_type", "metric")}
    have.update(found["params"])
    if kind is not None:
        asked["id_type"], have["id_type"] = kind.name, found["id_kind"].name
    different = {n: (have.get(n), v) for n, v in asked.items() if have.get(n) != v}
    if different:
        detail = ", ".join(f"{n} {f!r} (asked {w!r})" for n, (f, w) in different.items())
        raise CollectionMismatchError(
            f"collection {name!r} exists with {detail}; open it with MilvusVectorStore.open"
            f"({name!r}, uri=...) or use another collection name"
        )
