"""The providers this server knows, in the order tools list them. Adding one is one line here (CONTRIBUTING.md)."""

from __future__ import annotations

from providers import archastro, computesdk, decthings, local, ray, sprites, xano
from providers.provider import Provider

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        local.PROVIDER,
        sprites.PROVIDER,
        xano.PROVIDER,
        archastro.PROVIDER,
        decthings.PROVIDER,
        computesdk.PROVIDER,
        ray.PROVIDER,
    )
}
