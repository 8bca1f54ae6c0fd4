from backend.schemas.agent.create import AgentCreate
from backend.schemas.agent.response import AgentResponse
from backend.schemas.agent.update import AgentUpdate

__all__ = ["AgentCreate", "AgentResponse", "AgentUpdate"]
