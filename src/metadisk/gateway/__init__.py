"""The S3 gateway: an S3-compatible endpoint on the user's machine, over `metadisk.client`.

S3 tools talk to it as to any S3 server; it encrypts and decrypts in its own process with the
access grants its credentials map to, so the bridge and farmers still see only ciphertext.

- `server`: the aiohttp application (`Gateway`) and `serve`, one process; routing and errors.
- `sigv4`, `chunked`: AWS Signature Version 4 (headers and presigned URLs) and aws-chunked
  bodies, sans I/O; `bodies` reads a request's payload through them.
- `buckets`, `objects`, `multipart`: the operations, each a call or a stream through
  `AsyncProject`; `parts` keeps multipart uploads' part lists; `listing_cache` the sorted
  snapshots listings are cut from.
- `s3xml`, `s3errors`, `listing`, `conditions`, `metadata`: S3's documents, errors, listing
  rules, conditional and range headers, and metadata, as pure code.
- `config`: credentials and settings (``gateway.toml``).

Run one with ``metadisk gateway run``; see docs/gateway.md.
"""
