from backend.schemas.workspace.create import WorkspaceCreate, WorkspaceName
from backend.schemas.workspace.response import WorkspaceResponse

__all__ = ["WorkspaceCreate", "WorkspaceName", "WorkspaceResponse"]
