from backend.schemas.crew.base import CrewBase


class CrewCreate(CrewBase):
    pass
