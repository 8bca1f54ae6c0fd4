"""GraphQL operations that several end-to-end suites send."""

CREATE_EXECUTION = """
mutation Launch($input: ExecutionCreateInput!) {
  createExecution(input: $input) {
    __typename
    ... on Execution { id status }
    ... on Error { code message }
  }
}"""

CANCEL_EXECUTION = """
mutation Cancel($id: ID!, $force: Boolean!) {
  cancelExecution(id: $id, force: $force) {
    __typename
    ... on Execution { id status }
    ... on Error { code message }
  }
}"""
