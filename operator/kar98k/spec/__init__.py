"""The LoadTest spec: model, validation with precise paths, YAML loading."""

from .errors import FieldError, SpecError
from .load import ManifestReadError, load_manifest, parse_manifest, parse_spec, read_documents
from .model import API_VERSION, KIND, LoadTest, LoadTestSpec, Pattern

__all__ = [
    "API_VERSION",
    "KIND",
    "FieldError",
    "LoadTest",
    "LoadTestSpec",
    "ManifestReadError",
    "Pattern",
    "SpecError",
    "load_manifest",
    "parse_manifest",
    "parse_spec",
    "read_documents",
]
