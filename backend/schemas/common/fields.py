"""Constrained field types shared by the domain schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
