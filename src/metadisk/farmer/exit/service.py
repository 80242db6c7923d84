"""Graceful exit: leave a bridge by moving every piece held for it to other nodes, farmer to
farmer, then deleting them here.

Per bridge, a loop: ``POST {bridge}/v1/nodes/exit`` with a signed `NodeQuery` (purpose
``graceful-exit``) and what the last round moved (the new nodes' receipts) or could not (its
code); the bridge answers with the next transfers, each a new node and a PUT_REPAIR order limit.
Each piece is read, checked against the hash the bridge recorded (a damaged one is reported
``corrupt-piece``, a missing one ``piece-missing``: the bridge drops it and repair rebuilds it)
and PUT to its new node, at most `concurrency` at once. When the bridge says ``exited`` the
bridge's pieces are deleted from the disk (no trash: the bridge forgot them here), and check-ins
to it stop; ``failed`` (no progress for too long, or disqualified: repair took over) stops too.
Bridge errors are retried with backoff; a refusal that cannot change (``exit-refused``,
``node-not-found``, a bad query) ends the exit as failed.

The state is ``exit.json`` in the data dir, rewritten atomically after every round, so a restart
resumes an exit and still reports the receipts of the round it was in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import aiohttp
from pydantic import BaseModel, Field, ValidationError

import metadisk
from metadisk.core.errors import CoreError, SignatureError
from metadisk.core.identity import Identity, NodeId
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, NodeQuery
from metadisk.farmer.config import TrustedBridge
from metadisk.farmer.errors import CorruptPiece, NotFound
from metadisk.farmer.pieces.db import Move
from metadisk.farmer.pieces.service import PieceService
from metadisk.farmer.setup import write_atomic
from metadisk.runtime.logs import event
from metadisk.runtime.tls import bridge_ssl
from metadisk.wire.api.nodes import (
    EXIT_LOST_CODES,
    EXIT_PURPOSE,
    MAX_EXIT_ENTRIES,
    ExitDone,
    ExitFailed,
    ExitRequest,
    ExitStatus,
    ExitTransfer,
)
from metadisk.wire.api.routes import NODE_EXIT
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.dataplane import PieceClient, PieceTransferError
from metadisk.wire.dataplane.contract import BridgeExit, ExitReport
from metadisk.wire.errors import MAX_ERROR_BODY, parse_error

log = logging.getLogger("metadisk.farmer.exit")

EXIT_FILE = "exit.json"
CONCURRENCY = 8  # pieces moved at once, per bridge
TIMEOUT = 60.0  # seconds a bridge has to answer one round
REMOVE_BATCH = 500  # moves journaled at once when the pieces go
MAX_ANSWER = 4 << 20  # an answer of 50 transfers is ~30 KiB
FIRST_RETRY = 1.0
MAX_RETRY = 60.0
# Refusals a retry cannot change; any other (clock-skew, 5xx, no answer) is retried.
_FINAL = ("exit-refused", "node-not-found", "bad-signature", "wrong-query", "invalid-request")


class UnknownBridge(Exception):
    """An exit asked from a bridge this node does not trust."""


class _Record(BaseModel):
    """One bridge's exit as `exit.json` keeps it."""

    state: Literal["exiting", "exited", "failed"] = "exiting"  # as the bridge last said
    transferred: int = 0
    failed: int = 0
    remaining: int | None = None
    error: str | None = None
    removed: bool = False  # exited, and this node's copies deleted
    done: list[ExitDone] = Field(default_factory=list)  # for the next request
    failures: list[ExitFailed] = Field(default_factory=list)
    moving: list[str] = Field(default_factory=list)  # piece ids (hex) being sent right now


class _State(BaseModel):
    bridges: dict[str, _Record] = Field(default_factory=dict)


class _Trouble(Exception):
    """A round that failed and may work later; `final` if the bridge refused for good."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class ExitService:
    """The exits of this node, one loop per bridge it is leaving."""

    def __init__(
        self,
        *,
        identity: Identity,
        bridges: Sequence[TrustedBridge],
        pieces: PieceService,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._identity = identity
        self._bridges = {bridge.node_id: bridge for bridge in bridges}
        self._pieces = pieces
        self._path = data_dir / EXIT_FILE
        self._clock = clock
        self._concurrency = concurrency
        self._records: dict[NodeId, _Record] = {}
        self._tasks: dict[NodeId, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._client = PieceClient(user_agent=f"metadisk-farmer/{metadisk.__version__}")

    # -- life cycle

    async def start(self) -> None:
        """Read the saved state and resume every exit that has not ended."""
        self._records = await asyncio.to_thread(self._load)
        for record in self._records.values():
            # Sent or not when the node stopped: the bridge cancels their transfers and hands
            # the pieces out again now, instead of when their order limits expire.
            record.failures += [ExitFailed(piece_id=p, code="interrupted") for p in record.moving]
            record.moving = []
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            headers={"User-Agent": f"metadisk-farmer/{metadisk.__version__}"},
        )
        for bridge_id, record in self._records.items():
            if record.state == "exiting" or (record.state == "exited" and not record.removed):
                self._spawn(bridge_id)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._client.aclose()

    # -- what the endpoint and the check-ins ask

    def begin(self, bridge_id: NodeId | None) -> None:
        """Start exiting `bridge_id` (every trusted bridge if None); an exit under way or done
        goes on as it is, a failed one is tried again. UnknownBridge if it is not trusted."""
        if bridge_id is not None and bridge_id not in self._bridges:
            raise UnknownBridge(f"{bridge_id.hex()} is not a trusted bridge of this node")
        for each in [bridge_id] if bridge_id is not None else list(self._bridges):
            record = self._records.get(each)
            if record is not None and record.state != "failed":
                continue
            self._records[each] = _Record()
            event(log, logging.WARNING, "graceful exit started", bridge=each.raw)
            self._spawn(each)
        self._save()

    def ended(self, bridge_id: NodeId) -> bool:
        """Whether the exit from `bridge_id` ended (exited or failed): no more check-ins."""
        record = self._records.get(bridge_id)
        return record is not None and record.state != "exiting"

    def report(self) -> ExitReport:
        return ExitReport(
            bridges={
                bridge_id.hex(): BridgeExit(
                    # "exited" once this node's copies are gone too
                    state="exiting" if r.state == "exited" and not r.removed else r.state,
                    transferred=r.transferred,
                    failed=r.failed,
                    remaining=r.remaining,
                    error=r.error,
                )
                for bridge_id, r in self._records.items()
            }
        )

    # -- the loop

    def _spawn(self, bridge_id: NodeId) -> None:
        running = self._tasks.get(bridge_id)
        if running is None or running.done():
            name = f"exit {bridge_id.hex()[:16]}"
            self._tasks[bridge_id] = asyncio.create_task(self._exit(bridge_id), name=name)

    async def _exit(self, bridge_id: NodeId) -> None:
        bridge = self._bridges.get(bridge_id)
        record = self._records[bridge_id]
        if bridge is None:  # no longer trusted: nothing to ask it
            record.state, record.error = "failed", "the bridge is no longer trusted [untrusted]"
            self._save()
            return
        delay = FIRST_RETRY
        while record.state == "exiting":
            try:
                status, moved = await self._round(bridge, record)
            except _Trouble as exc:
                record.error = str(exc)
                if exc.final:
                    record.state = "failed"
                self._save()
                if not exc.final:
                    event(log, logging.WARNING, "exit round failed", bridge=bridge_id.raw,
                          error=str(exc))  # fmt: skip
            except Exception as exc:  # a bug must not end the exit nor the node: log, go on
                log.exception("exit from %s: unexpected error", bridge.url)
                record.error = f"{type(exc).__name__}: {exc} [internal]"
                self._save()
            else:
                if status.state != "exiting" or moved:
                    delay = FIRST_RETRY
                    continue
                # Nothing moved: none handed out (no node free, or transfers still out), or
                # every transfer failed (new nodes down, or holding an earlier copy they are
                # yet to delete). Ask again later.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, MAX_RETRY)
        while record.state == "exited" and not record.removed:
            try:
                removed = await remove_bridge(self._pieces, bridge_id.raw)
            except OSError as exc:  # the disk: try again later, the state says why
                record.error = f"cannot delete the pieces: {exc} [disk]"
                self._save()
                await asyncio.sleep(MAX_RETRY)
                continue
            record.removed, record.error = True, None
            self._save()
            event(log, logging.WARNING, "graceful exit done", bridge=bridge_id.raw, removed=removed)
        if record.state == "failed":
            event(log, logging.ERROR, "graceful exit failed", bridge=bridge_id.raw,
                  error=record.error)  # fmt: skip

    async def _round(self, bridge: TrustedBridge, record: _Record) -> tuple[ExitStatus, int]:
        """Report what the last round did, then move what the bridge hands out now; the
        bridge's answer and how many pieces moved."""
        done, failures = record.done[:MAX_EXIT_ENTRIES], record.failures[:MAX_EXIT_ENTRIES]
        status = await self._ask(bridge, done, failures)
        # The bridge has them: they leave the state file with the answer's figures.
        del record.done[: len(done)], record.failures[: len(failures)]
        record.transferred += len(done) - len(status.refused)
        record.remaining, record.error, record.state = status.remaining, None, status.state
        for refusal in status.refused:
            event(log, logging.WARNING, "exit transfer refused", piece=refusal.piece_id,
                  code=refusal.code)  # fmt: skip
        if status.state == "failed":
            record.error = "the bridge ended the exit as failed: repair took over [exit-failed]"
        self._save()
        if status.state != "exiting" or not status.transfers:
            return status, 0
        record.moving = [transfer.piece_id for transfer in status.transfers]
        self._save()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(transfer: ExitTransfer) -> None:
            async with gate:
                try:
                    outcome = await self._move(bridge, transfer)
                except Exception:  # a bug: this piece is handed out again, the others go on
                    log.exception("exit transfer of %s: unexpected error", transfer.piece_id)
                    outcome = ExitFailed(piece_id=transfer.piece_id, code="internal")
            # Saved as each one ends: a receipt is kept through a crash, and reported.
            record.moving.remove(transfer.piece_id)
            if isinstance(outcome, ExitDone):
                record.done.append(outcome)
            else:
                record.failures.append(outcome)
                if outcome.code in EXIT_LOST_CODES:
                    record.failed += 1
            self._save()

        await asyncio.gather(*(one(t) for t in status.transfers))
        return status, len(record.done)

    async def _ask(
        self, bridge: TrustedBridge, done: list[ExitDone], failures: list[ExitFailed]
    ) -> ExitStatus:
        assert self._session is not None, "start() first"
        query = NodeQuery(
            public_key=self._identity.public_key,
            bridge_id=bridge.node_id,
            purpose=EXIT_PURPOSE,
            timestamp=int(self._clock()),
        ).signed_by(self._identity)
        body = ExitRequest(query=query.encode(), done=done, failed=failures)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            async with self._session.post(
                bridge.url + NODE_EXIT,
                data=body.model_dump_json().encode(),
                headers=headers,
                allow_redirects=False,
                ssl=bridge_ssl(bridge.url),
            ) as response:
                if response.status != 200:
                    detail = parse_error(await read_capped(response.content, MAX_ERROR_BODY))
                    if detail is None:
                        raise _Trouble(f"HTTP {response.status} [bad-answer]")
                    final = detail.code in _FINAL
                    raise _Trouble(f"{_line(detail.message)} [{detail.code}]", final=final)
                raw = await read_capped(response.content, MAX_ANSWER)
        except TimeoutError as exc:
            raise _Trouble("no answer in time [timeout]") from exc
        except aiohttp.ClientError as exc:
            raise _Trouble(f"{_line(str(exc)) or type(exc).__name__} [unreachable]") from exc
        except BodyTooLarge as exc:
            raise _Trouble(f"{exc} [bad-answer]") from exc
        try:
            return ExitStatus.model_validate_json(raw)
        except ValidationError as exc:
            raise _Trouble(f"{_line(str(exc))} [bad-answer]") from exc

    async def _move(self, bridge: TrustedBridge, transfer: ExitTransfer) -> ExitDone | ExitFailed:
        """Send one piece to its new node; the receipt, or why not."""
        piece_id = transfer.piece_id
        limit = transfer.limit

        def failed(code: str) -> ExitFailed:
            event(log, logging.INFO, "exit transfer failed", piece=piece_id, code=code)
            return ExitFailed(piece_id=piece_id, code=code)

        try:
            limit.verify_signature(bridge.public_key)
        except SignatureError:
            return failed("bad-limit")
        if limit.bridge_id != bridge.node_id or limit.action != Action.PUT_REPAIR:
            return failed("bad-limit")
        try:
            data = await self._pieces.read_piece(bridge.node_id.raw, bytes.fromhex(piece_id))
        except NotFound:
            return failed("piece-missing")
        except CorruptPiece:
            return failed("corrupt-piece")
        except OSError:  # maybe passing (no file handles left): not reported as lost
            return failed("read-error")
        digest = await asyncio.to_thread(digest_piece, data)
        if digest.piece_hash != transfer.piece_hash:
            return failed("corrupt-piece")  # damaged on this disk: never pass it on
        try:
            receipt = await self._client.put(transfer.address, limit, transfer.piece_hash, data)
        except PieceTransferError as exc:
            return failed(exc.code)
        # Its key is the bridge's to check; here, that it answers this order for this piece.
        if (
            receipt.serial != limit.serial
            or receipt.node_id != limit.node_id
            or receipt.piece_id != limit.piece_id
            or receipt.piece_hash != transfer.piece_hash
        ):
            return failed("bad-receipt")
        return ExitDone(piece_id=piece_id, receipt=receipt)

    # -- exit.json

    def _load(self) -> dict[NodeId, _Record]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            state = _State.model_validate_json(text)
            return {NodeId.from_hex(key): record for key, record in state.bridges.items()}
        except (ValidationError, CoreError) as exc:
            # Never silently: an exit that was under way would not resume.
            log.error("%s is unreadable, no exit resumed: %s", self._path, _line(str(exc)))
            return {}

    def _save(self) -> None:
        state = _State(bridges={b.hex(): r for b, r in self._records.items()})
        text = json.dumps(state.model_dump(mode="json"), indent=1) + "\n"
        try:
            # Small, and written from the event loop only, so rounds never interleave writes.
            write_atomic(self._path, text)
        except OSError as exc:  # the exit goes on from memory; a restart would redo a round
            log.error("cannot write %s: %s", self._path, exc)


def _line(text: str) -> str:
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    return "; ".join(parts)[:300]


async def remove_bridge(pieces: PieceService, bridge: bytes) -> int:
    """Delete every piece of `bridge` for good, not to the trash, and empty its trash (its exit
    ended: the bridge moved them elsewhere and forgot them here); how many went."""
    store = pieces.store
    found = await asyncio.to_thread(lambda: list(store.bridge_pieces(bridge)))
    trashed = await asyncio.to_thread(lambda: list(store.trash_entries()))
    moves = [Move(bridge, p, rel, None, stored=-size, pieces=-1) for p, rel, size in found]
    moves += [Move(b, p, rel, None, trash=-size) for b, p, rel, _, size in trashed if b == bridge]
    removed = 0
    for start in range(0, len(moves), REMOVE_BATCH):
        removed += await pieces.apply_moves(moves[start : start + REMOVE_BATCH])
    pieces.metrics.pieces_deleted.labels("exited").inc(removed)
    return removed
