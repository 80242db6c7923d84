"""The bridge's JSON API: every route path (`routes`) and every body, by domain.

The bridge serves these models with FastAPI (validation, OpenAPI at ``/v1/openapi.json``); the
client library sends and parses the same ones (`metadisk.client.bridge_api`). Request bodies
refuse unknown fields; response bodies ignore them, so a newer bridge may add fields.
"""
