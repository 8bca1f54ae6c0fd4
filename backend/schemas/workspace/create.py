from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from backend.schemas.base import InputSchema

# Typed on command lines (`--workspace NAME`) and written into audit lines: no spaces, no
# control characters, nothing a shell or a log reader would need quoted.
WorkspaceName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    ),
]


class WorkspaceCreate(InputSchema):
    name: WorkspaceName
