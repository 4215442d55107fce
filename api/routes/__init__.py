"""REST routes: health and metrics, tenants and keys, accounts, per-region reads, simulations."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import accounts, health, regions, simulations, tenants

router = APIRouter()
for module in (health, tenants, accounts, regions, simulations):
    router.include_router(module.router)
