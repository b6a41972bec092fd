"""The gateway's admin API: fault switches. Served on its own port (`ADMIN_PORT`, bound to
`ADMIN_HOST`), never on the public one, and not exposed outside the cluster by the chart."""

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
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


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis  # type: ignore[no-any-return]


# The admin app's one Redis client, opened and closed by its lifespan (it runs on its own
# thread and event loop, so it cannot share the public app's); tests override `get_redis`.
RedisDep = Annotated[Redis, Depends(get_redis)]


def create_admin_app(redis_url: str, key: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Redis.from_url(redis_url) as redis:
            app.state.redis = redis
            yield

    app = FastAPI(
        title="perflab admin", summary="Faults on demand; not a public API.", lifespan=lifespan
    )

    async def current(redis: Redis) -> list[FaultPublic]:
        values = await read_faults(redis, key)
        return [
            FaultPublic(name=n, service=f.service, value=values[n], maximum=f.maximum,
                        description=f.description)
            for n, f in FAULTS.items()
        ]  # fmt: skip

    @app.get("/admin/faults")
    async def list_faults(redis: RedisDep) -> list[FaultPublic]:
        return await current(redis)

    @app.put("/admin/faults/{name}")
    async def update_fault(name: str, update: FaultUpdate, redis: RedisDep) -> FaultPublic:
        if name not in FAULTS:
            raise HTTPException(404, f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        try:
            await set_fault(redis, key, name, update.value)
        except FaultError as exc:
            raise HTTPException(422, str(exc)) from exc
        return next(f for f in await current(redis) if f.name == name)

    @app.delete("/admin/faults")
    async def reset_faults(redis: RedisDep) -> list[FaultPublic]:
        await redis.delete(key)
        return await current(redis)

    return app


def serve_admin_in_background(app: FastAPI, host: str, port: int) -> Callable[[], None]:
    """Runs the admin app on a thread of its own: outside the main thread uvicorn leaves the
    signal handlers to the public server, which owns shutdown. Returns the function that stops
    it (its lifespan closes its Redis client) and waits, briefly, for the thread to end."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None))
    thread = threading.Thread(target=server.run, name="admin-http", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)

    return stop
