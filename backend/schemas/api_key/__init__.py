from backend.schemas.api_key.create import ApiKeyCreate
from backend.schemas.api_key.response import ApiKeyCreated, ApiKeyResponse

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyResponse"]
