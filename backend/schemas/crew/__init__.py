from backend.schemas.crew.base import CrewProcess
from backend.schemas.crew.create import CrewCreate
from backend.schemas.crew.response import CrewResponse
from backend.schemas.crew.update import CrewUpdate

__all__ = ["CrewCreate", "CrewProcess", "CrewResponse", "CrewUpdate"]
