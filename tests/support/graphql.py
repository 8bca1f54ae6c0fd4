"""A small GraphQL client over httpx for tests."""

from __future__ import annotations

from typing import Any

import httpx


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, path: str = "/graphql") -> None:
        self.http = http
        self.path = path

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation_name is not None:
            body["operationName"] = operation_name
        return await self.http.post(self.path, json=body, headers=headers)

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Runs an operation that must succeed without GraphQL errors; returns `data`."""
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert "errors" not in payload, payload["errors"]
        data: dict[str, Any] = payload["data"]
        return data
