"""Every path of the bridge's JSON API, as a template of `str.format` fields.

The bridge registers its routes with these; the client fills them in (each field one quoted
path segment). Nothing else in the tree spells a bridge path.
"""

from __future__ import annotations

# accounts, sessions, projects, root API keys (session bearer token)
ACCOUNTS = "/v1/accounts"
ACCOUNT = "/v1/account"
SESSIONS = "/v1/sessions"
CURRENT_SESSION = "/v1/sessions/current"
PROJECTS = "/v1/projects"
PROJECT = "/v1/projects/{project_id}"
API_KEYS = "/v1/projects/{project_id}/api-keys"
API_KEY = "/v1/projects/{project_id}/api-keys/{key_id}"
PROJECT_REVOCATIONS = "/v1/projects/{project_id}/revocations"
PROJECT_VERIFIER = "/v1/projects/{project_id}/passphrase-verifier"

# the object plane (API key bearer token)
REVOCATIONS = "/v1/revocations"
VERIFIER = "/v1/project/passphrase-verifier"  # the API key's project
USAGE = "/v1/usage"  # the project of the key: usage against limits
BUCKETS = "/v1/buckets"
BUCKET = "/v1/buckets/{bucket}"
OBJECT = "/v1/buckets/{bucket}/object"
OBJECTS = "/v1/buckets/{bucket}/objects"
OBJECT_MOVE = "/v1/buckets/{bucket}/object/move"
OBJECT_COPY = "/v1/buckets/{bucket}/object/copy"
OBJECT_SEGMENT = "/v1/buckets/{bucket}/object/segments/{index}"
SEGMENT_REPORT = "/v1/buckets/{bucket}/object/segments/{index}/report"
BUCKET_UPLOADS = "/v1/buckets/{bucket}/uploads"
UPLOAD = "/v1/uploads/{stream_id}"
UPLOAD_COMMIT = "/v1/uploads/{stream_id}/commit"
SEGMENTS = "/v1/uploads/{stream_id}/segments"
SEGMENT_REPLACEMENTS = "/v1/uploads/{stream_id}/segments/{index}/replacements"
SEGMENT_COMMIT = "/v1/uploads/{stream_id}/segments/{index}/commit"

# the node directory and the bridge itself (public)
CHECKIN = "/v1/nodes/checkin"
NODE = "/v1/nodes/{node_id}"
NODE_STANDING = "/v1/nodes/standing"  # a farmer's own, with a signed NodeQuery
NODE_EXIT = "/v1/nodes/exit"  # a farmer's graceful exit, with a signed NodeQuery
BRIDGE_INFO = "/v1/bridge"
OPENAPI = "/v1/openapi.json"
DOCS = "/v1/docs"  # Swagger UI
REDOC = "/v1/redoc"
DOCS_ASSET = "/v1/docs/assets/{name}"  # the UIs' scripts and styles, packaged: docs work offline

# operators (``Authorization: Bearer <[server] admin_token>``)
ADMIN_NODES = "/v1/admin/nodes"
ADMIN_NODE_EVIDENCE = "/v1/admin/nodes/{node_id}/evidence"
ADMIN_HEALTH = "/v1/admin/health"  # piece sets: injured, lost, queued for repair

# headers of the JSON API's answers
RETRY_AFTER = "Retry-After"  # on 429 rate-limited: seconds to wait
ALLOW = "Allow"  # on 405: the methods the path takes
