"""The bundled demo REST API: deterministic, growing data behind four pagination styles,
with ETags, rate limits, auth and switchable faults. See ``restlake demo-api serve --help``.
"""

from restlake.demoapi.auth import AuthConfig
from restlake.demoapi.config import DemoApiConfig, realtime_growth
from restlake.demoapi.dataset import Dataset, DatasetConfig
from restlake.demoapi.faults import FaultConfig
from restlake.demoapi.handle import DemoApiHandle, running_demo_api
from restlake.demoapi.process import demo_api_process, start_demo_api_process, stop_demo_api_process
from restlake.demoapi.ratelimit import RateLimitConfig
from restlake.demoapi.server import build_app

__all__ = [
    "AuthConfig",
    "Dataset",
    "DatasetConfig",
    "DemoApiConfig",
    "DemoApiHandle",
    "FaultConfig",
    "RateLimitConfig",
    "build_app",
    "demo_api_process",
    "realtime_growth",
    "running_demo_api",
    "start_demo_api_process",
    "stop_demo_api_process",
]
