from backend.schemas.task.base import TaskBase


class TaskCreate(TaskBase):
    pass
