"""The contracts the roles meet on: every route, header and JSON body, written once.

`client`, `bridge` and `farmer` never import each other; they meet on the wire. This package is
that wire, above `metadisk.core` (whose signed binary messages it carries) and below the roles,
which all import it:

- `metadisk.wire.api`: the bridge's JSON API: route paths and pydantic request and response
  bodies. The bridge serves them (FastAPI validates requests and documents them in OpenAPI), the
  client parses the same models, so a body exists once and both sides are typed by it.
- `metadisk.wire.dataplane`: the farmers' data plane: routes, headers, JSON envelopes, and
  `PieceClient`, the one client of it, used by the client library, the bridge's chores and
  (for graceful exit) farmers themselves.
- `metadisk.wire.errors`: the error envelope both planes answer with.

Binary values travel as unpadded base64url (canonical: `metadisk.core.encoding.b64decode`
refuses any other spelling), ids as lowercase hex.
"""
