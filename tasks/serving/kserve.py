"""A KServe `InferenceService` for a pipeline's champion, and its check against KServe's schema.

The schema is the one KServe generates its Python SDK from: every object type with its fields,
their JSON names and types, and which are required. We read it from the SDK's wheel (pinned
and hashed in `requirements.kserve.txt`, fetched by `make setup` and the Airflow image) without
importing it (the SDK pulls a model server with it); the Kubernetes types it embeds (container,
resources, security context, volumes) come from the Kubernetes client Airflow's provider has.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tasks.errors import InputError
from tasks.settings import setting_text

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
GROUP, VERSION = API_VERSION.split("/")
PLURAL = "inferenceservices"
SDK_ENV = "VISION_PIPELINES_KSERVE_SDK"
"""The KServe SDK wheel whose schema is checked against (default: the one `make setup` fetched)."""
SDK_FOLDER = Path(sys.prefix) / "share" / "vision-pipelines"
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 45
"""KServe prefixes a predictor's Knative routes to the name; longer names overflow DNS labels."""


@dataclass(frozen=True)
class ObjectType:
    """One object type of the schema: its fields by JSON name, their types and the required ones."""

    fields: Mapping[str, str]
    required: frozenset[str]


def _literal(cls: ast.ClassDef, name: str) -> dict[str, str] | None:
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return None


def _types_in(source: str) -> Iterator[tuple[str, ObjectType]]:
    """The generated model classes of one SDK module, read as text."""
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        types, keys = _literal(cls, "openapi_types"), _literal(cls, "attribute_map")
        if types is None or keys is None:
            continue
        required = {
            keys[fn.name]
            for fn in cls.body
            if isinstance(fn, ast.FunctionDef)
            and fn.name in keys
            and any(isinstance(d, ast.Attribute) and d.attr == "setter" for d in fn.decorator_list)
            and "must not be `None`" in (ast.get_source_segment(source, fn) or "")
        }
        yield cls.name, ObjectType({keys[a]: t for a, t in types.items()}, frozenset(required))


def sdk_wheel() -> Path:
    """The KServe SDK wheel the schema is read from."""
    if path := setting_text(SDK_ENV):
        return Path(path)
    found = sorted(SDK_FOLDER.glob("kserve-*.whl"))
    if not found:
        raise InputError(
            f"KServe's schema is missing: no kserve-*.whl in {SDK_FOLDER} (run `make setup`, or "
            f"point {SDK_ENV} at the wheel of requirements.kserve.txt)"
        )
    return found[-1]


def _module_name(type_name: str) -> str:
    """The generator's module of a type: V1beta1ModelSpec -> v1beta1_model_spec."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()


@cache
def _sdk(wheel: Path) -> tuple[zipfile.ZipFile, frozenset[str]]:
    """The SDK wheel, open, and the names of its members."""
    zf = zipfile.ZipFile(wheel)
    names = frozenset(zf.namelist())
    if "kserve/models/v1beta1_inference_service.py" not in names:
        raise InputError(f"{wheel}: not a KServe SDK (no V1beta1InferenceService model)")
    return zf, names


@cache
def _object_type(name: str) -> ObjectType | None:
    """A type of KServe's SDK or of the Kubernetes client, read from its module's text."""
    module = _module_name(name)
    sdk, members = _sdk(sdk_wheel())
    if (member := f"kserve/models/{module}.py") in members:
        source = sdk.read(member).decode("utf-8")
    else:
        # The module's text, not an import: kubernetes.client imports every model it has.
        package = importlib.util.find_spec("kubernetes")
        path = Path(package.origin).parent / "client" / "models" / f"{module}.py"
        if not path.is_file():
            return None
        source = path.read_text(encoding="utf-8")
    return dict(_types_in(source)).get(name)


_SCALARS = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}


def _problems(value: Any, kind: str, where: str) -> Iterator[str]:
    """What is wrong with `value` as a `kind` (a schema type name) at `where`."""
    if kind == "object":
        return
    if kind in _SCALARS:
        wanted = _SCALARS[kind]
        if not isinstance(value, wanted) or (bool not in wanted and isinstance(value, bool)):
            yield f"{where}: {value!r} is not a {kind}"
        return
    if inner := re.fullmatch(r"list\[(.+)\]", kind):
        if not isinstance(value, list):
            yield f"{where}: {value!r} is not a list"
            return
        for i, item in enumerate(value):
            yield from _problems(item, inner[1], f"{where}[{i}]")
        return
    if inner := re.fullmatch(r"dict[(\[](\w+), (.+)[)\]]", kind):
        if not isinstance(value, Mapping):
            yield f"{where}: {value!r} is not an object"
            return
        for key, item in value.items():
            yield from _problems(item, inner[2], f"{where}.{key}")
        return
    schema = _object_type(kind)
    if schema is None:
        yield f"{where}: type {kind} is unknown to the schema"
        return
    if not isinstance(value, Mapping):
        yield f"{where}: {value!r} is not an object ({kind})"
        return
    for key, item in value.items():
        if key not in schema.fields:
            yield f"{where}.{key}: no such field in {kind}"
        elif item is not None:
            yield from _problems(item, schema.fields[key], f"{where}.{key}")
    for key in sorted(schema.required - set(value)):
        yield f"{where}.{key}: required by {kind}"


def check_inference_service(resource: Mapping[str, Any]) -> None:
    """Refuse an InferenceService that KServe's schema would not accept, naming every problem."""
    problems = list(_problems(resource, "V1beta1InferenceService", "InferenceService"))
    if resource.get("apiVersion") != API_VERSION or resource.get("kind") != KIND:
        problems.insert(0, f"apiVersion/kind must be {API_VERSION}/{KIND}")
    name = (resource.get("metadata") or {}).get("name", "")
    if not (_NAME.match(name) and len(name) <= MAX_NAME):
        problems.append(
            f"metadata.name {name!r} is not a DNS label of at most {MAX_NAME} characters "
            "(lower-case letters, digits and '-', starting with a letter)"
        )
    if problems:
        raise InputError(
            "the InferenceService does not fit KServe's schema: " + "; ".join(problems)
        )


def service_name(pipeline: str) -> str:
    """A pipeline (DAG id) as an InferenceService name (image_classification ->
    image-classification)."""
    name = re.sub(r"[^a-z0-9-]+", "-", pipeline.lower()).strip("-")
    return name[:MAX_NAME].rstrip("-") or "model"


def inference_service(
    *,
    name: str,
    namespace: str,
    storage_uri: str,
    resources: Mapping[str, Mapping[str, str]],
    pod_security: Mapping[str, Any],
    container_security: Mapping[str, Any],
    scratch: Sequence[tuple[str, str]] = (("tmp", "/tmp"),),
    service_account: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """KServe's TensorFlow runtime (TensorFlow Serving) over `storage_uri`, a folder of numbered
    SavedModel versions; `scratch` are writable emptyDir folders on the read-only root."""
    if not storage_uri or storage_uri.startswith("file://") or "://" not in storage_uri:
        raise InputError(
            f"the model for KServe must be in storage its pods can read (s3://, gs://, pvc://, "
            f"...), got {storage_uri!r}: set [Models location] models_uri to object storage"
        )
    predictor: dict[str, Any] = {
        "model": {
            "modelFormat": {"name": "tensorflow"},
            "storageUri": storage_uri,
            "resources": {kind: dict(values) for kind, values in resources.items()},
            "securityContext": dict(container_security),
            "volumeMounts": [{"name": v, "mountPath": path} for v, path in scratch],
        },
        "securityContext": dict(pod_security),
        "automountServiceAccountToken": False,
        "volumes": [{"name": v, "emptyDir": {}} for v, _ in scratch],
    }
    if service_account:
        predictor["serviceAccountName"] = service_account
    if node_selector:
        predictor["nodeSelector"] = dict(node_selector)
    if tolerations:
        predictor["tolerations"] = [dict(t) for t in tolerations]
    resource = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "vision-pipelines", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {"predictor": predictor},
    }
    check_inference_service(resource)
    return resource
