"""Language-model providers: how an agent's `llm` string becomes a stream of text."""
