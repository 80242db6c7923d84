"""The passphrase verifier routes on a real bridge: who may read it, who may set it, first
writer wins, and another project's keys and sessions reach nothing."""

from __future__ import annotations

from metadisk.core.encoding import b64encode
from metadisk.core.keys import passphrase_verifier
from metadisk.core.macaroon import APIKey, Caveat
from tests.bridge.helpers import Api, Tenant

KEY_ROUTE = "/v1/project/passphrase-verifier"
RIGHT = b64encode(passphrase_verifier(b"\x01" * 32))
WRONG = b64encode(passphrase_verifier(b"\x02" * 32))


def owner_route(tenant: Tenant) -> str:
    return f"/v1/projects/{tenant.project_id}/passphrase-verifier"


def restricted(tenant: Tenant) -> str:
    caveat = Caveat(disallow_writes=True, disallow_deletes=True)
    return APIKey.parse(tenant.api_key).restrict(caveat).serialize()


async def test_none_until_set_then_first_writer_wins(tenant: Tenant) -> None:
    assert await tenant.ok("GET", KEY_ROUTE) == {"verifier": None}
    assert (await tenant.project())["passphrase_verifier"] is None

    assert (await tenant.call("PUT", KEY_ROUTE, json={"verifier": RIGHT})).status == 204
    assert await tenant.ok("GET", KEY_ROUTE) == {"verifier": RIGHT}
    assert (await tenant.project())["passphrase_verifier"] == RIGHT
    # Storing the same one again is fine; another one is refused, by key and by session.
    assert (await tenant.call("PUT", KEY_ROUTE, json={"verifier": RIGHT})).status == 204
    other = await tenant.call("PUT", KEY_ROUTE, json={"verifier": WRONG})
    assert (other.status, other.code) == (409, "verifier-mismatch")
    by_owner = await tenant.call(
        "PUT", owner_route(tenant), token=tenant.session, json={"verifier": WRONG}
    )
    assert (by_owner.status, by_owner.code) == (409, "verifier-mismatch")
    assert await tenant.ok("GET", KEY_ROUTE) == {"verifier": RIGHT}


async def test_only_the_owner_may_force_another(tenant: Tenant) -> None:
    await tenant.ok("PUT", KEY_ROUTE, json={"verifier": RIGHT})
    by_key = await tenant.call("PUT", KEY_ROUTE, json={"verifier": WRONG, "force": True})
    assert by_key.status == 403
    forced = await tenant.call(
        "PUT", owner_route(tenant), token=tenant.session, json={"verifier": WRONG, "force": True}
    )
    assert forced.status == 204
    assert await tenant.ok("GET", KEY_ROUTE) == {"verifier": WRONG}


async def test_a_restricted_key_reads_but_does_not_set(tenant: Tenant) -> None:
    narrow = restricted(tenant)
    refused = await tenant.call("PUT", KEY_ROUTE, token=narrow, json={"verifier": RIGHT})
    assert (refused.status, refused.code) == (403, "access-denied")
    assert await tenant.ok("GET", KEY_ROUTE, token=narrow) == {"verifier": None}
    await tenant.ok("PUT", KEY_ROUTE, json={"verifier": RIGHT})
    assert await tenant.ok("GET", KEY_ROUTE, token=narrow) == {"verifier": RIGHT}


async def test_another_projects_key_and_session_reach_nothing(api: Api) -> None:
    mine, theirs = await Tenant.create(api), await Tenant.create(api)
    await mine.ok("PUT", KEY_ROUTE, json={"verifier": RIGHT})
    # Their key speaks for their project only: it reads and sets theirs, never mine.
    assert await theirs.ok("GET", KEY_ROUTE) == {"verifier": None}
    await theirs.ok("PUT", KEY_ROUTE, json={"verifier": WRONG})
    assert await mine.ok("GET", KEY_ROUTE) == {"verifier": RIGHT}
    # Their session cannot touch my project, even with force.
    forced = await api.call(
        "PUT", owner_route(mine), token=theirs.session, json={"verifier": WRONG, "force": True}
    )
    assert (forced.status, forced.code) == (404, "project-not-found")
    # A session is not an API key, an API key not a session, and nothing is no one.
    as_session = await api.call("GET", KEY_ROUTE, token=mine.session)
    assert as_session.status == 401
    as_key = await api.call("PUT", owner_route(mine), token=mine.api_key, json={"verifier": WRONG})
    assert as_key.status == 401
    assert (await api.call("GET", KEY_ROUTE)).status == 401
    assert (await api.call("PUT", KEY_ROUTE, json={"verifier": WRONG})).status == 401
    assert await mine.ok("GET", KEY_ROUTE) == {"verifier": RIGHT}


async def test_a_revoked_key_reads_nothing(tenant: Tenant) -> None:
    narrow = restricted(tenant)
    await tenant.ok("POST", "/v1/revocations", json={"api_key": narrow})
    revoked = await tenant.call("GET", KEY_ROUTE, token=narrow)
    assert (revoked.status, revoked.code) == (403, "access-denied")


async def test_a_verifier_of_the_wrong_size_is_refused(tenant: Tenant) -> None:
    for bad in (b64encode(b"\x00" * 31), b64encode(b"\x00" * 33)):
        reply = await tenant.call("PUT", KEY_ROUTE, json={"verifier": bad})
        assert reply.status == 400, reply
    assert await tenant.ok("GET", KEY_ROUTE) == {"verifier": None}
