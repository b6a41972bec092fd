"""The gateway's admin API: fault switches. Served on its own port (`ADMIN_PORT`, bound to
`ADMIN_HOST`), never on the public one, and not exposed outside the cluster by the chart."""

import threading

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from redis.asyncio import Redis

from perflab.common.faults import FAULTS, FaultError, read_faults, set_fault


class FaultPublic(BaseModel):
    name: str
    service: str
    value: float
    maximum: float
    description: str


class FaultUpdate(BaseModel):
    value: float


def create_admin_app(redis_url: str, key: str) -> FastAPI:
    app = FastAPI(title="perflab admin", summary="Faults on demand; not a public API.")

    async def current() -> list[FaultPublic]:
        async with Redis.from_url(redis_url) as redis:
            values = await read_faults(redis, key)
        return [
            FaultPublic(name=n, service=f.service, value=values[n], maximum=f.maximum,
                        description=f.description)
            for n, f in FAULTS.items()
        ]  # fmt: skip

    @app.get("/admin/faults")
    async def list_faults() -> list[FaultPublic]:
        return await current()

    @app.put("/admin/faults/{name}")
    async def update_fault(name: str, update: FaultUpdate) -> FaultPublic:
        if name not in FAULTS:
            raise HTTPException(404, f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        try:
            async with Redis.from_url(redis_url) as redis:
                await set_fault(redis, key, name, update.value)
        except FaultError as exc:
            raise HTTPException(422, str(exc)) from exc
        return next(f for f in await current() if f.name == name)

    @app.delete("/admin/faults")
    async def reset_faults() -> list[FaultPublic]:
        async with Redis.from_url(redis_url) as redis:
            await redis.delete(key)
        return await current()

    return app


def serve_admin_in_background(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """Runs the admin app on a thread of its own: outside the main thread uvicorn leaves the
    signal handlers to the public server, which owns shutdown."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None))
    threading.Thread(target=server.run, name="admin-http", daemon=True).start()
    return server
