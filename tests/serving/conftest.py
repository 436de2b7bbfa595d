"""Fixtures of the serving tests: a real redis-server on a free loopback port."""

import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import free_port

# .ci/run installs redis-server and sets this: there the Redis tests must run, not skip.
REQUIRE_REDIS = os.environ.get("HIERTCN_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        if REQUIRE_REDIS:
            pytest.fail("redis-server is not installed (HIERTCN_REQUIRE_REDIS=1)")
        pytest.skip("redis-server is not installed")
    import redis

    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("redis-server did not start")
    yield url
    client.close()
    process.terminate()
    process.wait(timeout=10)
