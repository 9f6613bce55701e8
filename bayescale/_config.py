"""Process-wide JAX settings bayescale needs: float64 and one CPU device per core.

Imported first by ``bayescale/__init__.py``. Both settings must be in place before
JAX creates its first array, which is why they live here and not in the driver.
"""

from __future__ import annotations

import os


def _request_host_devices() -> None:
    """Expose the CPU cores as separate JAX devices so chains run in parallel.

    Only done when the user has not configured it and JAX has not started yet;
    set ``BAYESCALE_HOST_DEVICES=0`` to leave ``XLA_FLAGS`` untouched.
    """
    wanted = os.environ.get("BAYESCALE_HOST_DEVICES")
    if wanted == "0":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = int(wanted) if wanted else min(os.cpu_count() or 1, 4)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


_request_host_devices()

import jax  # noqa: E402  (must follow the XLA_FLAGS set-up above)

jax.config.update("jax_enable_x64", True)
