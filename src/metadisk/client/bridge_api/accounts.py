"""`BridgeAccounts` (a user's session: projects and root API keys) and `BridgeNodes` (the public
node directory)."""

from __future__ import annotations

import aiohttp

from metadisk.client.bridge_api._http import BridgeHttp, segment
from metadisk.client.bridge_api.objects import _body
from metadisk.core.identity import NodeId
from metadisk.wire.api import accounts, routes
from metadisk.wire.api.accounts import Account, ApiKey, CreatedApiKey, Project, Session
from metadisk.wire.api.nodes import NodeStatus


class BridgeAccounts:
    """The bridge's account API for one user: log in, then manage projects and root API keys.

    Every call but `register` and `login` needs a session: `login` keeps the one it makes, or
    pass a cached `token`.

    Example::

        accounts = BridgeAccounts("http://127.0.0.1:7000")
        await accounts.register("ada@example.com", "correct horse")
        session = await accounts.login("ada@example.com", "correct horse")
        project = await accounts.create_project("photos")
        api_key = (await accounts.create_api_key(project.id, "laptop")).api_key
        await accounts.aclose()
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._http = BridgeHttp(url, token or "", session, timeout)

    @property
    def url(self) -> str:
        return self._http.url

    async def register(self, email: str, password: str) -> Account:
        """Create an account (no session needed, none made: `login` next)."""
        body = _body(accounts.Credentials, email=email, password=password)
        return await self._http.parsed("POST", routes.ACCOUNTS, Account, body=body, auth=False)

    async def login(self, email: str, password: str) -> Session:
        """Log in; later calls use this session."""
        body = _body(accounts.Credentials, email=email, password=password)
        made = await self._http.parsed("POST", routes.SESSIONS, Session, body=body, auth=False)
        self._http.token = made.token
        return made

    async def projects(self) -> tuple[Project, ...]:
        """The account's projects."""
        found = await self._http.parsed("GET", routes.PROJECTS, accounts.ProjectList)
        return tuple(found.projects)

    async def create_project(self, name: str) -> Project:
        body = _body(accounts.NewProject, name=name)
        return await self._http.parsed("POST", routes.PROJECTS, Project, body=body)

    async def set_passphrase_verifier(
        self, project_id: str, verifier: bytes, *, force: bool = False
    ) -> None:
        """Store the project's passphrase verifier; `Conflict` (verifier-mismatch) if another
        is stored, unless `force` (the owner replaces it: the old passphrase becomes wrong)."""
        path = routes.PROJECT_VERIFIER.format(project_id=segment(project_id))
        body = _body(accounts.NewVerifier, verifier=verifier, force=force)
        await self._http.call("PUT", path, body=body)

    async def api_keys(self, project_id: str) -> tuple[ApiKey, ...]:
        """The project's root API keys (ids and names)."""
        path = routes.API_KEYS.format(project_id=segment(project_id))
        found = await self._http.parsed("GET", path, accounts.ApiKeyList)
        return tuple(found.api_keys)

    async def create_api_key(self, project_id: str, name: str) -> CreatedApiKey:
        """A new root API key of the project, serialized in `CreatedApiKey.api_key`."""
        path = routes.API_KEYS.format(project_id=segment(project_id))
        body = _body(accounts.NewApiKey, name=name)
        return await self._http.parsed("POST", path, CreatedApiKey, body=body)

    async def delete_api_key(self, project_id: str, key_id: str) -> None:
        """Delete a root API key: it and every key restricted from it stop working at once."""
        path = routes.API_KEY.format(project_id=segment(project_id), key_id=segment(key_id))
        await self._http.call("DELETE", path)

    async def aclose(self) -> None:
        await self._http.aclose()


class BridgeNodes:
    """The bridge's public node directory: one node's status by id (no token needed).

    Example::

        nodes = BridgeNodes("http://127.0.0.1:7000")
        status = await nodes.status(node_id)  # NotFound (node-not-found) if never checked in
        await nodes.aclose()
    """

    def __init__(
        self, url: str, *, session: aiohttp.ClientSession | None = None, timeout: float = 60.0
    ) -> None:
        self._http = BridgeHttp(url, "", session, timeout)

    async def status(self, node_id: NodeId) -> NodeStatus:
        path = routes.NODE.format(node_id=node_id.hex())
        return await self._http.parsed("GET", path, NodeStatus, auth=False)

    async def aclose(self) -> None:
        await self._http.aclose()
