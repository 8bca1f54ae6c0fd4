from backend.schemas.agent.base import AgentBase


class AgentCreate(AgentBase):
    pass
