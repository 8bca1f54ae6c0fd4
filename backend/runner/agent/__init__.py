"""Running one task as one PydanticAI agent run: models, prompts, events, usage and budgets."""
