"""GraphQL types. The enums are registered first, whichever type module is imported."""

from backend.api.graphql.types import enums as enums
