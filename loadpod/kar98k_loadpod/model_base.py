"""Shared pydantic base: camelCase on the wire (Kubernetes style), unknown fields refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base for every spec, plan and stats model: camelCase aliases, strict about unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        validate_default=True,
    )

    def to_wire(self) -> dict[str, object]:
        """The JSON-ready camelCase form, omitting unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
