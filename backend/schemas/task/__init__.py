from backend.schemas.task.create import TaskCreate
from backend.schemas.task.response import TaskResponse
from backend.schemas.task.update import TaskUpdate

__all__ = ["TaskCreate", "TaskResponse", "TaskUpdate"]
