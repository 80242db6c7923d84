"""Authorization of object-plane calls by API keys (macaroons from `metadisk.core.macaroon`)."""
